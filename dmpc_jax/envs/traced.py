"""An env's ``reset`` and ``step`` traced once per process and config.

Tracing the MJX Go2 env takes seconds (its physics is a long Python program to trace), and a
process traces it again for every function that calls it: the rollout's start and its auto-reset
each trace ``reset``, and every env built anew from the same config (the finetuning loop, its
evaluator, a resumed run, the tests) traces both again. Calling them through a ``jax.jit`` keyed
by the env's type and config lets JAX reuse one trace for all of them; the nested jit is inlined
when the caller compiles, so the numbers are the same (tested bit for bit).
"""

from __future__ import annotations

import functools

import jax


class SameConfig:
    """A static jit argument that stands for ``env``: equal for envs of one type and config,
    which build the same model and so trace to the same program."""

    def __init__(self, env):
        self.env = env

    def _key(self):
        return type(self.env), self.env.cfg

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other) -> bool:
        return isinstance(other, SameConfig) and self._key() == other._key()


@functools.partial(jax.jit, static_argnums=0)
def _reset(env: SameConfig, rng):
    return env.env._reset(rng)


@functools.partial(jax.jit, static_argnums=0)
def _step(env: SameConfig, state, action):
    return env.env._step(state, action)


def reset(env, rng):
    """``env._reset(rng)``, traced once per env type and config in this process."""
    return _reset(SameConfig(env), rng)


def step(env, state, action):
    """``env._step(state, action)``, traced once per env type and config in this process."""
    return _step(SameConfig(env), state, action)
