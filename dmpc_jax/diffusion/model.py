"""The trajectory diffusion model: config, diffusion-space scaling, losses (METHOD §2) and EMA.

A trajectory tau is [H, Dx] with row h = [a_h (Da = 12), s_h (Do = 49)]. The current state s_0 is
inpainted: overwritten in the noisy input (and so carries the velocity command) and excluded from
the loss. Networks are flax NNX modules; everything jitted works on their split ``(graphdef,
params)`` and merges inside (``nnx.merge``), so parameters are plain pytrees for optax and orbax.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dmpc_jax.diffusion.schedule import Schedule, make_schedule, q_sample
from dmpc_jax.diffusion.unet import TemporalUNet, UNetConfig, ValueNet
from dmpc_jax.envs import obs as obs_lib

ACTION_DIM = 12
OBS_DIM = obs_lib.OBS_SIZE
TRANSITION_DIM = ACTION_DIM + OBS_DIM

# METHOD §1: per-slice multipliers from observation space to diffusion space.
PAPER_OBS_SCALE = {
    "lin_vel": 0.33,
    "ang_vel": 0.5,
    "gravity": 1.0,
    "command": 0.5,
    "joint_pos": 1.0,
    "joint_vel": 1.0,
    "last_action": 1.0,
    "friction": 0.5,
}


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """The ``DiffusionConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        horizon: H, rows per trajectory (multiple of 2^(levels-1)).
        num_steps: K, diffusion steps.
        unet: denoiser and value-net widths.
        discount: horizon discount of the loss weights (mean-normalised over h).
        action_weight: loss weight of the first action a_0.
        scaling: ``paper`` (METHOD §1 per-slice multipliers) or ``standardize`` (dataset mean/std).
        cosine_s: offset s of the cosine schedule.
    """

    horizon: int = 24
    num_steps: int = 10
    unet: UNetConfig = UNetConfig()
    discount: float = 0.99
    action_weight: float = 10.0
    scaling: Literal["paper", "standardize"] = "paper"
    cosine_s: float = 0.008

    def __post_init__(self):
        if self.horizon % self.unet.horizon_multiple:
            raise ValueError(
                f"DiffusionConfig.horizon ({self.horizon}) must be a multiple of "
                f"{self.unet.horizon_multiple} for {len(self.unet.dim_mults)} U-Net levels"
            )
        if self.num_steps < 1:
            raise ValueError(f"DiffusionConfig.num_steps must be >= 1, got {self.num_steps}")
        if not 0 < self.discount <= 1:
            raise ValueError(f"DiffusionConfig.discount must be in (0, 1], got {self.discount}")
        if self.scaling not in ("paper", "standardize"):
            raise ValueError(
                f"DiffusionConfig.scaling must be paper or standardize, got {self.scaling!r}"
            )


def diffusion_preset(name: str) -> DiffusionConfig:
    if name == "tiny":
        return DiffusionConfig(
            horizon=8, num_steps=4, unet=UNetConfig(dim=8, dim_mults=(1, 2), value_dim=16)
        )
    if name == "cpu":
        return DiffusionConfig(unet=UNetConfig(dim=32, dim_mults=(1, 2, 4, 8), value_dim=16))
    if name == "paper":
        return DiffusionConfig()
    raise ValueError(f"unknown diffusion preset {name!r}; choose tiny, cpu or paper")


# ------------------------------------------------------------------ scaling


def paper_scaler() -> dict:
    """(shift, scale) per row dimension [Dx]: z = (x - shift) * scale."""
    scale = np.ones(TRANSITION_DIM, np.float32)
    for name, sl in obs_lib.OBS_SLICES.items():
        scale[ACTION_DIM + sl.start : ACTION_DIM + sl.stop] = PAPER_OBS_SCALE[name]
    return {"shift": np.zeros(TRANSITION_DIM, np.float32), "scale": scale}


def standardize_scaler(stats: dict, eps: float = 1e-2) -> dict:
    """From dataset stats (``meta['stats']``): z = (x - mean) / max(std, eps)."""
    mean = np.concatenate([stats["action"]["mean"], stats["obs"]["mean"]]).astype(np.float32)
    std = np.concatenate([stats["action"]["std"], stats["obs"]["std"]]).astype(np.float32)
    return {"shift": mean, "scale": 1.0 / np.maximum(std, eps)}


def make_scaler(cfg: DiffusionConfig, stats: dict | None = None) -> dict:
    if cfg.scaling == "paper":
        return paper_scaler()
    if stats is None:
        raise ValueError("scaling='standardize' needs dataset statistics")
    return standardize_scaler(stats)


def to_diffusion(scaler, action, obs):
    """(action [..., H, 12], obs [..., H, 49]) -> tau [..., H, 61] in diffusion space."""
    x = jnp.concatenate([action, obs], axis=-1)
    return (x - scaler["shift"]) * scaler["scale"]


def from_diffusion(scaler, tau):
    """tau [..., H, 61] -> (action [..., H, 12], obs [..., H, 49]) in env units."""
    x = tau / scaler["scale"] + scaler["shift"]
    return x[..., :ACTION_DIM], x[..., ACTION_DIM:]


# ------------------------------------------------------------------ networks


@dataclasses.dataclass(frozen=True)
class Networks:
    """Graph definitions (static) of the denoiser and the value net."""

    denoiser: nnx.GraphDef
    value: nnx.GraphDef


def init_networks(cfg: DiffusionConfig, key: jax.Array):
    """(Networks, params) with params = {'denoiser': ..., 'value': ...} plain pytrees.

    Parameters are drawn in numpy from shapes found by ``nnx.eval_shape``, with flax's default
    initialisers (kernels: LeCun truncated normal over fan-in; biases 0; norm scales 1). NNX's own
    initialisation compiles every random op and takes ~17 s on 2 cores even for the tiny preset.
    """
    seed = int(np.frombuffer(np.asarray(jax.random.key_data(key)).tobytes(), np.uint32).sum())
    rng = np.random.default_rng(seed)
    unet = nnx.eval_shape(lambda: TemporalUNet(TRANSITION_DIM, cfg.unet, nnx.Rngs(0), ACTION_DIM))
    value = nnx.eval_shape(lambda: ValueNet(TRANSITION_DIM, cfg.horizon, cfg.unet, nnx.Rngs(0)))
    g_u, s_u = nnx.split(unet, nnx.Param)
    g_v, s_v = nnx.split(value, nnx.Param)

    def draw(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        shape = tuple(leaf.shape)
        if name == "kernel":
            std = np.sqrt(1.0 / np.prod(shape[:-1])) / 0.87962566  # truncated-normal correction
            return jnp.asarray(np.clip(rng.standard_normal(shape), -2, 2) * std, jnp.float32)
        if name == "bias":
            return jnp.zeros(shape, jnp.float32)
        if name == "scale":
            return jnp.ones(shape, jnp.float32)
        raise ValueError(f"no initialiser for parameter {jax.tree_util.keystr(path)}")

    params = {
        "denoiser": jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(s_u)),
        "value": jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(s_v)),
    }
    return Networks(g_u, g_v), params


def network_defs(cfg: DiffusionConfig) -> Networks:
    """The graph definitions alone (abstract init: no parameters are computed)."""
    unet = nnx.eval_shape(lambda: TemporalUNet(TRANSITION_DIM, cfg.unet, nnx.Rngs(0), ACTION_DIM))
    value = nnx.eval_shape(lambda: ValueNet(TRANSITION_DIM, cfg.horizon, cfg.unet, nnx.Rngs(0)))
    return Networks(nnx.split(unet, nnx.Param)[0], nnx.split(value, nnx.Param)[0])


def _merge(graphdef, params):
    state = nnx.State(params) if not isinstance(params, nnx.State) else params
    return nnx.merge(graphdef, state)


@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef, params, x, k):
    """One network's forward, traced once per graph definition and input shapes in a process:
    merging an NNX graph and tracing its call costs a few tenths of a second each time, and a
    guided plan calls the value net in its gradient and its ranking, in every sampler variant
    and every program that plans; as a nested jit it is inlined when its caller compiles."""
    return _merge(graphdef, params)(x, k)


def apply_denoiser(nets: Networks, params, x, k):
    """x0 prediction [B, H, Dx] from x_k [B, H, Dx] and k [B]."""
    return _apply(nets.denoiser, params, x, k)


def apply_value(nets: Networks, params, x, k):
    """R_nn(x_k, k) [B]."""
    return _apply(nets.value, params, x, k)


# ------------------------------------------------------------------ losses


def loss_weights(cfg: DiffusionConfig) -> jax.Array:
    """[H, Dx]: discount^h (mean-normalised), first action x action_weight, s_0 zero (inpainted)."""
    disc = cfg.discount ** np.arange(cfg.horizon)
    disc = disc / disc.mean()
    w = np.repeat(disc[:, None], TRANSITION_DIM, axis=1)
    w[0, :ACTION_DIM] = cfg.action_weight
    w[0, ACTION_DIM:] = 0.0
    return jnp.asarray(w, jnp.float32)


def inpaint(x, s0):
    """Overwrite the state of row 0: x [..., H, Dx], s0 [..., Do]."""
    return x.at[..., 0, ACTION_DIM:].set(s0)


def diffusion_loss(
    nets: Networks,
    params,
    sched: Schedule,
    weights: jax.Array,
    tau: jax.Array,
    key: jax.Array,
    sample_weights: jax.Array | None = None,
):
    """Weighted x0-L2 of the denoiser on clean trajectories tau [B, H, Dx] (diffusion space).

    Args:
        sample_weights: [B] per-trajectory weights (RWR); None means 1.

    Returns:
        (loss, metrics)
    """
    b = tau.shape[0]
    k_t, k_n = jax.random.split(key)
    k = jax.random.randint(k_t, (b,), 0, sched.num_steps)
    noise = jax.random.normal(k_n, tau.shape)
    x_k = inpaint(q_sample(sched, tau, k, noise), tau[:, 0, ACTION_DIM:])
    x0_hat = apply_denoiser(nets, params["denoiser"], x_k, k)
    err = jnp.square(x0_hat - tau) * weights  # [B, H, Dx]
    per_sample = err.mean(axis=(1, 2))
    w = jnp.ones(b) if sample_weights is None else sample_weights
    loss = jnp.mean(per_sample * w)
    a0_err = jnp.mean(jnp.square(x0_hat[:, 0, :ACTION_DIM] - tau[:, 0, :ACTION_DIM]))
    return loss, {"loss/denoiser": loss, "loss/a0_mse": a0_err}


def value_loss(nets: Networks, params, sched: Schedule, tau, target, key):
    """MSE of R_nn(x_k, k) against the window's mean per-step reward ``target`` [B]."""
    b = tau.shape[0]
    k_t, k_n = jax.random.split(key)
    k = jax.random.randint(k_t, (b,), 0, sched.num_steps)
    x_k = inpaint(
        q_sample(sched, tau, k, jax.random.normal(k_n, tau.shape)), tau[:, 0, ACTION_DIM:]
    )
    pred = apply_value(nets, params["value"], x_k, k)
    loss = jnp.mean(jnp.square(pred - target))
    return loss, {"loss/value": loss}


def ema_update(ema, params, decay: float):
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def schedule_for(cfg: DiffusionConfig) -> Schedule:
    return make_schedule(cfg.num_steps, cfg.cosine_s)
