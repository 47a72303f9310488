"""Shared, compiled-once fixtures: MJX compiles cost 10-30 s each on 2 cores."""

import chex
import jax
import pytest

from dmpc_jax.config import env_preset
from dmpc_jax.envs.go2_joystick import Go2Joystick


@pytest.fixture(scope="session")
def env() -> Go2Joystick:
    return Go2Joystick(env_preset("tiny"))


@pytest.fixture(scope="session")
def env_fns(env):
    """(reset, step) of the unbatched env, each jitted once for the session; step raises if it is
    ever traced twice (a recompile)."""
    return jax.jit(env.reset), jax.jit(chex.assert_max_traces(env.step, n=1))
