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


def select_envs(mask: jax.Array, new, old):
    """Per-env choice between two batched pytrees: ``new`` where ``mask`` [B] is true (leaves
    [B, ...]; the mask is broadcast over their trailing axes)."""

    def pick(n, o):
        m = jnp.reshape(mask, mask.shape + (1,) * (o.ndim - mask.ndim))
        return jnp.where(m, n, o)

    return jax.tree.map(pick, new, old)


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
        done = state.done > 0
        info = dict(state.info)
        for k, v in fresh.info.items():
            if k not in _EPISODE_KEYS:
                info[k] = select_envs(done, v, state.info[k])
        return state.replace(
            pipeline_state=select_envs(done, fresh.pipeline_state, state.pipeline_state),
            obs=select_envs(done, fresh.obs, state.obs),
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
