"""Training wrappers that brax PPO accepts (``wrap_env_fn``): vmap, episode bookkeeping, auto-reset.

brax's own ``AutoResetWrapper`` restores the *first* state of the episode, so an env that draws its
command, domain randomisation and latency at reset would replay the same draw forever. Ours
replaces a finished env by a fresh ``reset`` with a new key; episode bookkeeping (steps,
truncation, episode metrics) stays with brax's ``EpisodeWrapper``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from brax.envs.base import Env, State, Wrapper
from brax.envs.wrappers.training import EpisodeWrapper, VmapWrapper

_EPISODE_KEYS = ("steps", "truncation", "episode_done", "episode_metrics")


class FreshAutoResetWrapper(Wrapper):
    """Resets finished envs of a batch with ``env.unwrapped.reset`` and a fresh key."""

    def reset(self, rng: jax.Array) -> State:
        return self.env.reset(rng)

    def step(self, state: State, action: jax.Array) -> State:
        if "steps" in state.info:
            state.info["steps"] = jnp.where(state.done, 0, state.info["steps"])
        state = state.replace(done=jnp.zeros_like(state.done))
        state = self.env.step(state, action)
        reset_keys = jax.vmap(lambda k: jax.random.fold_in(k, 7))(state.info["key"])
        fresh = jax.vmap(self.env.unwrapped.reset)(reset_keys)

        def where_done(new, old):
            done = jnp.reshape(state.done, state.done.shape + (1,) * (old.ndim - state.done.ndim))
            return jnp.where(done > 0, new, old)

        info = dict(state.info)
        for k, v in fresh.info.items():
            if k not in _EPISODE_KEYS:
                info[k] = jax.tree.map(where_done, v, state.info[k])
        return state.replace(
            pipeline_state=jax.tree.map(where_done, fresh.pipeline_state, state.pipeline_state),
            obs=jax.tree.map(where_done, fresh.obs, state.obs),
            info=info,
        )


def wrap_for_training(
    env: Env, episode_length: int, action_repeat: int = 1, randomization_fn=None
) -> Wrapper:
    """Vmap -> Episode -> fresh auto-reset; the signature of ``brax.envs.training.wrap``."""
    if randomization_fn is not None:
        raise ValueError(
            "Go2Joystick randomises its physics at every reset (EnvConfig.randomization); "
            "pass randomization_fn=None"
        )
    env = VmapWrapper(env)
    env = EpisodeWrapper(env, episode_length, action_repeat)
    return FreshAutoResetWrapper(env)
