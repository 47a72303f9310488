"""Control steps/s of the MJX Go2 env against native MuJoCo (``mujoco.rollout``) on the same model."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import jax
import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from dmpc_jax.envs.config import EnvConfig
from dmpc_jax.envs.go2_joystick import Go2Joystick
from dmpc_jax.envs.wrappers import wrap_for_training


@dataclasses.dataclass(frozen=True)
class EnvBenchConfig:
    """Attributes:
    batches: env batch sizes to time.
    n_steps: control steps per timed call (one jitted scan).
    repeats: timed calls per batch size (median reported), after one warm-up call.
    native_threads: threads of ``mujoco.rollout``.
    out_dir: where README.md and results.json are written.
    """

    batches: tuple[int, ...] = (1, 64, 256)
    n_steps: int = 100
    repeats: int = 3
    native_threads: int = 2
    out_dir: str = "experiments/env_throughput"


def bench_mjx(env: Go2Joystick, batch: int, n_steps: int, repeats: int) -> dict:
    """Full env steps (physics, rewards, randomisation, pushes, auto-reset) under one jit."""
    wrapped = wrap_for_training(env, env.cfg.episode_steps)

    def run(state, key):
        def body(s, k):
            a = jax.random.uniform(k, (batch, 12), minval=-0.5, maxval=0.5)
            s = wrapped.step(s, a)
            return s, s.reward

        return jax.lax.scan(body, state, jax.random.split(key, n_steps))

    run = jax.jit(run)
    state = jax.jit(wrapped.reset)(jax.random.split(jax.random.PRNGKey(0), batch))
    t0 = time.perf_counter()
    state, r = run(state, jax.random.PRNGKey(1))
    jax.block_until_ready(r)
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        state, r = run(state, jax.random.PRNGKey(2 + i))
        jax.block_until_ready(r)
        times.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "steps_per_s": batch * n_steps / float(np.median(times))}


def bench_native(env: Go2Joystick, batch: int, n_steps: int, repeats: int, threads: int) -> dict:
    """Physics only, in C: ``mujoco.rollout`` of the same MJCF with PD targets held at q_default."""
    model = env.mj_model
    datas = [mujoco.MjData(model) for _ in range(threads)]
    data = mujoco.MjData(model)
    data.qpos[:] = np.asarray(env._init_qpos)
    data.ctrl[:] = np.asarray(env.q_default)
    mujoco.mj_forward(model, data)
    state = np.empty(mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS))
    mujoco.mj_getState(model, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    nsub = n_steps * env.cfg.n_substeps
    init = np.tile(state, (batch, 1))
    ctrl = np.tile(np.asarray(env.q_default, np.float64), (batch, nsub, 1))
    ctrl += np.random.default_rng(0).uniform(-0.25, 0.25, ctrl.shape)
    mj_rollout.rollout(model, datas, init, ctrl)  # warm-up (thread pool, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mj_rollout.rollout(model, datas, init, ctrl)
        times.append(time.perf_counter() - t0)
    return {"steps_per_s": batch * n_steps / float(np.median(times))}


def run(cfg: EnvBenchConfig = EnvBenchConfig(), env_cfg: EnvConfig = EnvConfig()) -> dict:
    env = Go2Joystick(env_cfg)
    rows = []
    for b in cfg.batches:
        m = bench_mjx(env, b, cfg.n_steps, cfg.repeats)
        n = bench_native(env, b, cfg.n_steps, cfg.repeats, cfg.native_threads)
        rows.append(
            {
                "batch": b,
                "mjx_steps_per_s": m["steps_per_s"],
                "mjx_compile_s": m["compile_s"],
                "native_steps_per_s": n["steps_per_s"],
                "mjx_over_native": m["steps_per_s"] / n["steps_per_s"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "jax_devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "mujoco": mujoco.__version__,
        "n_substeps": env_cfg.n_substeps,
        "contacts": env_cfg.contacts,
        "rows": rows,
    }
    write_report(cfg, result)
    return result


def write_report(cfg: EnvBenchConfig, result: dict) -> None:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Env throughput: MJX Go2 joystick env vs native MuJoCo",
        "",
        "Command: `make bench-env` (`dmpc bench-env`). Machine: "
        f"{result['machine']}; JAX {result['jax']} on {', '.join(result['jax_devices'])}; "
        f"MuJoCo {result['mujoco']}.",
        "",
        f"Control steps/s (1 control step = {result['n_substeps']} physics substeps, "
        f"{result['contacts']}-only contacts). MJX: the full env step (physics, observation, rewards, "
        "randomised model, pushes, fresh auto-reset) with random actions, one jitted scan of "
        f"{cfg.n_steps} steps, median of {cfg.repeats} calls after a warm-up call; compile time apart. "
        f"Native: `mujoco.rollout` with {cfg.native_threads} threads stepping the same MJCF "
        "(physics only, no observation or reward code).",
        "",
        "| batch | MJX steps/s | MJX compile (s) | native steps/s | MJX / native |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['batch']} | {r['mjx_steps_per_s']:,.0f} | {r['mjx_compile_s']:.1f} | "
            f"{r['native_steps_per_s']:,.0f} | {r['mjx_over_native']:.2f} |"
        )
    lines += ["", "Numbers: `results.json` beside this page.", ""]
    (out / "README.md").write_text("\n".join(lines))
