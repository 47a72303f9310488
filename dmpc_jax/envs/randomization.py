"""Domain randomisation drawn per episode: friction, added base mass, centre-of-mass offset,
motor strength and joint damping scale (the demonstrator's ranges, ``RandomizationConfig``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dmpc_jax.envs.config import RandomizationConfig


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
