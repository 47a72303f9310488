"""What the env draws at random: the domain randomisation of each episode (friction, added base
mass, centre-of-mass offset, motor strength and joint damping scale: the demonstrator's ranges,
``RandomizationConfig``), the velocity commands, the intervals between pushes, and a recorded
start (``EnvConfig.init_states``)."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.envs.config import CommandConfig, PushConfig, RandomizationConfig


def sample_randomization(r: RandomizationConfig, key) -> dict:
    """One episode's randomisation (nominal values when ``r.enabled`` is False)."""
    ks = jax.random.split(key, 5)
    if not r.enabled:
        return {
            "friction": jnp.ones(()),
            "added_mass": jnp.zeros(()),
            "com_offset": jnp.zeros(2),
            "motor_strength": jnp.ones(()),
            "damping_scale": jnp.ones(()),
        }

    def u(k, rng, shape=()):
        return jax.random.uniform(k, shape, minval=rng[0], maxval=rng[1])

    return {
        "friction": u(ks[0], r.friction),
        "added_mass": u(ks[1], r.added_base_mass),
        "com_offset": u(ks[2], r.com_offset, (2,)),
        "motor_strength": u(ks[3], r.motor_strength),
        "damping_scale": u(ks[4], r.joint_damping_scale),
    }


def sample_command(c: CommandConfig, key) -> jax.Array:
    """[3] (vx, vy, wz) drawn from the command ranges; |wz| under the deadband is 0, and the
    whole command is 0 with probability ``c.zero_prob``."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    cmd = jnp.array(
        [
            jax.random.uniform(k1, (), minval=c.vx[0], maxval=c.vx[1]),
            jax.random.uniform(k2, (), minval=c.vy[0], maxval=c.vy[1]),
            jax.random.uniform(k3, (), minval=c.wz[0], maxval=c.wz[1]),
        ]
    )
    cmd = cmd.at[2].set(jnp.where(jnp.abs(cmd[2]) < c.wz_deadband, 0.0, cmd[2]))
    return jnp.where(jax.random.bernoulli(k4, c.zero_prob), 0.0, cmd)


def sample_push_interval(p: PushConfig, ctrl_dt: float, key) -> jax.Array:
    """Control steps until the next push, drawn from ``p.interval_s``."""
    lo, hi = p.interval_s
    return (jax.random.uniform(key, (), minval=lo, maxval=hi) / ctrl_dt).astype(jnp.int32)


def load_init_states(path: str, nq: int, nv: int) -> tuple[jax.Array, jax.Array] | None:
    """(qpos [N, nq], qvel [N, nv]) of an ``EnvConfig.init_states`` file, checked; None for ""."""
    if not path:
        return None
    if not os.path.isfile(path):
        raise ValueError(f"EnvConfig.init_states: {path} is not a file")
    with np.load(path) as f:
        qpos, qvel = np.asarray(f["qpos"], np.float32), np.asarray(f["qvel"], np.float32)
    if qpos.ndim != 2 or qpos.shape[1] != nq or qvel.shape != (len(qpos), nv) or not len(qpos):
        raise ValueError(
            f"EnvConfig.init_states {path}: want qpos [N, {nq}] and qvel [N, {nv}], got "
            f"{qpos.shape} and {qvel.shape}"
        )
    return jnp.asarray(qpos), jnp.asarray(qvel)


def draw_init_state(states: tuple[jax.Array, jax.Array], key) -> tuple[jax.Array, jax.Array]:
    """One recorded (qpos, qvel) drawn at random, its base moved over the origin."""
    i = jax.random.randint(key, (), 0, states[0].shape[0])
    return states[0][i].at[:2].set(0.0), states[1][i]
