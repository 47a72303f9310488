"""The finetuning rollouts: the demonstrator's env with the finetuning commands and the paper's
reward, the planner replanning synchronously every E steps with a guidance scale per env and
action noise, and the per-iteration rollout metrics."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.config import apply_overrides
from dmpc_jax.envs.config import CommandConfig, RewardConfig
from dmpc_jax.envs.go2_joystick import Go2Joystick
from dmpc_jax.envs.wrappers import wrap_for_training
from dmpc_jax.finetune.config import FinetuneConfig
from dmpc_jax.finetune.dagger_config import DaggerConfig
from dmpc_jax.planner.task import RewardWeights, TaskSpec
from dmpc_jax.scenario.env import demonstrator_env_config


def make_env(cfg: FinetuneConfig | DaggerConfig, env_set: tuple[str, ...] = ()):
    """The demonstrator's env (randomisation, pushes, noise, latency) with the finetuning commands
    and the paper's reward (METHOD §7), on ``cfg.env_model``'s contacts and terminations;
    ``env_set``: config overrides, ``field.path=json``
    (``config.apply_overrides``), applied last. A ``DaggerConfig`` (no yaw deadband, no env
    model field) gets the strict env without a deadband."""
    env_cfg = demonstrator_env_config(cfg.demonstrator_run)
    env_cfg = dataclasses.replace(
        env_cfg,
        command=CommandConfig(
            vx=cfg.vx,
            vy=(0.0, 0.0),
            wz=cfg.wz,
            resample_s=cfg.resample_s,
            zero_prob=0.0,
            wz_deadband=getattr(cfg, "wz_deadband", 0.0),
        ),  # fmt: skip
        reward=RewardConfig(preset="finetune", clip_negative=False),
    )
    # as scenario.make_env's paper model: roll/pitch end episodes
    if getattr(cfg, "env_model", "strict") == "paper":
        env_cfg = dataclasses.replace(env_cfg, contacts="full", terminate_on_contact=False)
    if env_set:
        env_cfg = apply_overrides(env_cfg, env_set)
    return Go2Joystick(env_cfg)


def make_rollout(cfg: FinetuneConfig, env, plan_fn, task, cons):
    """``(start(key) -> carry, run(carry, key, params) -> (carry, records))``, both jitted.

    ``plan_fn(params, s_now, task, cons, key)`` is the sampler (N = 1); ``task`` carries the
    learned-reward weight, its guidance scale is replaced per env. Records are [T, B]: obs,
    action (``cfg.record_action``: executed, with noise, or planned), reward, done, terminated, valid (a planned step), t (steps since the env's reset), wz,
    age (sync: steps since the plan the step's action came from was made, 0 at a replan step;
    async: steps since the env's latest plan was made, 0 at the step that plans).

    Timeline: the batch replans every E steps (index 0 .. E-1 into each env's chunk). An env that
    resets is *fresh*: with ``cfg.replan_at_reset`` up to ``cfg.reset_plans`` fresh envs plan at
    their next step and enter the batch's timeline at its current index (their plan's first row
    is executed at index i, so the chunk holds it rolled by i); otherwise a fresh env holds the
    default pose (action 0, not recorded) until the batch's next plan.

    With ``cfg.margin`` D > 0 the batch plans on the robot's timeline (``dmpc eval``'s async
    ``MPCConfig``): a plan made from o_t at index E - D waits as the *pending* chunk and enters at
    row D when the running chunk reaches index E, so one plan every E - D steps; the step that
    plans is age 0 (a ``replan`` window starts at the state the plan saw, and its first D actions
    are the previous plan's, as the robot executes them). The first step is at index E - D and
    its plan also runs from row 0 at once, as the harness's synchronous first plan; a fresh env served at index i also gets its own plan as the pending
    chunk (its row E - i enters at index D), so a reset never resumes a plan made before it. The
    carry's chunk then holds [running | pending] rows, [B, 2E, 12].

    ``run(carry, key, params, opts)``: ``opts`` (``rollout_options(cfg, arrays=True)``) holds
    ``record_action``, ``noise_at``, ``action_noise`` and ``replan_at_reset`` as arrays
    (``record_planned``, ``noise_at_actuator``, ``action_noise``, ``replan_at_reset``), so one
    compilation serves every setting of them (the tests'); without it they are the config's,
    fixed when ``run`` is traced (the finetuning run's program).
    """
    wrapped = wrap_for_training(env, env.cfg.episode_steps)
    b, e, d = cfg.n_envs, cfg.execute, cfg.margin
    m = min(cfg.reset_plans, b)
    lo, hi = cfg.guidance
    fixed = rollout_options(cfg)

    def draw_scales(key):
        return jax.random.uniform(key, (b,), minval=lo, maxval=hi)

    def start(key):
        k_env, k_g = jax.random.split(key)
        state = wrapped.reset(jax.random.split(k_env, b))
        if d:  # every env fresh at index E - D: all served at the first step
            chunk, index, fresh = jnp.zeros((b, 2 * e, 12)), e - d, jnp.ones(b, bool)
        else:  # replaced at the first step (index = E)
            chunk, index, fresh = jnp.zeros((b, e, 12)), e, jnp.zeros(b, bool)
        carry = (state, chunk, jnp.asarray(index, jnp.int32), fresh, draw_scales(k_g),
                 jnp.zeros(b, jnp.int32))  # fmt: skip
        # reset leaves some weakly typed scalars that step makes strong: strip them, so the
        # first and later ``run`` calls share one compilation
        return jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), carry)

    def plan_batch(params, obs, scales, key):
        def one(s, k, g):
            return plan_fn(params, s, task.replace(guidance_scale=g), cons, k).action[:e]

        return jax.vmap(one)(obs, jax.random.split(key, obs.shape[0]), scales)

    def entered(plans, index):
        """[B, E, 12] plans whose row 0 runs at ``index`` as chunk rows: rolled by ``index``
        (async: followed by their pending rows, row j holding the plan's row j - (index + D - E),
        so the plan continues across the switch; no wrap for index >= E - D)."""
        rows = jnp.roll(plans, index, axis=1)
        if not d:
            return rows
        return jnp.concatenate([rows, jnp.roll(plans, index + d - e, axis=1)], axis=1)

    def serve_fresh(params, obs, scales, chunk, index, fresh, key, replan):
        """Plans for up to ``m`` fresh envs, rolled to start at ``index`` (async: and continued
        as their pending chunk); they stop being fresh. Also returns which envs were served
        (their plan's age restarts). ``replan``: True, or a traced flag (False: none served)."""
        ids = jnp.argsort(~fresh, stable=True)[:m]  # the fresh envs first
        sel = fresh[ids] if replan is True else fresh[ids] & replan
        any_fresh = fresh.any() if replan is True else sel.any()

        def serve(chunk):
            rows = entered(plan_batch(params, obs[ids], scales[ids], key), index)
            return chunk.at[ids].set(jnp.where(sel[:, None, None], rows, chunk[ids]))

        chunk = jax.lax.cond(any_fresh, serve, lambda c: c, chunk)
        return chunk, fresh.at[ids].set(fresh[ids] & ~sel), jnp.zeros(b, bool).at[ids].set(sel)

    def body(params, opts, carry, key):
        state, chunk, index, fresh, scales, age = carry
        k_plan, k_noise, k_g = jax.random.split(key, 3)
        k_reset = jax.random.fold_in(key, 3)
        obs = state.obs["state"]
        if d:  # async: the pending chunk enters at row D; the next plan is made at E - D
            switch = index >= e
            chunk = jnp.where(switch, jnp.concatenate([chunk[:, e:], chunk[:, e:]], axis=1), chunk)
            index = jnp.where(switch, d, index)
            need = index == e - d

            def plan_pending(chunk):
                return chunk.at[:, e:].set(plan_batch(params, obs, scales, k_plan))

            chunk = jax.lax.cond(need, plan_pending, lambda c: c, chunk)
            age = jnp.where(need, 0, age)
            # a fresh env (every env at the first step) runs the batch plan, made from its own
            # post-reset state, from row 0 now (indices E - D .. E - 1), as a served plan does
            now = (fresh & need)[:, None, None]
            chunk = jnp.where(now, entered(chunk[:, e:], e - d), chunk)
            fresh = fresh & ~need
        else:
            need = index >= e
            chunk = jax.lax.cond(
                need, lambda: plan_batch(params, obs, scales, k_plan), lambda: chunk
            )
            index = jnp.where(need, 0, index)
            fresh = jnp.where(need, False, fresh)
            age = jnp.where(need, 0, age)
        if opts["replan_at_reset"] is not False:
            chunk, fresh, served = serve_fresh(
                params, obs, scales, chunk, index, fresh, k_reset, opts["replan_at_reset"]
            )
            age = jnp.where(served, 0, age)
        planned = jnp.where(fresh[:, None], 0.0, chunk[:, index])
        noise = jnp.where(
            fresh[:, None], 0.0, opts["action_noise"] * jax.random.normal(k_noise, (b, 12))
        )
        action = planned + noise  # what the PD target gets either way
        # noise at the actuator: the env sees the clean action, its motors the noise
        at_actuator = opts["noise_at_actuator"]
        motor = _pick(at_actuator, noise, state.info["action_noise"])
        state = state.replace(info={**state.info, "action_noise": motor})
        nxt = wrapped.step(state, _pick(at_actuator, planned, action))
        done = nxt.done > 0
        rec = {
            "obs": obs,
            "action": _pick(opts["record_planned"], planned, action),
            "reward": nxt.reward,
            "done": done,
            "terminated": done & (nxt.info["truncation"] == 0),
            "valid": ~fresh,
            "age": age,
            "t": state.info["step"],  # steps since the env's reset, at this step's obs
            "wz": state.info["command"][:, 2],
            "vx": state.info["command"][:, 0],  # the command itself (the obs's copy lags)
            # what the reward is made of, per step (logged as means: which term an update moves)
            "terms": {k: nxt.metrics[f"reward/{k}"] for k in env.cfg.reward.scales},
            "lin_vel_err": nxt.metrics["tracking/lin_vel_err"],
            "forward_vel": nxt.metrics["state/forward_vel"],
        }
        scales = jnp.where(done, draw_scales(k_g), scales)
        return (nxt, chunk, index + 1, fresh | done, scales, age + 1), rec

    def run(carry, key, params, opts=None):
        return jax.lax.scan(
            functools.partial(body, params, fixed if opts is None else opts),
            carry,
            jax.random.split(key, cfg.steps_per_iter),
        )

    return jax.jit(start), jax.jit(run)


def _pick(flag, a, b):
    """``a`` where ``flag`` else ``b``: chosen at trace time for a Python bool (the program
    holds one branch), at run time for a traced flag."""
    if isinstance(flag, bool):
        return a if flag else b
    return jnp.where(flag, a, b)


def rollout_options(cfg: FinetuneConfig, arrays: bool = False) -> dict:
    """The rollout's per-step choices from ``cfg`` (``record_action``, ``noise_at``,
    ``action_noise``, ``replan_at_reset``): Python values that ``make_rollout``'s ``run``
    fixes at trace time, or (``arrays``) arrays to pass as its ``opts``."""
    opts = {
        "record_planned": cfg.record_action == "planned",
        "noise_at_actuator": cfg.noise_at == "actuator",
        "action_noise": float(cfg.action_noise),
        "replan_at_reset": bool(cfg.replan_at_reset),
    }
    if not arrays:
        return opts
    return {
        k: jnp.asarray(v, jnp.float32 if k == "action_noise" else bool) for k, v in opts.items()
    }


def rollout_metrics(rec: dict, dt: float) -> dict:
    valid = np.asarray(rec["valid"])
    n_env_min = valid.shape[1] * valid.shape[0] * dt / 60.0
    ended = np.asarray(rec["done"]).sum()
    falls = np.asarray(rec["terminated"]).sum()
    return {
        "rollout/reward_per_step": float(np.asarray(rec["reward"])[valid].mean()),
        "rollout/falls_per_env_min": float(falls / n_env_min),
        "rollout/episodes_ended": int(ended),
        "rollout/episode_success": float((ended - falls) / ended) if ended else float("nan"),
        "rollout/valid_fraction": float(valid.mean()),
        **{
            f"rollout/{name}": float(np.asarray(rec[name])[valid].mean())
            for name in ("lin_vel_err", "forward_vel")
            if name in rec
        },
        **{
            f"rollout/term/{k}": float(np.asarray(v)[valid].mean())
            for k, v in rec.get("terms", {}).items()
        },
    }


def nominal_spec(cfg: FinetuneConfig) -> TaskSpec:
    """The rollouts' task: the learned reward only (weight 1), guidance scale replaced per env."""
    return TaskSpec(name="rwr", command=(cfg.vx[1], 0.0, 0.0), guidance_scale=0.0,
                    weights=RewardWeights())  # fmt: skip
