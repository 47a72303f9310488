"""Jitted batched rollouts of the joystick env with a policy, for demos, evaluation and benchmarks."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from dmpc_jax.envs.go2_joystick import Go2Joystick

Policy = Callable[[dict, jax.Array], jax.Array]  # (obs dict [B, ...], key) -> actions [B, 12]


def zero_policy(obs: dict, key: jax.Array) -> jax.Array:
    """Hold the default pose: action 0 -> PD target q_default."""
    return jnp.zeros(obs["state"].shape[:-1] + (12,))


def make_rollout(env: Go2Joystick, policy: Policy, n_steps: int, batch: int):
    """``rollout(key, command=None) -> (final_state, trace)``: ``batch`` envs, ``n_steps`` steps.

    ``command`` [3], if given, replaces every env's command at reset (an array input: changing it
    does not recompile; combine with a long ``CommandConfig.resample_s`` to hold it).

    No auto-reset: an env that terminates keeps stepping from where it fell, and
    ``trace['done_any']`` [T, B] records whether it has terminated so far. trace also holds
    ``qpos`` [T, B, nq], ``reward`` [T, B] and every metric [T, B].
    """
    v_reset, v_step = jax.vmap(env.reset), jax.vmap(env.step)

    def rollout(key, command=None):
        key, k_reset = jax.random.split(key)
        state = v_reset(jax.random.split(k_reset, batch))
        if command is not None:
            cmd = jnp.broadcast_to(command, state.info["command"].shape)
            state = state.replace(info={**state.info, "command": cmd})

        def body(carry, k):
            state, fallen = carry
            action = policy(state.obs, k)
            state = v_step(state, action)
            fallen = fallen | (state.done > 0)
            out = {"qpos": state.pipeline_state.qpos, "reward": state.reward, "done_any": fallen}
            out.update(state.metrics)
            return (state, fallen), out

        (state, _), trace = jax.lax.scan(
            body, (state, jnp.zeros(batch, bool)), jax.random.split(key, n_steps)
        )
        return state, trace

    return jax.jit(rollout)
