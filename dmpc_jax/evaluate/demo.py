"""``make demo``: until the planner ships, the Go2 holds its default pose in MJX under pushes.

Prints what happened and writes a video.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from dmpc_jax.config import demo_env
from dmpc_jax.envs.go2_joystick import Go2Joystick
from dmpc_jax.envs.rollout import make_rollout, zero_policy
from dmpc_jax.evaluate.video import render_qpos, save_video


def run_demo(out_dir: str = "experiments/demo", seconds: float = 8.0, seed: int = 0) -> dict:
    cfg = demo_env()
    env = Go2Joystick(cfg)
    n_steps = int(round(seconds / cfg.ctrl_dt))
    rollout = make_rollout(env, zero_policy, n_steps, batch=1)
    t0 = time.perf_counter()
    _, trace = rollout(jax.random.PRNGKey(seed))
    jax.block_until_ready(trace)
    sim_s = time.perf_counter() - t0
    qpos = np.asarray(trace["qpos"][:, 0])
    height = qpos[:, 2]
    summary = {
        "controller": "default-pose PD hold (action 0); the planner replaces it once it ships",
        "sim_seconds": seconds,
        "pushes": f"{cfg.push.magnitude[0]} m/s every {cfg.push.interval_s[0]}-{cfg.push.interval_s[1]} s",
        "fell": bool(np.asarray(trace["done_any"])[-1, 0]),
        "base_height_mean_m": float(height.mean()),
        "base_height_min_m": float(height.min()),
        "compile_and_run_s": sim_s,
    }
    t0 = time.perf_counter()
    frames = render_qpos(env.mj_model, qpos[::2])  # 25 fps of a 50 Hz trajectory
    video = save_video(frames, Path(out_dir) / "demo.mp4", fps=25)
    summary["video"] = str(video)
    summary["render_s"] = time.perf_counter() - t0
    print(json.dumps(summary, indent=2))
    return summary
