"""Control steps/s of the MJX Go2 env against native MuJoCo (``mujoco.rollout``) on the same model,
and of the MJX env with its batch split over devices and processes (``dmpc_jax.distributed``).

Each layout ``PxD`` (P processes x D CPU devices each) runs in fresh processes, one per batch size,
since JAX fixes its devices at start-up; a layout that does not finish within ``layout_timeout_s``
is reported as hung instead of blocking the benchmark.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time

import jax
import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from dmpc_jax import distributed as dist
from dmpc_jax.bench import report
from dmpc_jax.envs.config import EnvConfig
from dmpc_jax.envs.go2_joystick import Go2Joystick
from dmpc_jax.envs.wrappers import wrap_for_training


@dataclasses.dataclass(frozen=True)
class EnvBenchConfig:
    """The ``EnvBenchConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        batches: env batch sizes to time.
        n_steps: control steps per timed call (one jitted scan).
        repeats: timed calls per batch size (median reported), after one warm-up call.
        native_threads: threads of ``mujoco.rollout``.
        layouts: ``PxD`` layouts of the sharded MJX rows (P processes x D devices per process).
        layout_batches: global batch sizes of the sharded rows.
        layout_timeout_s: a layout row still running after this long is reported as hung.
        out_dir: where the page and results.json are written.
    """

    batches: tuple[int, ...] = (1, 64, 256)
    n_steps: int = 100
    repeats: int = 3
    native_threads: int = 2
    layouts: tuple[str, ...] = ("1x1", "1x2", "2x1")
    layout_batches: tuple[int, ...] = (64, 256, 512)
    layout_timeout_s: float = 300.0
    out_dir: str = "experiments/env_throughput"


def bench_mjx(env: Go2Joystick, batch: int, n_steps: int, repeats: int, mesh=None) -> dict:
    """Full env steps (physics, rewards, randomisation, pushes, auto-reset) under one jit;
    with ``mesh``, the batch is split over its ``data`` axis."""
    wrapped = wrap_for_training(env, env.cfg.episode_steps)
    envs = None if mesh is None else dist.split(mesh)

    def run(state, key):
        def body(s, k):
            a = jax.random.uniform(k, (batch, 12), minval=-0.5, maxval=0.5)
            s = wrapped.step(s, a)
            return s, s.reward

        return jax.lax.scan(body, state, jax.random.split(key, n_steps))

    run = jax.jit(run, out_shardings=None if envs is None else (envs, None))
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(0), batch))
    state = jax.jit(wrapped.reset, out_shardings=envs)(keys)
    t0 = time.perf_counter()
    state, r = run(state, np.asarray(jax.random.PRNGKey(1)))
    jax.block_until_ready(r)
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        state, r = run(state, np.asarray(jax.random.PRNGKey(2 + i)))
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
    layouts = [
        bench_layout(layout, b, cfg)
        for layout in cfg.layouts
        for b in cfg.layout_batches
    ]  # fmt: skip
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "jax_devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "mujoco": mujoco.__version__,
        "n_substeps": env_cfg.n_substeps,
        "contacts": env_cfg.contacts,
        "rows": rows,
        "layouts": layouts,
    }
    report.write_env_page(cfg, result)
    return result


def parse_layout(layout: str) -> tuple[int, int]:
    try:
        p, d = (int(x) for x in layout.lower().split("x"))
    except ValueError as e:
        raise ValueError(f"layout {layout!r} is not PxD (e.g. 2x1)") from e
    if p < 1 or d < 1:
        raise ValueError(f"layout {layout!r}: processes and devices must be >= 1")
    return p, d


def bench_layout(layout: str, batch: int, cfg: EnvBenchConfig) -> dict:
    """One sharded MJX row in fresh processes: steps/s of the whole group (process 0 times it)."""
    from dmpc_jax.launch import free_port, process_env

    p, d = parse_layout(layout)
    row = {"layout": layout, "processes": p, "devices_per_process": d, "batch": batch}
    if batch % (p * d):
        return {**row, "status": f"batch does not split over {p * d} devices"}
    port = free_port()
    cmd = [sys.executable, "-m", "dmpc_jax.bench.env_throughput", "--worker", str(batch),
           str(cfg.n_steps), str(cfg.repeats)]  # fmt: skip
    envs = [process_env(r, p, port, d, gpu=False) for r in range(p)]
    if p == 1:  # no runtime to join: one process, d forced devices
        envs = [{k: v for k, v in envs[0].items() if not k.startswith("DMPC_")}]
    procs = [
        subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for e in envs
    ]
    try:
        out = procs[0].communicate(timeout=cfg.layout_timeout_s)[0]
        for q in procs[1:]:
            q.wait(timeout=60)
    except subprocess.TimeoutExpired:
        for q in procs:
            q.kill()
            q.wait()
        row = {**row, "status": f"hung (no result in {cfg.layout_timeout_s:.0f} s)"}
        print(json.dumps(row), flush=True)
        return row
    lines = [x for x in out.splitlines() if x.startswith("{")]
    if procs[0].returncode or not lines:
        row = {**row, "status": f"failed (exit {procs[0].returncode})"}
    else:
        row = {**row, **json.loads(lines[-1]), "status": "ok"}
    print(json.dumps(row), flush=True)
    return row


def _worker(batch: int, n_steps: int, repeats: int) -> None:
    dist.initialize(dist.ENV_NUM_PROCESSES in os.environ)
    m = bench_mjx(Go2Joystick(EnvConfig()), batch, n_steps, repeats, mesh=dist.global_mesh())
    if dist.is_main():
        print(json.dumps({"mjx_steps_per_s": m["steps_per_s"], "mjx_compile_s": m["compile_s"]}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(*(int(x) for x in sys.argv[2:5]))
