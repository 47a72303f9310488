"""Jitted batched rollouts of the joystick env with a controller, for demos, evaluation, MPC and
benchmarks.

A controller is ``(init(obs, key, args) -> cstate, act(cstate, obs, key, args) -> (actions,
cstate))`` over a batch: a stateless policy has an empty state; the receding-horizon planner
carries its chunk and index (``planner/mpc.py``). ``args`` is any pytree of arrays given to the
rollout call (the planner's parameters, task weights and bounds): new values, no recompile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dmpc_jax import milestones
from dmpc_jax.envs.go2_joystick import Go2Joystick

Policy = Callable[[dict, jax.Array], jax.Array]  # (obs dict [B, ...], key) -> actions [B, 12]


class Controller(NamedTuple):
    """``record(cstate) -> dict`` (optional): arrays [B, ...] of the controller's state after
    each step that the rollout adds to its trace (the planner's executed plan row)."""

    init: Callable[[dict, jax.Array, Any], Any]
    act: Callable[[Any, dict, jax.Array, Any], tuple[jax.Array, Any]]
    record: Callable[[Any], dict] | None = None


def stateless(policy: Policy) -> Controller:
    return Controller(lambda obs, key, args: (), lambda c, obs, key, args: (policy(obs, key), c))


def zero_policy(obs: dict, key: jax.Array) -> jax.Array:
    """Hold the default pose: action 0 -> PD target q_default."""
    return jnp.zeros(obs["state"].shape[:-1] + (12,))


def make_segments(
    env: Go2Joystick,
    controller: Controller | Policy,
    n_steps: int,
    batch: int,
    probe: Policy | None = None,
):
    """``(start, run)``, both jitted: ``start(key, command=None, args=()) -> carry`` resets
    ``batch`` envs and the controller; ``run(carry, key, args=()) -> (carry, trace)`` steps them
    ``n_steps`` times. Consecutive ``run`` calls continue one episode, so the controller's
    ``args`` (a task) can change between segments without a recompile or a reset.

    ``controller`` is a ``Controller`` or a stateless policy function. ``command`` [3], if given,
    replaces every env's command at reset (an array input: changing it does not recompile; combine
    with a long ``CommandConfig.resample_s`` to hold it).

    No auto-reset: an env that terminates keeps stepping from where it fell, and
    ``trace['done_any']`` [T, B] records whether it has terminated so far. trace also holds
    ``qpos`` [T, B, nq], ``qvel`` [T, B, nv], ``action`` [T, B, 12], ``reward`` [T, B] and every
    metric [T, B], and what the controller's ``record`` returns. ``probe`` (a policy, e.g. the
    demonstrator): ``trace['probe_action']`` [T, B, 12] is what it would have done on the
    observation the controller acted on (it does not act).
    ``carry = (env state, controller state, fallen [B])``.
    """
    if not isinstance(controller, Controller):
        controller = stateless(controller)
    v_reset, v_step = jax.vmap(env.reset), jax.vmap(env.step)

    def start(key, command=None, args=()):
        k_reset, k_init = jax.random.split(key)
        state = v_reset(jax.random.split(k_reset, batch))
        if command is not None:
            cmd = jnp.broadcast_to(command, state.info["command"].shape)
            hist = _with_command(state.info["obs_hist"], cmd[:, None])  # latency buffer too
            state = state.replace(
                info={**state.info, "command": cmd, "obs_hist": hist},
                obs={**state.obs, "state": _with_command(state.obs["state"], cmd)},
            )
        return state, controller.init(state.obs, k_init, args), jnp.zeros(batch, bool)

    def run(carry, key, args=()):
        def body(carry, k):
            state, cstate, fallen = carry
            action, cstate = controller.act(cstate, state.obs, k, args)
            asked = {} if probe is None else {"probe_action": probe(state.obs, k)}
            state = v_step(state, action)
            fallen = fallen | (state.done > 0)
            out = {
                "qpos": state.pipeline_state.qpos,
                "qvel": state.pipeline_state.qvel,
                "action": action,
                "reward": state.reward,
                "done_any": fallen,
            }
            out.update(state.metrics)
            out.update(asked)
            if controller.record is not None:
                out.update(controller.record(cstate))
            return (state, cstate, fallen), out

        return jax.lax.scan(body, carry, jax.random.split(key, n_steps))

    return jax.jit(start), milestones.marking(jax.jit(run))


def make_rollout(
    env: Go2Joystick,
    controller: Controller | Policy,
    n_steps: int,
    batch: int,
    probe: Policy | None = None,
):
    """``rollout(key, command=None, args=()) -> (final_state, trace)``: one jitted episode of
    ``n_steps`` for ``batch`` envs (see ``make_segments`` for the trace and the arguments)."""
    start, run = make_segments(env, controller, n_steps, batch, probe)

    def rollout(key, command=None, args=()):
        k_start, k_run = jax.random.split(key)
        (state, _, _), trace = run(start(k_start, command, args), k_run, args)
        return state, trace

    return milestones.marking(jax.jit(rollout))


def _with_command(obs, cmd):
    """The observation with its command slice replaced (what reset would have produced)."""
    from dmpc_jax.envs import obs as obs_lib

    sl = obs_lib.OBS_SLICES["command"]
    return obs.at[..., sl].set(cmd * jnp.asarray(obs_lib.COMMAND_SCALE))
