"""``dmpc diagnose-offline``: how faithfully the planner reproduces the demonstrator, without closing
the loop.

On states the demonstrator visits in fresh rollouts of the evaluation env (held out: keys never
used for the dataset), plan once per state and compare, row by row, the plan's action a_h with
the demonstrator's action on the plan's own state, pi(s_h) (h = 0 is the measured state; the
demonstrator is a deterministic function of that row, so a perfect fit gives zero). Then perturb
the measured state's pitch (the gravity slice, rotated about the body y axis) and pitch rate (the
angular-velocity slice) and compare the plan's change of its first actions with the
demonstrator's change, on the same key (common random numbers): the *gain* is the projection of
the plan's change on the demonstrator's, 1 when the planner reacts as the demonstrator does, 0
when it ignores the perturbation. Errors are in units of the demonstrator action's per-joint std
on these states. Writes ``results.json``, its page and a plot into ``out_dir``
(``report_offline``).
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.evaluate import report_offline
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR, DEFAULT_PLANNER


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
    """The ``OfflineConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        planner_run: the planner; demonstrator_run: the PPO run whose env and policy are used.
        states: held-out states planned from (taken after ``warmup_s`` of walking).
        states_from: whose closed loop visits them: ``demonstrator`` (fresh demonstrator rollouts)
            or ``planner`` (the planner's own closed loop, async E = 11 / D = 4 as ``dmpc eval``:
            robots still standing, so the states a planner meets before it falls are among them).
        samples: plans per state (fresh keys), averaged.
        rows: plan rows compared (h = 0 .. rows-1: E = 11 are executed).
        command: the held velocity command (vx, vy, wz).
        guidance: learned-reward guidance scale (0.1: the nominal planner of ``dmpc eval``).
        pitch_delta: pitch perturbation, rad (nose down); pitch_rate_delta: rad/s.
        warmup_s: walking time before states are taken, s.
        seed: PRNG seed; out_dir: output directory.
    """

    planner_run: str = DEFAULT_PLANNER
    demonstrator_run: str = DEFAULT_DEMONSTRATOR
    states: int = 256
    states_from: Literal["demonstrator", "planner"] = "demonstrator"
    samples: int = 4
    rows: int = 11
    command: tuple[float, float, float] = (1.0, 0.0, 0.0)
    guidance: float = 0.1
    pitch_delta: float = 0.1
    pitch_rate_delta: float = 1.0
    warmup_s: float = 2.0
    seed: int = 0
    out_dir: str = "experiments/diagnosis/offline"


def perturb(s: jax.Array, pitch: float = 0.0, pitch_rate: float = 0.0) -> jax.Array:
    """Observation(s) [..., 49] with the body pitched by ``pitch`` rad nose down (gravity slice
    rotated about body y) and ``pitch_rate`` rad/s added to the body-y angular velocity."""
    g = obs_lib.OBS_SLICES["gravity"]
    gx, gz = s[..., g.start], s[..., g.start + 2]
    c, sn = np.cos(pitch), np.sin(pitch)
    s = s.at[..., g.start].set(c * gx - sn * gz).at[..., g.start + 2].set(sn * gx + c * gz)
    wy = obs_lib.OBS_SLICES["ang_vel"].start + 1
    return s.at[..., wy].add(pitch_rate * obs_lib.ANG_VEL_SCALE)


def zero_constant_slots(s: jax.Array) -> jax.Array:
    """Observation rows [..., 49] with the slots the env always writes as zero (lin_vel,
    friction) set to zero."""
    for name in ("lin_vel", "friction"):
        sl = obs_lib.OBS_SLICES[name]
        s = s.at[..., sl].set(0.0)
    return s


def demonstrator_states(cfg: OfflineConfig, env, policy, key) -> jax.Array:
    """[states, 49] observations from fresh demonstrator rollouts (64 robots at a time, a state
    every 25 steps after the warm-up)."""
    from dmpc_jax.envs.rollout import make_segments

    batch, seg = min(cfg.states, 64), 25
    start, run = make_segments(env, policy, seg, batch)
    carry = start(key, jnp.asarray(cfg.command, jnp.float32))
    warm = int(round(cfg.warmup_s / env.cfg.ctrl_dt)) // seg
    obs, i = [], 0
    while len(obs) * batch < cfg.states:
        carry, _ = run(carry, jax.random.fold_in(key, i))
        i += 1
        if i > warm:
            obs.append(carry[0].obs["state"])
    return jnp.concatenate(obs)[: cfg.states]


def _sampler_config():
    """N = 1, analytic rewards on x0_hat: the nominal planner of ``dmpc eval``, for the plans
    compared and for the closed loop that visits the states."""
    from dmpc_jax.planner.sampler import SamplerConfig

    return SamplerConfig(num_candidates=1, analytic_on_x0=True)


def planner_states(cfg: OfflineConfig, env, planner, args, key) -> jax.Array:
    """[states, 49] observations the planner meets in its own closed loop (<= 64 robots at a time,
    async E = ``rows`` / D = 4, the robots still standing every 25 steps after the warm-up; at most
    20 s of walking per batch of robots)."""
    from dmpc_jax.envs.rollout import make_segments
    from dmpc_jax.planner.mpc import MPCConfig

    execute = min(cfg.rows, planner.dcfg.horizon)  # E = rows (11), D = 4 as dmpc eval
    controller = planner.controller(
        _sampler_config(),
        MPCConfig(execute=execute, margin=min(4, execute - 1), mode="async"),
    )
    batch, seg = min(cfg.states, 64), 25
    start, run = make_segments(env, controller, seg, batch)
    warm = int(round(cfg.warmup_s / env.cfg.ctrl_dt)) // seg
    n_seg = int(round(20.0 / env.cfg.ctrl_dt)) // seg
    obs, n, b = [], 0, 0
    while n < cfg.states:
        kb = jax.random.fold_in(key, b)
        carry = start(kb, jnp.asarray(cfg.command, jnp.float32), args)
        for i in range(n_seg):
            carry, _ = run(carry, jax.random.fold_in(kb, i + 1), args)
            standing = ~np.asarray(carry[2])
            if i + 1 > warm and standing.any():
                obs.append(np.asarray(carry[0].obs["state"])[standing])
                n += int(standing.sum())
            if n >= cfg.states or not standing.any():
                break
        b += 1
    return jnp.asarray(np.concatenate(obs)[: cfg.states])


def run_offline(cfg: OfflineConfig) -> dict:
    from dmpc_jax.planner.load import load_planner
    from dmpc_jax.planner.task import TaskSpec
    from dmpc_jax.rl.train import load_batched_policy
    from dmpc_jax.scenario.env import make_env

    env = make_env(cfg.demonstrator_run, 30.0)
    policy = load_batched_policy(Path(cfg.demonstrator_run))
    key = jax.random.PRNGKey(cfg.seed)

    def pi(s):  # [..., 49] -> [..., 12]: the demonstrator on observation rows
        # the env always writes zeros into the lin_vel and friction slots, so the demonstrator's
        # observation normaliser has a ~zero std there: a planned row's 1e-3 deviation in them
        # would move its action by several stds (measured: row error 3.0 instead of 0.3)
        s = zero_constant_slots(s)
        flat = s.reshape(-1, s.shape[-1])
        o = {"state": flat, "privileged_state": jnp.zeros((flat.shape[0], 56))}
        return policy(o, key).reshape(s.shape[:-1] + (12,))

    pi = jax.jit(pi)
    planner = load_planner(cfg.planner_run)
    spec = TaskSpec(name="nominal", command=cfg.command, guidance_scale=cfg.guidance)
    params, task, cons = planner.task_args(spec)
    if cfg.states_from == "planner":
        states = planner_states(cfg, env, planner, (params, task, cons), jax.random.fold_in(key, 1))
    else:
        states = demonstrator_states(cfg, env, policy, jax.random.fold_in(key, 1))
    plan_one = planner.plan_fn(_sampler_config())
    plan = jax.jit(jax.vmap(lambda s, k: plan_one(params, s, task, cons, k).rows))

    a_pi = np.asarray(pi(states))
    std = a_pi.std(0) + 1e-6  # per joint
    h = cfg.rows
    pert = {
        "pitch": perturb(states, pitch=cfg.pitch_delta),
        "pitch_rate": perturb(states, pitch_rate=cfg.pitch_rate_delta),
    }
    d_pi = {k: np.asarray(pi(v)) - a_pi for k, v in pert.items()}
    err, d_plan, a0 = [], {k: [] for k in pert}, []
    for i in range(cfg.samples):
        keys = jax.random.split(jax.random.fold_in(key, 100 + i), states.shape[0])
        rows = plan(states, keys)  # [B, H, 61]
        a, s = rows[:, :h, :12], rows[:, :h, 12:]
        a0.append(np.asarray(a[:, 0]))
        err.append(np.sqrt(np.mean(np.square((np.asarray(a) - np.asarray(pi(s))) / std), -1)))
        for k, v in pert.items():
            d_plan[k].append(np.asarray(plan(v, keys)[:, 0, :12]) - np.asarray(a[:, 0]))
    err = np.concatenate(err)  # [samples * B, h]
    # bias vs spread: the error of the first action averaged over the samples of a state
    a0_mean = np.mean(a0, axis=0)
    mean_err = np.sqrt(np.mean(np.square((a0_mean - a_pi) / std), -1))
    spread = np.sqrt(np.mean(np.var(np.asarray(a0) / std, axis=0), -1))
    resp = {}
    for k in pert:
        dp = np.concatenate(d_plan[k]) / std
        dd = np.tile(d_pi[k], (cfg.samples, 1)) / std
        resp[k] = {
            "gain": float((dp * dd).sum() / (dd * dd).sum()),
            "cosine": float((dp * dd).sum() / np.sqrt((dp * dp).sum() * (dd * dd).sum())),
            "demonstrator_change_std": float(np.sqrt(np.mean(dd * dd))),
            "planner_change_std": float(np.sqrt(np.mean(dp * dp))),
        }
    result = {
        "config": dataclasses.asdict(cfg),
        "command": "dmpc " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "states": int(states.shape[0]),
        "row_error_std": err.mean(0).round(4).tolist(),
        "row_error_std_p90": np.percentile(err, 90, axis=0).round(4).tolist(),
        "first_action_error_std": float(err[:, 0].mean()),
        "first_action_error_of_sample_mean_std": float(mean_err.mean()),
        "first_action_sample_spread_std": float(spread.mean()),
        "response": resp,
    }
    report_offline.write_page(result, Path(cfg.out_dir))
    return result
