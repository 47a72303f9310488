"""The pretraining run's settings (``PretrainConfig``), its presets ``tiny``, ``cpu``, ``paper``,
the learning-rate schedule, the optimizer and the training state it starts from."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dmpc_jax.diffusion import model as M


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """The ``PretrainConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        dataset: dataset directory (``make dataset``).
        model: the diffusion model.
        batch_size: windows per optimizer step (global, split over devices).
        learning_rate: Adam step size.
        grad_clip: global-norm gradient clip.
        num_steps: optimizer steps in total.
        steps_per_call: optimizer steps per jitted call (one log point).
        checkpoint_every: optimizer steps between checkpoints (a multiple of steps_per_call).
        lr_decay_from: from this step on, the learning rate follows a cosine from ``learning_rate``
            down to 0 at ``num_steps`` (None: constant). With ``num_steps`` and ``checkpoint_every``
            it is one of the fields a ``--resume`` may change, so a run can be extended and annealed.
        ema_decay: EMA decay of the denoiser/value parameters.
        ema_start: step from which the EMA tracks (before it, EMA = params).
        holdout_fraction: fraction of envs held out for evaluation.
        seed: PRNG seed.
    """

    dataset: str = "data/cpu"
    model: M.DiffusionConfig = M.diffusion_preset("cpu")
    batch_size: int = 256
    learning_rate: float = 2e-4
    grad_clip: float = 1.0
    num_steps: int = 20_000
    steps_per_call: int = 50
    checkpoint_every: int = 1000
    lr_decay_from: int | None = None
    ema_decay: float = 0.995
    ema_start: int = 1000
    holdout_fraction: float = 0.05
    seed: int = 0

    def __post_init__(self):
        if self.checkpoint_every % self.steps_per_call:
            raise ValueError(
                f"PretrainConfig.checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                f"steps_per_call ({self.steps_per_call})"
            )
        if self.num_steps % self.steps_per_call:
            raise ValueError("PretrainConfig.num_steps must be a multiple of steps_per_call")
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError("PretrainConfig.holdout_fraction must be in [0, 1)")
        if self.lr_decay_from is not None and not 0 <= self.lr_decay_from < self.num_steps:
            raise ValueError(
                f"PretrainConfig.lr_decay_from ({self.lr_decay_from}) must be in "
                f"[0, num_steps = {self.num_steps})"
            )


EXTENDABLE = ("num_steps", "checkpoint_every", "lr_decay_from")  # a --resume may change these


def lr_schedule(cfg: PretrainConfig) -> np.ndarray:
    """``[lr_decay_from, num_steps]`` (int32; -1: no decay): the schedule as a run-time input of
    the compiled step, so a resume that extends or anneals a run (``EXTENDABLE``) runs the
    program it compiled before."""
    start = -1 if cfg.lr_decay_from is None else cfg.lr_decay_from
    return np.asarray([start, cfg.num_steps], np.int32)


def lr_factor_at(schedule, step):
    """The learning rate at ``step`` relative to ``cfg.learning_rate`` for an ``lr_schedule``
    (traced or not): 1 before the decay (and without one), then a cosine to 0 at num_steps."""
    start, end = schedule[0], schedule[1]
    # times the reciprocal, as XLA compiled the division by the constant span this schedule
    # replaced: the rates of a compiled step are bitwise those of runs made before it
    frac = jnp.asarray(step - start, jnp.float32) * (1.0 / jnp.asarray(end - start, jnp.float32))
    decay = 0.5 * (1 + jnp.cos(jnp.pi * jnp.clip(frac, 0, 1)))
    return jnp.where((start < 0) | (step < start), 1.0, decay)


def lr_factor(cfg: PretrainConfig, step):
    """The learning rate at ``step`` relative to ``cfg.learning_rate`` (1 before the decay)."""
    return lr_factor_at(jnp.asarray(lr_schedule(cfg)), step)


def pretrain_preset(name: str) -> PretrainConfig:
    if name == "tiny":
        return PretrainConfig(
            dataset="data/tiny", model=M.diffusion_preset("tiny"), batch_size=8, num_steps=6,
            steps_per_call=2, checkpoint_every=2, ema_start=2, holdout_fraction=0.25,
        )  # fmt: skip
    if name == "cpu":
        return PretrainConfig()
    if name == "paper":
        return PretrainConfig(
            dataset="data/paper", model=M.diffusion_preset("paper"), batch_size=8192,
            learning_rate=1e-4, num_steps=200_000, steps_per_call=100, checkpoint_every=5000,
        )  # fmt: skip
    raise ValueError(f"unknown pretrain preset {name!r}; choose tiny, cpu or paper")


def make_optimizer(cfg: PretrainConfig, rate=None):
    """Global-norm clip, then Adam at ``rate``: a float or an optax schedule of the optimizer
    step (None: ``cfg.learning_rate``)."""
    rate = cfg.learning_rate if rate is None else rate
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(rate))


def initial_state(cfg: PretrainConfig, params, optimizer) -> dict:
    """The training state (params, EMA, Adam state, step, key) a run starts from; also the
    template that checkpoints are restored into."""
    return {
        "params": params,
        "ema": params,
        "opt_state": optimizer.init(params),
        "step": jnp.zeros((), jnp.int32),
        "key": jax.random.PRNGKey(cfg.seed + 1),
    }
