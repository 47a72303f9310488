"""The scenario factory: the demonstrator's env (randomisation, pushes, noise, latency) with a
held command, scaled pushes, a contact model and config overrides, built in one place for
evaluation, finetuning, the demo and the offline diagnosis."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dmpc_jax.config import apply_overrides, from_dict
from dmpc_jax.envs.config import CommandConfig, EnvConfig
from dmpc_jax.envs.go2_joystick import Go2Joystick
from dmpc_jax.rl.ppo import DemonstratorConfig

ENV_MODELS = ("strict", "paper")


def demonstrator_env_config(demonstrator_run: str | Path) -> EnvConfig:
    """The env config a demonstrator run trained on (its ``config.json``)."""
    path = Path(demonstrator_run) / "config.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the scenario needs the demonstrator's env config (train one with "
            "`make demonstrator`, or pass the run directory)"
        )
    return from_dict(DemonstratorConfig, json.loads(path.read_text())).env


def held_command(episode_s: float) -> CommandConfig:
    """A command that is set per rollout (``make_rollout(command=...)``) and never resampled
    within an episode of ``episode_s``."""
    return CommandConfig(
        vx=(0.0, 0.0), vy=(0.0, 0.0), wz=(0.0, 0.0), resample_s=episode_s + 1.0, zero_prob=0.0
    )


def make_env(
    demonstrator_run: str | Path,
    episode_s: float,
    push_scale: float = 1.0,
    model: str = "strict",
    env_set: tuple[str, ...] = (),
) -> Go2Joystick:
    """The demonstrator's env with a held command (set per rollout) and scaled pushes.

    Args:
        model: ``strict`` (the demonstrator's own: feet-only contacts, base/knee contact ends an
            episode) or ``paper`` (full collision geometry; only roll/pitch limits end an episode).
        env_set: config overrides, ``field.path=json`` (``config.apply_overrides``), applied last.
    """
    if model not in ENV_MODELS:
        raise ValueError(f"env model must be strict or paper, got {model!r}")
    env_cfg = demonstrator_env_config(demonstrator_run)
    push = dataclasses.replace(
        env_cfg.push, magnitude=tuple(push_scale * m for m in env_cfg.push.magnitude)
    )
    if model == "paper":
        env_cfg = dataclasses.replace(env_cfg, contacts="full", terminate_on_contact=False)
    env_cfg = dataclasses.replace(
        env_cfg, episode_length_s=episode_s, push=push, command=held_command(episode_s)
    )
    return Go2Joystick(apply_overrides(env_cfg, env_set))
