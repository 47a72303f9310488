"""The demonstrator's page (``experiments/demonstrator``), its learning curve, video and the run's
MODEL_CARD.md."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import jax
import numpy as np

from dmpc_jax.checkpointing import checkpoint_manager
from dmpc_jax.config import from_dict
from dmpc_jax.report.logger import read_jsonl
from dmpc_jax.report.markdown import format_rate
from dmpc_jax.rl.ppo import DemonstratorConfig


def plot_learning_curve(metrics_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics_path.exists():
        return
    log = read_jsonl(metrics_path)
    steps = np.array([m["env_steps"] for m in log]) / 1e6
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    series = {
        "episode return": [m.get("episode/sum_reward", np.nan) for m in log],
        "episode length (steps)": [m.get("episode/length", np.nan) for m in log],
        "mean |v_xy - v_cmd| (m/s)": [
            m.get("episode/tracking/lin_vel_err", np.nan) / max(m.get("episode/length", 0.0), 1.0)
            for m in log
        ],
    }
    for ax, (title, values) in zip(axes, series.items(), strict=True):
        ax.plot(steps, values)
        ax.set_xlabel("env steps (M)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_video(env, qpos: np.ndarray, path: Path) -> None:
    from dmpc_jax.evaluate.video import render_qpos, save_video

    frames = render_qpos(env.mj_model, np.asarray(qpos)[:500:2])  # first 10 s at 25 fps
    save_video(frames, path, fps=25)


def write_page(cfg, result: dict, out: Path) -> None:
    p = result["pushes"]
    lines = [
        "# PPO demonstrator",
        "",
        f"Evaluated with `dmpc eval-policy --cfg.run-dir {cfg.run_dir} --cfg.episodes {cfg.episodes} "
        f"--cfg.episode-s {cfg.episode_s:g} --cfg.speeds {' '.join(f'{s:g}' for s in cfg.speeds)} "
        f"--cfg.seed {cfg.seed}` "
        f"({result['episodes_per_speed']} episodes of {result['episode_s']:.0f} s per speed, "
        f"pushes of {p['magnitude_m_per_s'][0]}-{p['magnitude_m_per_s'][1]} m/s every "
        f"{p['interval_s'][0]:.0f}-{p['interval_s'][1]:.0f} s, domain randomisation "
        f"{'on' if result['randomization'] else 'off'}, observation noise and latency "
        f"{'on' if result['noise_and_latency'] else 'off'}; deterministic policy).",
        "",
    ]
    lines += _table(result)
    lines += [
        "",
        "Success: no termination in the whole episode (our strict rule), [Wilson 95% interval]. "
        "Energy: mechanical work sum |tau . qdot| dt over the forward distance walked, pooled over "
        "every episode's steps before a fall.",
        "",
        "![learning curve](learning_curve.png)",
        "",
        f"Video: `walk_*mps.mp4` (first episode at the speed nearest {cfg.video_speed} m/s).",
        "Numbers: `results.json` beside this page.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def _table(result: dict) -> list[str]:
    lines = [
        "| command (m/s) | success | mean \\|v - v_cmd\\| (m/s) | mean forward vel (m/s) | energy (J/m) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['speed']:.1f} | {format_rate({'rate': r['success_rate'], 'ci95': r['success_ci95']})} ({r['episodes']}) | "
            f"{r['tracking_err_m_per_s']:.3f} | {r['mean_forward_vel']:.2f} | {r['energy_J_per_m']:.1f} |"
        )
    return lines


def write_model_card(cfg, result: dict) -> None:
    """MODEL_CARD.md in the run directory: how it was trained (from its own logs) and how it does."""
    run = Path(cfg.run_dir)
    log = read_jsonl(run / "metrics.jsonl")
    step = checkpoint_manager(run).latest_step()
    at = next((m for m in log if m["epoch"] == step), log[-1])
    run_cfg = json.loads((run / "config.json").read_text())
    n_epochs = from_dict(DemonstratorConfig, run_cfg).ppo.num_epochs
    p = result["pushes"]
    lines = [
        f"# Model card: PPO demonstrator `{run.name}`",
        "",
        f"- Produced by: `make demonstrator PRESET={run.name}` (`dmpc demonstrator --preset {run.name}`);"
        " `ARGS=--resume` continues the run from this checkpoint.",
        f"- Checkpoint: epoch {step} of {n_epochs},"
        f" {at['env_steps'] / 1e6:.1f} M env steps, {at['time/wall_s'] / 3600:.2f} h of training wall time"
        f" (summed over resumed segments; {at['time/steps_per_s']:,.0f} env steps/s in its last epoch).",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU"
        f" (JAX {jax.__version__}, {jax.default_backend()} backend).",
        f"- Networks: policy {run_cfg['ppo']['policy_hidden']} on the 49-dim observation, value"
        f" {run_cfg['ppo']['value_hidden']} on the 56-dim privileged state; {run_cfg['ppo']['num_envs']} envs.",
        f"- Training env: commands vx {run_cfg['env']['command']['vx']}, vy {run_cfg['env']['command']['vy']},"
        f" wz {run_cfg['env']['command']['wz']}; domain randomisation, pushes, noise and latency on;"
        " full config in `config.json`.",
        "",
        f"Evaluation (`dmpc eval-policy`, {result['episodes_per_speed']} episodes of {result['episode_s']:.0f} s"
        f" per speed, pushes {p['magnitude_m_per_s'][0]}-{p['magnitude_m_per_s'][1]} m/s every"
        f" {p['interval_s'][0]:.0f}-{p['interval_s'][1]:.0f} s, randomisation, noise and latency on):",
        "",
        *_table(result),
        "",
        "Learning curve and video: `experiments/demonstrator/`.",
        "",
    ]
    (run / "MODEL_CARD.md").write_text("\n".join(lines))
