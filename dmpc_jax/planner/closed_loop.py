"""The receding-horizon planner as a batched env controller (``envs.rollout.Controller``).

``planner_controller`` turns a single-robot ``plan(s_now, key) -> actions [H, 12]`` into a
controller for B envs at once: the plan is vmapped over robots inside ``mpc_step``'s
``lax.cond``, so the planner only runs on the steps that plan.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from dmpc_jax.envs.rollout import Controller
from dmpc_jax.planner.mpc import MPCConfig, mpc_init, mpc_step


def planner_controller(
    cfg: MPCConfig, plan_one: Callable[[jax.Array, jax.Array], jax.Array]
) -> Controller:
    """plan_one(s_now [49], key) -> actions [H, 12] (env units)."""

    def plan_batch(obs_state, key):
        keys = jax.random.split(key, obs_state.shape[0])
        return jax.vmap(plan_one)(obs_state, keys)

    def init(obs, key):
        return mpc_init(cfg, plan_batch, obs["state"], key)

    def act(state, obs, key):
        return mpc_step(cfg, plan_batch, state, obs["state"], key)

    return Controller(init, act)
