"""``dmpc dagger``'s settings (``DaggerConfig``) and its presets ``tiny`` and ``cpu``."""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp

from dmpc_jax.diffusion.config import make_optimizer
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR


@dataclasses.dataclass(frozen=True)
class DaggerConfig:
    """The ``DaggerConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        pretrained: the planner run to start from (pretraining or finetuning run).
        demonstrator_run: the PPO run that labels the planner's states; its env is used.
        dataset: offline dataset mixed into every batch ("" for none): the pretrained run's data.
        offline_fraction: share of each batch drawn from ``dataset`` (its training envs only); 1.0
            trains on the offline data alone (the control run: the same optimisation without the
            planner's states; it runs no rollouts).
        learner: who drives the envs the branches fork from: ``planner`` (DAgger) or
            ``demonstrator`` (a control: the branches then start from the demonstrator's own
            states, so the buffer holds pretraining-like windows through the same buffer, batch
            mix and update).
        n_envs: planner envs (and as many demonstrator branches).
        steps_per_iter: control steps per env per iteration.
        iterations: iterations in total.
        branch_steps: (lo, hi) steps a branch is driven by the demonstrator before the next fork,
            drawn uniformly per branch; lo - skip_after_fork >= H so every branch can yield a window.
        skip_after_fork: steps after each fork where no window starts: there the branch's
            observation still holds the planner's last actions, beside the demonstrator's first
            actions (0: every step, as the first runs did).
        commit_steps: D > 0: each branch first replays the learner's next D actions (the async
            planner's in-flight actions, which a plan made at the fork cannot change), then the
            demonstrator takes over, and windows start only at forks: every window is what a
            plan made at the fork sees in closed loop (0: the demonstrator acts from the fork and
            a window may start at any valid step, as the first runs did). Use ``margin``, with
            ``branch_steps`` of (H, H) for a window per branch and the most forks.
        drop_fallen: keep no window of a branch piece that ends in a fall (the demonstrator
            failing from the state the planner handed over), which pretraining's data almost
            never shows (False: keep them, as the first runs did).
        execute: E of the planner's asynchronous receding horizon (as ``dmpc eval``).
        margin: D of the planner's asynchronous receding horizon (as ``dmpc eval``).
        guidance_scale: learned-reward guidance of the planner's rollouts (``dmpc eval``'s nominal).
        vx: forward command range (m/s; vy = 0), resampled every ``resample_s``; up to 1.0, the
            pretraining data's own limit (with 1.5 the planner fell further: experiments/dagger).
        wz: yaw-rate command range (rad/s).
        env_set: overrides of the rollout env's config, ``field.path=json``.
        buffer_size: branch pieces kept (the newest).
        denoiser_steps: optimizer steps per iteration.
        batch_size: the denoiser's batch (windows).
        learning_rate: its Adam rate.
        lr_decay_steps: K > 0: the rate holds ``learning_rate`` until the run's last K optimizer
            steps (of ``iterations * denoiser_steps``), then falls linearly to zero at the last
            one (0: constant to the end). The spread between trainings and between snapshots
            of one training lives in the last few hundred steps of a constant-rate fit
            (experiments/finetune/rounds); an annealed end asks whether it narrows.
        grad_clip: its global-norm gradient clip.
        steps_per_call: optimizer steps per jitted call.
        ema_decay: per-step decay of the EMA of the parameters, which is the planner (rollouts,
            evaluation, ``planner/``), as in pretraining; 0 uses the trained parameters.
        checkpoint_every: iterations between checkpoints (buffer included).
        eval_every: iterations between success measurements on the evaluation harness (0: off).
        eval_episodes: episodes per measurement.
        eval_task: the measurement's task.
        eval_rules: success rules measured (``scenario.outcomes.RULES``), each episode's outcome
            kept in ``eval_episodes.jsonl`` as in ``dmpc finetune``.
        eval_before: also measure the starting planner (iteration 0) when a run starts.
        eval_seed: the measurement's keys (0: ``dmpc eval``'s and every run's in-loop keys;
            another seed, e.g. validation keys to pick among trainings or snapshots on).
        keep_best: also keep the planner of the evaluation with the highest success under the
            first of ``eval_rules`` so far (ties: the earlier) as ``<run>/best/``, a planner
            run of its own (``load_planner``, ``dmpc eval``, ``eval_params.py <run>/best``) with
            ``best.json`` naming its iteration and rates: a pick among a training's snapshots,
            on the evaluation's keys (use validation keys, ``eval_seed``, and confirm the pick
            on others).
        seed: PRNG seed.
    """

    pretrained: str = "checkpoints/diffusion/cpu_standardize_recovery_6k"
    demonstrator_run: str = DEFAULT_DEMONSTRATOR
    dataset: str = "data/cpu_recovery"
    offline_fraction: float = 0.5
    learner: str = "planner"
    n_envs: int = 128
    steps_per_iter: int = 100
    iterations: int = 30
    branch_steps: tuple[int, int] = (24, 48)
    skip_after_fork: int = 0
    commit_steps: int = 0
    drop_fallen: bool = False
    execute: int = 11
    margin: int = 4
    guidance_scale: float = 0.1
    vx: tuple[float, float] = (0.3, 1.0)
    wz: tuple[float, float] = (-0.5, 0.5)
    resample_s: float = 5.0
    env_set: tuple[str, ...] = ()
    buffer_size: int = 20_000
    denoiser_steps: int = 200
    batch_size: int = 256
    learning_rate: float = 1e-4
    lr_decay_steps: int = 0
    grad_clip: float = 1.0
    steps_per_call: int = 20
    ema_decay: float = 0.995
    checkpoint_every: int = 1
    eval_every: int = 5
    eval_episodes: int = 64
    eval_task: str = "walk_1.0"
    eval_rules: tuple[str, ...] = ("strict",)
    eval_before: bool = True
    eval_seed: int = 0
    keep_best: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.learner not in ("planner", "demonstrator"):
            raise ValueError(
                f"DaggerConfig.learner must be 'planner' or 'demonstrator', got {self.learner!r}"
            )
        if self.commit_steps < 0:
            raise ValueError(f"DaggerConfig.commit_steps must be >= 0, got {self.commit_steps}")
        if self.skip_after_fork < 0:
            raise ValueError(
                f"DaggerConfig.skip_after_fork must be >= 0, got {self.skip_after_fork}"
            )
        for name in ("n_envs", "steps_per_iter", "iterations", "execute", "buffer_size",
                     "batch_size", "steps_per_call", "checkpoint_every"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"DaggerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.denoiser_steps % self.steps_per_call:
            raise ValueError(
                f"DaggerConfig.denoiser_steps ({self.denoiser_steps}) must be a multiple of "
                f"steps_per_call ({self.steps_per_call})"
            )
        if not 0 <= self.lr_decay_steps <= self.iterations * self.denoiser_steps:
            raise ValueError(
                f"DaggerConfig.lr_decay_steps must be in [0, iterations * denoiser_steps = "
                f"{self.iterations * self.denoiser_steps}], got {self.lr_decay_steps}"
            )
        lo, hi = self.branch_steps
        if not 1 <= lo <= hi:
            raise ValueError(f"DaggerConfig.branch_steps must be 1 <= lo <= hi, got {(lo, hi)}")
        if not 0 < self.margin < self.execute:
            raise ValueError("DaggerConfig.margin must be in (0, execute)")
        if not 0 <= self.offline_fraction <= 1:
            raise ValueError(
                f"DaggerConfig.offline_fraction must be in [0, 1], got {self.offline_fraction}"
            )
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"DaggerConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.offline_fraction > 0 and not self.dataset:
            raise ValueError("DaggerConfig.offline_fraction > 0 needs a dataset")
        if self.eval_every < 0 or self.eval_episodes < 1:
            raise ValueError("DaggerConfig.eval_every must be >= 0 and eval_episodes >= 1")
        if self.keep_best and not self.eval_every:
            raise ValueError("DaggerConfig.keep_best needs evaluations (eval_every > 0)")
        bad = set(self.eval_rules) - {"strict", "paper", "box"}
        if bad or not self.eval_rules:
            raise ValueError(
                f"DaggerConfig.eval_rules must name strict, paper or box, got {self.eval_rules}"
            )


def learning_rate(cfg: DaggerConfig, step):
    """The Adam rate at optimizer step ``step`` (0-based, over the whole run): ``learning_rate``
    up to the last ``lr_decay_steps`` = K steps, then linearly down to ``learning_rate / K`` at the
    run's last step (constant with K = 0)."""
    if not cfg.lr_decay_steps:
        return cfg.learning_rate
    total, k = cfg.iterations * cfg.denoiser_steps, cfg.lr_decay_steps
    return cfg.learning_rate * jnp.clip((total - step) / k, 0.0, 1.0)


def make_dagger_optimizer(cfg: DaggerConfig):
    """Pretraining's optimizer (global-norm clip, then Adam) at ``learning_rate``'s rate."""
    return make_optimizer(
        cfg, functools.partial(learning_rate, cfg) if cfg.lr_decay_steps else None
    )


def dagger_preset(name: str) -> DaggerConfig:
    if name == "tiny":
        return DaggerConfig(
            pretrained="checkpoints/diffusion/tiny", demonstrator_run="checkpoints/demonstrator/tiny",
            dataset="", offline_fraction=0.0, n_envs=2, steps_per_iter=16, iterations=2,
            branch_steps=(8, 10), execute=3, margin=1, buffer_size=20, denoiser_steps=2,
            batch_size=4, steps_per_call=2, eval_every=0,
        )  # fmt: skip
    if name == "cpu":
        return DaggerConfig()
    raise ValueError(f"unknown dagger preset {name!r}; choose tiny or cpu")
