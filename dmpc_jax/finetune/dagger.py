"""``dmpc dagger``: finetune the planner on the demonstrator's answers from the planner's own states.

Beyond the paper. The diagnosis (experiments/diagnosis, experiments/levers) found the planner's
first action twice as far from the demonstrator's on the states of its own closed loop as on the
demonstrator's states, and a better fit on the demonstrator's data did not walk better: covariate
shift. The demonstrator is exact and available, so the data can follow the planner (DAgger, Ross
et al. 2011), keeping every window a consistent demonstrator trajectory:

1. ``n_envs`` MJX envs run the planner in closed loop exactly as it is evaluated (asynchronous
   receding horizon E / D, N = 1, learned-reward guidance, no action noise); envs auto-reset when
   they fall and then hold the default pose for E steps, so no stale plan drives a fresh robot.
2. Beside each of them a *branch* env is repeatedly forked from the planner env's current state
   (the whole simulator state: physics, randomisation, latency buffer, command, push timer) and
   driven by the demonstrator for ``branch_steps`` steps (drawn per branch); then it is forked
   again from wherever the planner has taken its robot by then. The branches' (o_t, a_t) are
   recorded: demonstrator trajectories that start where the planner goes, recoveries included.
3. The branch pieces (>= H steps) go into a replay buffer that keeps the newest ``buffer_size``;
   the denoiser trains ``denoiser_steps`` per iteration on batches that mix buffer windows with
   ``offline_fraction`` windows of the offline dataset (unweighted loss, METHOD §2's weights).
   R_nn is not refit (the planner guides with the pretrained one).
4. Every ``eval_every`` iterations the evaluation harness measures strict success on
   ``eval_task`` (the same keys each time).

A run directory looks like a finetuning run's (``config.json``, ``pretrain_config.json``,
``scaler.json``, ``robot.json``, ``metrics.jsonl``, ``tb/``, ``ckpt/``, ``buffer.npz``,
``planner/``), so ``load_planner``, ``dmpc eval`` and the demo read it; ``--resume`` continues it.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from dmpc_jax.checkpointing import truncate_metrics
from dmpc_jax.diffusion import model as M
from dmpc_jax.envs.rollout import Controller, stateless
from dmpc_jax.finetune.dagger_config import (
    DaggerConfig,
    dagger_preset,
    learning_rate,
    make_dagger_optimizer,
)
from dmpc_jax.finetune.evaluator import Evaluator
from dmpc_jax.finetune.loop import prepare_finetune_run
from dmpc_jax.finetune.rollout import make_env
from dmpc_jax.finetune.rwr import ReplayBuffer
from dmpc_jax.finetune.update import (
    keep_best_planner,
    make_update,
    offline_rows,
    offline_windows,
    restore_checkpoint,
    save_checkpoint,
)
from dmpc_jax.report.logger import RunLogger

# ------------------------------------------------------------------ rollouts


def make_branch_rollout(
    env, learner: Controller, expert, *, n_envs: int, n_steps: int,
    branch_steps: tuple[int, int], hold_steps: int, skip_after_fork: int = 0,
    commit_steps: int = 0, fork_window: int = 0,
):  # fmt: skip
    """``(start(key, args) -> carry, run(carry, key, args) -> (carry, records))``, both jitted.

    ``learner`` is a batched controller (the planner) whose ``args`` are the rollout input;
    ``expert(obs, key) -> actions [B, 12]`` (the demonstrator). Records [T, B] are the branches'
    steps: obs, action (the executed one: the expert's, or the learner's in a branch's first
    ``commit_steps`` steps), reward, done (the branch's episode ended, or the branch is forked
    again after this step: a piece ends here), terminated (the branch fell), valid (false in a
    branch's first ``skip_after_fork`` steps and, with ``fork_window``, from its H-th step on),
    wz, ``fork`` (the branch was forked from the planner env at this step),
    ``learner_obs`` (the planner env's observation) and ``learner_fell`` (it fell at this step).
    The first ``skip_after_fork`` steps of every branch are recorded as not valid (no window
    starts there): their observations still carry the planner's last actions (and its latency
    history), beside the demonstrator's first actions.

    ``commit_steps`` = D > 0 (the async planner's in-flight actions): a branch first replays the
    learner's next D actions (the ones a plan made at the fork could not change; the branch is
    the learner's state with its key, so it follows the learner env exactly), then the expert
    takes over. ``fork_window`` = H > 0: only a branch's first H steps are kept (valid), so its
    one window starts at the fork. With both, each window is what a plan made at the fork sees
    in closed loop: rows 0..D-1 the committed actions, rows D.. the expert's correction from
    where they lead.
    """
    from dmpc_jax.envs.wrappers import select_envs, wrap_for_training

    wrapped = wrap_for_training(env, env.cfg.episode_steps)
    lo, hi = branch_steps

    def draw(key):
        return jax.random.randint(key, (n_envs,), lo, hi + 1)

    def start(key, args):
        k_env, k_c, k_b = jax.random.split(key, 3)
        state = wrapped.reset(jax.random.split(k_env, n_envs))
        cstate = learner.init(state.obs, k_c, args)
        countdown = jax.random.randint(k_b, (n_envs,), 0, hi + 1)  # staggered first forks
        hold = jnp.zeros(n_envs, jnp.int32)
        age = jnp.zeros(n_envs, jnp.int32)  # steps since the branch was forked
        carry = (state, cstate, state, countdown, hold, age)
        # reset leaves weakly typed scalars that step makes strong: strip them, so the first
        # and later ``run`` calls share one compilation
        return jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), carry)

    def body(args, carry, key):
        state, cstate, branch, countdown, hold, age = carry
        k_act, k_exp, k_draw = jax.random.split(key, 3)
        fork = countdown <= 0
        age = jnp.where(fork, 0, age)
        branch = select_envs(fork, state, branch)
        countdown = jnp.where(fork, draw(k_draw), countdown)
        a_learn, cstate = learner.act(cstate, state.obs, k_act, args)
        a_learn = jnp.where(hold[:, None] > 0, 0.0, a_learn)  # a fresh robot holds its pose
        a_exp = expert(branch.obs, k_exp)
        if commit_steps:  # the learner's committed actions first, then the expert
            a_exp = jnp.where((age < commit_steps)[:, None], a_learn, a_exp)
        nxt = wrapped.step(state, a_learn)
        nxt_branch = wrapped.step(branch, a_exp)
        countdown = countdown - 1
        learner_done = nxt.done > 0
        hold = jnp.where(learner_done, hold_steps, jnp.maximum(hold - 1, 0))
        branch_done = nxt_branch.done > 0
        rec = {
            "obs": branch.obs["state"],
            "action": a_exp,
            "reward": nxt_branch.reward,
            "done": branch_done | (countdown <= 0),
            "terminated": branch_done & (nxt_branch.info["truncation"] == 0),
            "valid": (age >= skip_after_fork) & ((age < fork_window) if fork_window else True),
            "wz": branch.info["command"][:, 2],
            "fork": fork,
            "learner_obs": state.obs["state"],
            "learner_fell": learner_done & (nxt.info["truncation"] == 0),
        }
        return (nxt, cstate, nxt_branch, countdown, hold, age + 1), rec

    def run(carry, key, args):
        return jax.lax.scan(lambda c, k: body(args, c, k), carry, jax.random.split(key, n_steps))

    return jax.jit(start), jax.jit(run)


def fallen_pieces(done: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    """[T, B] mask of the steps of every branch piece that ends in a fall (``terminated`` at its
    last step), back to the step after the previous piece's end: the demonstrator failing to
    recover from the state the planner handed over."""
    done, terminated = np.asarray(done), np.asarray(terminated)
    out = np.zeros(done.shape, bool)
    for e in range(done.shape[1]):
        start = 0
        for t in range(done.shape[0]):
            if done[t, e]:
                if terminated[t, e]:
                    out[start : t + 1, e] = True
                start = t + 1
    return out


def branch_metrics(rec: dict, dt: float) -> dict:
    n_env_min = np.asarray(rec["valid"]).size * dt / 60.0
    return {
        "rollout/planner_falls_per_env_min": float(
            np.asarray(rec["learner_fell"]).sum() / n_env_min
        ),
        "rollout/branch_falls_per_env_min": float(np.asarray(rec["terminated"]).sum() / n_env_min),
        "rollout/branch_reward_per_step": float(np.asarray(rec["reward"]).mean()),
        "rollout/forks": int(np.asarray(rec["fork"]).sum()),
    }


# ------------------------------------------------------------------ training data


class MixedWindows:
    """Stacks of batches of H-step windows: in *every* batch, ``n_offline`` windows from
    ``offline`` (``sample(rng, n) -> dict``: the offline dataset's ``WindowSampler``; None when
    ``n_offline`` is 0) and the rest from the replay buffer (uniform over its windows)."""

    def __init__(self, n_offline: int, horizon: int, offline=None):
        if n_offline and offline is None:
            raise ValueError("MixedWindows: n_offline > 0 needs an offline sampler")
        self.n_off, self.horizon, self.offline = n_offline, horizon, offline

    @classmethod
    def from_config(cls, cfg: DaggerConfig, horizon: int) -> MixedWindows:
        """``offline_fraction`` of each batch from the offline dataset's training envs (the
        pretraining run's split)."""
        n_off = offline_rows(cfg)
        offline = offline_windows(cfg.pretrained, cfg.dataset, horizon) if n_off else None
        return cls(n_off, horizon, offline)

    def sample(self, rng, buf: ReplayBuffer, steps: int, batch: int) -> dict[str, np.ndarray]:
        """[steps, batch, ...] obs, action, reward and weight (all 1); in each of the ``steps``
        batches the first ``batch - n_offline`` rows come from the buffer, the rest offline."""
        if not 0 <= self.n_off <= batch:
            raise ValueError(
                f"MixedWindows: {self.n_off} offline windows do not fit a batch of {batch}"
            )
        parts = []
        for n, draw in (
            (batch - self.n_off, lambda k: buf.windows(rng, np.arange(len(buf)), None, k, self.horizon)),
            (self.n_off, lambda k: self.offline.sample(rng, k)),
        ):  # fmt: skip
            if n:
                w = draw(steps * n)
                parts.append({k: w[k].reshape((steps, n) + w[k].shape[1:])
                              for k in ("obs", "action", "reward")})  # fmt: skip
        out = {
            k: np.concatenate([p[k] for p in parts], axis=1) for k in ("obs", "action", "reward")
        }
        out["weight"] = np.ones((steps, batch), np.float32)
        return out


# ------------------------------------------------------------------ the loop


def dagger(
    cfg: DaggerConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    max_iterations: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Run (or continue) DAgger finetuning; returns the final state dict."""
    from dmpc_jax.planner.load import load_planner
    from dmpc_jax.planner.mpc import MPCConfig
    from dmpc_jax.planner.sampler import SamplerConfig
    from dmpc_jax.planner.task import TaskSpec
    from dmpc_jax.rl.train import load_policy

    run_dir = prepare_finetune_run(
        cfg, Path(run_dir), resume=resume, overwrite=overwrite, command=command
    )
    planner = load_planner(cfg.pretrained)
    dcfg, nets, h = planner.dcfg, planner.nets, planner.dcfg.horizon
    if cfg.branch_steps[0] - cfg.skip_after_fork < h:
        raise ValueError(
            f"DaggerConfig.branch_steps[0] ({cfg.branch_steps[0]}) minus skip_after_fork "
            f"({cfg.skip_after_fork}) must be >= the horizon ({h})"
        )
    optimizer = make_dagger_optimizer(cfg)
    state = {
        "params": planner.params,
        "ema": planner.params,
        "opt_denoiser": optimizer.init(planner.params["denoiser"]),
        "iteration": jnp.zeros((), jnp.int32),
    }
    buf = ReplayBuffer(cfg.buffer_size, cfg.branch_steps[1], keep="newest")
    if resume:
        state, buf = restore_checkpoint(run_dir, state, buf)
    start = int(state["iteration"])
    logger = RunLogger(run_dir, start, key="iteration")
    truncate_metrics(run_dir / "eval_episodes.jsonl", start, key="iteration")

    env = make_env(cfg, cfg.env_set)
    spec = TaskSpec(name="nominal", command=(cfg.vx[1], 0.0, 0.0),
                    guidance_scale=cfg.guidance_scale)  # fmt: skip
    args = planner.task_args(spec)
    make_policy, pol_params, _ = load_policy(Path(cfg.demonstrator_run))
    inference = make_policy(pol_params, deterministic=True)

    def expert(obs, key):
        return inference(obs, key)[0]

    if cfg.learner == "planner":
        learner = planner.controller(
            SamplerConfig(num_candidates=1), MPCConfig(execute=cfg.execute, margin=cfg.margin)
        )
    else:  # the control: branches forked from the demonstrator's own states
        learner = stateless(expert)

    r_start, r_run = make_branch_rollout(
        env, learner, expert, n_envs=cfg.n_envs, n_steps=cfg.steps_per_iter,
        branch_steps=cfg.branch_steps, hold_steps=cfg.execute,
        skip_after_fork=cfg.skip_after_fork, commit_steps=cfg.commit_steps,
        fork_window=h if cfg.commit_steps else 0,
    )  # fmt: skip
    update = make_update(nets, dcfg, planner.scaler, optimizer, "denoiser")
    windows = MixedWindows.from_config(cfg, h)
    evaluator = (
        Evaluator(cfg, planner, cfg.eval_rules, seed=cfg.eval_seed) if cfg.eval_every else None
    )
    offline_only = cfg.offline_fraction == 1.0  # the control: no rollouts, nothing from them

    def evaluate(params, it):  # per-episode outcomes on the fixed keys, as dmpc finetune keeps
        row = evaluator(params)
        evaluator.append_episodes(run_dir / "eval_episodes.jsonl", it)
        if cfg.keep_best:  # the pick among the run's snapshots, on the evaluation's keys
            keep_best_planner(run_dir, params, it, row, cfg.eval_rules[0])
        return row

    base = jax.random.PRNGKey(cfg.seed)
    dev = jax.devices()[0]
    params, ema, opt_d = jax.device_put((state["params"], state["ema"], state["opt_denoiser"]), dev)
    args = jax.device_put(args._replace(params=ema), dev)
    decay = cfg.ema_decay**cfg.steps_per_call  # the EMA moves once per call of that many steps
    ema_step = jax.jit(functools.partial(M.ema_update, decay=decay))
    carry = None if offline_only else r_start(jax.random.fold_in(base, 10_000_000 + start), args)
    end = cfg.iterations if max_iterations is None else min(cfg.iterations, start + max_iterations)
    wall0, prev_wall = time.perf_counter(), logger.prev_wall_s
    if start == 0 and evaluator is not None and cfg.eval_before:
        logger.log({"iteration": 0, "env_steps": 0, **evaluate(ema, 0),
                    "time/wall_s": time.perf_counter() - wall0}, 0, skip=("iteration",))  # fmt: skip
    bar = tqdm(total=cfg.iterations, initial=start, unit="it", disable=not progress, desc="dagger")
    for it in range(start + 1, end + 1):
        t0 = time.perf_counter()
        k_roll, k_den = jax.random.split(jax.random.fold_in(base, it))
        row = {"iteration": it}
        if not offline_only:
            args = args._replace(params=ema)
            carry, rec = r_run(carry, k_roll, args)
            rec = jax.device_get(rec)
            t_roll = time.perf_counter() - t0
            if cfg.drop_fallen:
                rec["valid"] = rec["valid"] & ~fallen_pieces(rec["done"], rec["terminated"])
            added = buf.add_rollout(rec, h, it)
            row.update({"env_steps": it * 2 * cfg.n_envs * cfg.steps_per_iter,
                        **branch_metrics(rec, env.cfg.ctrl_dt), "buffer/pieces": len(buf),
                        "buffer/added": added, "time/rollout_s": t_roll})  # fmt: skip
        rng = np.random.default_rng([cfg.seed, it])
        if len(buf) or offline_only:
            first = float("nan")
            for i in range(cfg.denoiser_steps // cfg.steps_per_call):
                batches = windows.sample(rng, buf, cfg.steps_per_call, cfg.batch_size)
                params, opt_d, m = update(params, opt_d, batches, jax.random.fold_in(k_den, i))
                ema = ema_step(ema, params)
                if i == 0:  # the iteration's first call: the loss the run starts from
                    first = float(m["loss/denoiser"])
            row.update({k: float(v) for k, v in jax.device_get(m).items()})
            row["loss/denoiser_first_call"] = first
        if evaluator is not None and (it % cfg.eval_every == 0 or it == cfg.iterations):
            row.update(evaluate(ema, it))
        row["denoiser_steps"] = it * cfg.denoiser_steps
        row["train/learning_rate"] = float(learning_rate(cfg, it * cfg.denoiser_steps - 1))
        row["time/iter_s"] = time.perf_counter() - t0
        row["time/wall_s"] = prev_wall + time.perf_counter() - wall0
        logger.log(row, it, skip=("iteration",))
        if it % cfg.checkpoint_every == 0 or it == end:
            st = {"params": params, "ema": ema, "opt_denoiser": opt_d,
                  "iteration": jnp.asarray(it, jnp.int32)}  # fmt: skip
            save_checkpoint(run_dir, st, buf, planner_key="ema")
        bar.update(1)
        bar.set_postfix(
            **(
                {"planner_falls": f"{row['rollout/planner_falls_per_env_min']:.2f}"}
                if not offline_only
                else {}
            ),
            **(
                {"success": f"{row['eval/success_rate']:.2f}"} if "eval/success_rate" in row else {}
            ),
        )
    bar.close()
    logger.close()
    return {"params": params, "ema": ema, "iteration": end, "buffer": buf}


__all__ = ["DaggerConfig", "dagger", "dagger_preset", "make_branch_rollout"]
