"""The receding-horizon planner as a batched env controller (``envs.rollout.Controller``).

``planner_controller`` turns a single-robot ``plan_one(args, s_now, key) -> rows [H, Da]``
into a controller for B envs at once: the plan is vmapped over robots inside ``mpc_step``'s
``lax.cond``, so the planner only runs on the steps that plan. A row holds the action (its first
12 columns, what the env receives) and may go on with the planned state; the rollout's trace
then records the executed row (``plan/row`` [T, B, Da]) and its index in its plan
(``plan/index`` [T]), which the hard-bound verdicts read (``scenario.outcomes``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from dmpc_jax.diffusion.model import ACTION_DIM
from dmpc_jax.envs.rollout import Controller
from dmpc_jax.planner.mpc import MPCConfig, mpc_init, mpc_step

ROBOT_AXIS = "robots"


def planner_controller(
    cfg: MPCConfig, plan_one: Callable[..., Any], *, stateful: bool = False
) -> Controller:
    """plan_one(args, s_now [49], key) -> rows [H, Da >= 12] (env units); ``args`` is the rollout's
    runtime input (parameters, task arrays), shared by the batch. ``stateful``:
    plan_one(args, s_now, key, memory) -> (actions, memory), memory None on the first plan (see
    ``planner.mpc``), carried per robot. The vmap over robots is named ``ROBOT_AXIS`` (a planner
    may reduce over it, e.g. ``make_cached_plan_fn(axis_name=ROBOT_AXIS)``)."""
    vmap = lambda f: jax.vmap(f, axis_name=ROBOT_AXIS)  # noqa: E731

    def batch_planner(args):
        def plan_batch(obs_state, key, memory=None, prefix=None):
            keys = jax.random.split(key, obs_state.shape[0])
            if prefix is not None:  # committed actions [B, D, 12] (MPCConfig.inpaint_committed)
                if stateful:
                    raise ValueError("inpainting committed actions is not combined with warm start")
                return vmap(lambda s, k, p: plan_one(args, s, k, prefix=p))(obs_state, keys, prefix)
            if not stateful:
                return vmap(lambda s, k: plan_one(args, s, k))(obs_state, keys)
            if memory is None:
                return vmap(lambda s, k: plan_one(args, s, k, None))(obs_state, keys)
            return vmap(lambda s, k, m: plan_one(args, s, k, m))(obs_state, keys, memory)

        return plan_batch

    def init(obs, key, args):
        state = mpc_init(cfg, batch_planner(args), obs["state"], key, stateful=stateful)
        return state, state.chunk[:, 0]

    def act(cstate, obs, key, args):
        state, _ = cstate
        row, state = mpc_step(cfg, batch_planner(args), state, obs["state"], key, stateful=stateful)
        return row[:, :ACTION_DIM], (state, row)

    def record(cstate):
        state, row = cstate
        return {"plan/row": row, "plan/index": state.last}

    return Controller(init, act, record)
