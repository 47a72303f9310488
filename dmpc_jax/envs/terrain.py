"""Ground height under the robot for the configured terrain (flat, slope, or the rough height
field), used by the env's foot-height, base-height and contact probes."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from dmpc_jax.envs.config import EnvConfig
from dmpc_jax.robot import go2


def make_terrain_height(cfg: EnvConfig, mj_model):
    """Ground height under points xy [P, 2] -> [P] for the configured terrain."""
    if cfg.terrain == "flat":
        return lambda xy: jnp.zeros(xy.shape[:-1])
    if cfg.terrain == "slope":
        slope = np.tan(np.deg2rad(cfg.model.slope_deg))
        return lambda xy: xy[..., 0] * slope
    heights = jnp.asarray(
        go2.rough_heights(cfg.model) * mj_model.hfield_size[0, 2], jnp.float32
    )  # [rows(y), cols(x)]
    sx, sy = go2.HFIELD_SIZE
    n = go2.HFIELD_RES

    def height(xy):
        # bilinear interpolation on the grid, clamped at the edges
        fx = jnp.clip((xy[..., 0] + sx) / (2 * sx) * (n - 1), 0, n - 1.001)
        fy = jnp.clip((xy[..., 1] + sy) / (2 * sy) * (n - 1), 0, n - 1.001)
        ix, iy = jnp.floor(fx).astype(jnp.int32), jnp.floor(fy).astype(jnp.int32)
        tx, ty = fx - ix, fy - iy
        h00, h01 = heights[iy, ix], heights[iy, ix + 1]
        h10, h11 = heights[iy + 1, ix], heights[iy + 1, ix + 1]
        return (h00 * (1 - tx) + h01 * tx) * (1 - ty) + (h10 * (1 - tx) + h11 * tx) * ty

    return height
