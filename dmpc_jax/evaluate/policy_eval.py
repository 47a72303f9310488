"""``dmpc eval-policy``: the PPO demonstrator's success, tracking and energy at fixed speeds.

Success: a full episode (20 s by default) with pushes, domain randomisation, noise and latency on,
without a termination (roll/pitch limit, base or knee contact), with its Wilson 95% interval.
Tracking error: mean |v_xy - v_cmd| over the steps before a fall. Energy per metre
(``scenario.metrics.energy_per_metre``, the same on every page): mechanical work
sum |tau . qdot| dt over the distance travelled along the body's forward axis, pooled over every
episode's steps before a fall. Writes ``results.json``, the page (``report_policy``), a
learning-curve plot and a video.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from dmpc_jax.envs.rollout import make_rollout
from dmpc_jax.evaluate import report_policy
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR
from dmpc_jax.rl.train import load_batched_policy
from dmpc_jax.scenario.env import make_env
from dmpc_jax.scenario.metrics import episode_stats


@dataclasses.dataclass(frozen=True)
class PolicyEvalConfig:
    """The ``PolicyEvalConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        run_dir: the demonstrator run (config.json + ckpt/).
        speeds: forward command speeds to evaluate, m/s.
        episodes: episodes per speed.
        episode_s: episode length, s.
        seed: PRNG seed.
        out_dir: where the page, results.json, plots and the video go.
        video_speed: speed of the episode rendered to video (m/s); negative: no video.
        model_card: write the model card into the run directory (training facts + this table).
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
    """Rolls the deterministic policy at each speed (same keys per speed index), writes the
    results, the page, the video and (``model_card``) the run's model card."""
    env = make_env(cfg.run_dir, cfg.episode_s)  # the demonstrator's env, command held per rollout
    env_cfg = env.cfg
    policy = load_batched_policy(Path(cfg.run_dir))
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
    report_policy.plot_learning_curve(
        Path(cfg.run_dir) / "metrics.jsonl", out / "learning_curve.png"
    )
    if cfg.video_speed >= 0:
        speed = min(cfg.speeds, key=lambda s: abs(s - cfg.video_speed))
        report_policy.write_video(
            env, traces[speed]["qpos"][:, 0], out / f"walk_{speed:.1f}mps.mp4"
        )
    report_policy.write_page(cfg, result, out)
    if cfg.model_card:
        report_policy.write_model_card(cfg, result)
    return result
