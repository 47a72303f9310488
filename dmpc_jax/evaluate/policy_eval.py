"""``dmpc eval-policy``: the PPO demonstrator's success, tracking and energy at fixed speeds.

Success: a full episode (20 s by default) with pushes, domain randomisation, noise and latency on,
without a termination (roll/pitch limit, base or knee contact), with its Wilson 95% interval.
Tracking error: mean |v_xy - v_cmd| over the steps before a fall. Energy per metre
(``energy_per_metre``, the same on every page): mechanical work sum |tau . qdot| dt over the
distance travelled along the body's forward axis, pooled over every episode's steps before a fall.
Writes ``results.json``, a README table, a learning-curve plot and a video.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.envs.config import CommandConfig
from dmpc_jax.envs.go2_joystick import Go2Joystick
from dmpc_jax.envs.rollout import make_rollout
from dmpc_jax.evaluate.outcomes import format_rate, wilson_interval
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR


@dataclasses.dataclass(frozen=True)
class PolicyEvalConfig:
    """Attributes:
    run_dir: the demonstrator run (config.json + ckpt/).
    speeds: forward command speeds to evaluate, m/s.
    episodes: episodes per speed.
    episode_s: episode length, s.
    seed: PRNG seed.
    out_dir: where README.md, results.json, plots and the video go.
    video_speed: speed of the episode rendered to video (m/s); negative: no video.
    model_card: write MODEL_CARD.md into the run directory (training facts + this table).
    """

    run_dir: str = DEFAULT_DEMONSTRATOR
    speeds: tuple[float, ...] = (0.5, 1.0, 1.5)
    episodes: int = 64
    episode_s: float = 20.0
    seed: int = 0
    out_dir: str = "experiments/demonstrator"
    video_speed: float = 1.0
    model_card: bool = True


def evaluate_policy(cfg: PolicyEvalConfig) -> dict:
    from dmpc_jax.rl.train import load_policy

    make_policy, params, run_cfg = load_policy(Path(cfg.run_dir))
    env_cfg = dataclasses.replace(
        run_cfg.env,
        episode_length_s=cfg.episode_s,
        command=CommandConfig(
            vx=(0.0, 0.0),
            vy=(0.0, 0.0),
            wz=(0.0, 0.0),
            resample_s=cfg.episode_s + 1.0,
            zero_prob=0.0,
        ),
    )
    env = Go2Joystick(env_cfg)
    inference = make_policy(params, deterministic=True)

    def policy(obs, key):
        return jax.vmap(lambda o: inference(o, key)[0])(obs)

    n_steps = env_cfg.episode_steps
    rollout = make_rollout(env, policy, n_steps, batch=cfg.episodes)
    rows, traces = [], {}
    for i, speed in enumerate(cfg.speeds):
        t0 = time.perf_counter()
        _, trace = rollout(jax.random.PRNGKey(cfg.seed + i), jnp.array([speed, 0.0, 0.0]))
        trace = jax.device_get(trace)
        rows.append(episode_stats(trace, speed, env_cfg.ctrl_dt))
        rows[-1]["wall_s"] = time.perf_counter() - t0
        traces[speed] = trace
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "run_dir": cfg.run_dir,
        "episodes_per_speed": cfg.episodes,
        "episode_s": cfg.episode_s,
        "pushes": {
            "enabled": env_cfg.push.enabled,
            "interval_s": list(env_cfg.push.interval_s),
            "magnitude_m_per_s": list(env_cfg.push.magnitude),
        },
        "randomization": env_cfg.randomization.enabled,
        "noise_and_latency": env_cfg.noise.enabled,
        "rows": rows,
    }
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_learning_curve(Path(cfg.run_dir) / "metrics.jsonl", out / "learning_curve.png")
    if cfg.video_speed >= 0:
        speed = min(cfg.speeds, key=lambda s: abs(s - cfg.video_speed))
        _write_video(env, traces[speed]["qpos"][:, 0], out / f"walk_{speed:.1f}mps.mp4")
    write_page(cfg, result, out)
    if cfg.model_card:
        write_model_card(cfg, result)
    return result


def energy_per_metre(trace: dict, dt: float) -> float:
    """Mechanical energy per metre, the one definition of every page: work sum |tau . qdot| dt
    over the forward (body-frame) distance, both pooled over every episode's steps before its
    fall (so a controller that falls still has a value); NaN under 1 m walked in all."""
    alive = ~np.asarray(trace["done_any"])
    work = (np.asarray(trace["state/mech_power"]) * dt * alive).sum()
    dist = (np.asarray(trace["state/forward_vel"]) * dt * alive).sum()
    return float(work / dist) if dist > 1.0 else float("nan")


def episode_stats(trace: dict, speed: float, dt: float) -> dict:
    fallen = np.asarray(trace["done_any"])  # [T, B], true from the step of the fall on
    alive = ~fallen
    success = ~fallen[-1]
    err = np.asarray(trace["tracking/lin_vel_err"])
    track = (err * alive).sum() / max(alive.sum(), 1)
    return {
        "speed": speed,
        "success_rate": float(success.mean()),
        "episodes": int(success.size),
        "success_ci95": list(wilson_interval(int(success.sum()), int(success.size))),
        "tracking_err_m_per_s": float(track),
        "energy_J_per_m": energy_per_metre(trace, dt),
        "mean_forward_vel": float(
            (np.asarray(trace["state/forward_vel"]) * alive).sum() / max(alive.sum(), 1)
        ),
    }


def plot_learning_curve(metrics_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics_path.exists():
        return
    log = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
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


def _write_video(env: Go2Joystick, qpos: np.ndarray, path: Path) -> None:
    from dmpc_jax.evaluate.video import render_qpos, save_video

    frames = render_qpos(env.mj_model, np.asarray(qpos)[:500:2])  # first 10 s at 25 fps
    save_video(frames, path, fps=25)


def write_page(cfg: PolicyEvalConfig, result: dict, out: Path) -> None:
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


def write_model_card(cfg: PolicyEvalConfig, result: dict) -> None:
    """MODEL_CARD.md in the run directory: how it was trained (from its own logs) and how it does."""
    import os
    import platform

    run = Path(cfg.run_dir)
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    from dmpc_jax.checkpointing import checkpoint_manager

    step = checkpoint_manager(run).latest_step()
    at = next((m for m in log if m["epoch"] == step), log[-1])
    run_cfg = json.loads((run / "config.json").read_text())
    from dmpc_jax.config import from_dict
    from dmpc_jax.rl.ppo import DemonstratorConfig

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
