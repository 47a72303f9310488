"""Constraint projections on planned trajectories (METHOD §4): boxes and rate limits.

Bounds are arrays ([H, Dx] lower/upper, [Dx] rate), so they may vary over the horizon and change
at run time without recompiling; +-inf leaves a dimension free. The projection clamps row by row:
row h lands in its box intersected with [x_{h-1} - d, x_{h-1} + d]; where that intersection is
empty (the previous row is far outside the box) the box wins. Every row then satisfies its box,
the rate limit holds wherever it can, and projecting twice changes nothing (idempotent).
The inpainted current state (row 0, state dims) is never changed; row 0's action is.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.diffusion.model import ACTION_DIM, TRANSITION_DIM
from dmpc_jax.envs import obs as obs_lib


@flax.struct.dataclass
class Constraints:
    """lower, upper: [H, Dx]; rate: [Dx] (max |x_h - x_{h-1}|). Units of the space they act in."""

    lower: jax.Array
    upper: jax.Array
    rate: jax.Array


def no_constraints(horizon: int) -> Constraints:
    inf = jnp.full((horizon, TRANSITION_DIM), jnp.inf, jnp.float32)
    return Constraints(-inf, inf, jnp.full((TRANSITION_DIM,), jnp.inf, jnp.float32))


def row_slice(field: str) -> slice:
    """Columns of a trajectory row: ``action`` or an observation slice name."""
    if field == "action":
        return slice(0, ACTION_DIM)
    sl = obs_lib.OBS_SLICES[field]
    return slice(ACTION_DIM + sl.start, ACTION_DIM + sl.stop)


def box(c: Constraints, field: str, lo, hi, rows=None) -> Constraints:
    """Add a box on ``field`` (per joint: arrays of the field's width; or scalars) for ``rows``
    (default all). Combined with existing bounds by intersection."""
    sl = row_slice(field)
    rows = slice(None) if rows is None else rows
    lower = c.lower.at[rows, sl].max(jnp.asarray(lo, jnp.float32))
    upper = c.upper.at[rows, sl].min(jnp.asarray(hi, jnp.float32))
    return c.replace(lower=lower, upper=upper)


def rate_limit(c: Constraints, field: str, d) -> Constraints:
    sl = row_slice(field)
    return c.replace(rate=c.rate.at[sl].min(jnp.asarray(d, jnp.float32)))


def to_diffusion_space(c: Constraints, scaler) -> Constraints:
    """Env-unit bounds -> diffusion space (z = (x - shift) * scale, scale > 0)."""
    shift, scale = jnp.asarray(scaler["shift"]), jnp.asarray(scaler["scale"])
    return Constraints(
        lower=(c.lower - shift) * scale, upper=(c.upper - shift) * scale, rate=c.rate * scale
    )


def project(x: jax.Array, c: Constraints) -> jax.Array:
    """Project one trajectory x [H, Dx] (see the module docstring)."""
    free0 = np.zeros(TRANSITION_DIM, bool)
    free0[ACTION_DIM:] = True  # row 0 state: inpainted, left as is
    row0 = jnp.where(free0, x[0], jnp.clip(x[0], c.lower[0], c.upper[0]))

    def body(prev, inputs):
        row, lo, hi = inputs
        lo_r = jnp.maximum(lo, prev - c.rate)
        hi_r = jnp.minimum(hi, prev + c.rate)
        empty = lo_r > hi_r
        new = jnp.where(empty, jnp.clip(row, lo, hi), jnp.clip(row, lo_r, hi_r))
        return new, new

    _, rest = jax.lax.scan(body, row0, (x[1:], c.lower[1:], c.upper[1:]))
    return jnp.concatenate([row0[None], rest], axis=0)


def violation(x: jax.Array, c: Constraints) -> jax.Array:
    """Largest box or rate violation of x [H, Dx] outside row 0's state (0 when satisfied)."""
    mask = jnp.ones_like(x).at[0, ACTION_DIM:].set(0.0)
    box_v = jnp.max(mask * (jax.nn.relu(c.lower - x) + jax.nn.relu(x - c.upper)))
    rate_v = jnp.max(jax.nn.relu(jnp.abs(x[1:] - x[:-1]) - c.rate))
    return jnp.maximum(box_v, rate_v)
