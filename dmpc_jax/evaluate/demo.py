"""``make demo``, the main job: the shipped Diffusion-MPC planner walks the Go2 at 1.0 m/s in MJX
(pushes, domain randomisation, sensor noise and latency on), switches to a test-time task halfway
without stopping or recompiling, prints the metrics of both halves and writes a video.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.envs.rollout import make_segments
from dmpc_jax.evaluate.planner_eval import EvalConfig
from dmpc_jax.evaluate.video import render_qpos, save_video
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR, DEFAULT_PLANNER
from dmpc_jax.planner.mpc import MPCConfig
from dmpc_jax.planner.sampler import SamplerConfig
from dmpc_jax.scenario.env import make_env
from dmpc_jax.scenario.harness import controller_specs
from dmpc_jax.scenario.metrics import motion_metrics
from dmpc_jax.scenario.tasks import get_task

# the planner `make demo` runs: the best shipped `cpu` planner (experiments/finetune)


def _segment_metrics(trace: dict, dt: float, command: float) -> dict:
    alive = ~np.asarray(trace["done_any"])
    vel = (np.asarray(trace["state/forward_vel"]) * alive).sum() / max(alive.sum(), 1)
    m = motion_metrics(trace, dt)  # robots count until they fall
    return {
        "robots_standing": f"{int(alive[-1].sum())}/{alive.shape[1]}",
        "forward_vel_m_per_s": round(float(vel), 3),
        "command_m_per_s": command,
        "base_height_m": round(m["base_height_m"], 3),
        "energy_J_per_m": round(m["energy_J_per_m"], 1)
        if np.isfinite(m["energy_J_per_m"])
        else None,
        "joint_vel_rms_rad_per_s": round(m["joint_vel_rms"], 2),
    }


def run_demo(
    out_dir: str = "experiments/demo",
    planner_run: str = DEFAULT_PLANNER,
    demonstrator_run: str = DEFAULT_DEMONSTRATOR,
    task: str = "energy",
    seconds: float = 16.0,
    robots: int = 8,
    num_candidates: int = 1,
    seed: int = 0,
) -> dict:
    from dmpc_jax.planner.load import load_planner

    t_start = time.perf_counter()
    planner = load_planner(planner_run)
    second = get_task(task).spec
    env = make_env(demonstrator_run, seconds)
    half = int(round(seconds / 2 / env.cfg.ctrl_dt))
    scfg = SamplerConfig(num_candidates=num_candidates,
                         analytic_on_x0=EvalConfig.analytic_on_x0)  # fmt: skip
    controller = planner.controller(scfg, MPCConfig())
    start, run = make_segments(env, controller, half, robots)
    args = [planner.task_args(s) for s in (controller_specs(second)["nominal"], second)]
    command = jnp.asarray([1.0, 0.0, 0.0])
    k0, k1, k2 = jax.random.split(jax.random.PRNGKey(seed), 3)
    t0 = time.perf_counter()
    carry = start(k0, command, args[0])
    carry, first = run(carry, k1, args[0])
    first = jax.device_get(first)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    carry, second_tr = run(carry, k2, args[1])  # new task arrays: same executable
    second_tr = jax.device_get(second_tr)
    t_second = time.perf_counter() - t0
    dt = env.cfg.ctrl_dt
    summary = {
        "planner": planner.source,
        "robots": robots,
        "pushes_m_per_s": list(env.cfg.push.magnitude),
        f"0-{seconds / 2:g} s: walk 1.0 m/s": _segment_metrics(first, dt, 1.0),
        f"{seconds / 2:g}-{seconds:g} s: task {task} ({get_task(task).description})": _segment_metrics(
            second_tr, dt, 1.0
        ),
        "first_half_compile_and_run_s": round(t_first, 1),
        "second_half_run_s": round(t_second, 1),
    }
    # the video follows the robot that stayed up longest (said so in the summary)
    alive = ~np.concatenate([first["done_any"], second_tr["done_any"]])
    shown = int(np.argmax(alive.sum(0)))
    summary["video_robot"] = f"{shown} (standing {alive[:, shown].sum() * dt:.1f} of {seconds:g} s)"
    qpos = np.concatenate([first["qpos"][:, shown], second_tr["qpos"][:, shown]])
    t0 = time.perf_counter()
    frames = render_qpos(env.mj_model, qpos[::2])  # 25 fps of a 50 Hz trajectory
    video = save_video(frames, Path(out_dir) / "demo.mp4", fps=25)
    summary["video"] = str(video)
    summary["render_s"] = round(time.perf_counter() - t0, 1)
    summary["total_s"] = round(time.perf_counter() - t_start, 1)
    Path(out_dir, "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary
