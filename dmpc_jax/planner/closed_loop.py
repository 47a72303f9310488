"""The receding-horizon planner as a batched env controller (``envs.rollout.Controller``).

``planner_controller`` turns a single-robot ``plan_one(args, s_now, key) -> actions [H, 12]``
into a controller for B envs at once: the plan is vmapped over robots inside ``mpc_step``'s
``lax.cond``, so the planner only runs on the steps that plan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from dmpc_jax.envs.rollout import Controller
from dmpc_jax.planner.mpc import MPCConfig, mpc_init, mpc_step


def planner_controller(
    cfg: MPCConfig, plan_one: Callable[[Any, jax.Array, jax.Array], jax.Array]
) -> Controller:
    """plan_one(args, s_now [49], key) -> actions [H, 12] (env units); ``args`` is the rollout's
    runtime input (parameters, task arrays), shared by the batch."""

    def batch_planner(args):
        def plan_batch(obs_state, key):
            keys = jax.random.split(key, obs_state.shape[0])
            return jax.vmap(lambda s, k: plan_one(args, s, k))(obs_state, keys)

        return plan_batch

    def init(obs, key, args):
        return mpc_init(cfg, batch_planner(args), obs["state"], key)

    def act(state, obs, key, args):
        return mpc_step(cfg, batch_planner(args), state, obs["state"], key)

    return Controller(init, act)
