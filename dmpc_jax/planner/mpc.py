"""Receding-horizon execution of diffusion plans (METHOD §5), with the planner state explicit.

Asynchronous mode (the robot; E = 11 executed actions per plan, replan margin D = 4). A plan made
from observation o_t is ready D steps later, so it is entered at its row D, the row that belongs
to the time it starts acting. Meanwhile the old chunk keeps running::

    t        0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16 17 18 ...
    plan A   0  1  2  3  4  5  6  7  8  9 10                          (rows executed)
    plan B   (planned from o_7) ..................  4  5  6  7  8  9 10
    plan C   (planned from o_14) ......................................  4 ...
                                ^ observe o_7, plan B      ^ o_14, plan C
                                            ^ t = 11: switch to B at row D = 4

One plan every E - D = 7 steps (140 ms at 50 Hz), each with D steps (80 ms) to be computed.
The very first plan is made synchronously at reset and entered at row 0.

Synchronous mode (training rollouts, RWR): plan from o_t, execute rows 0 .. E-1, plan again.

Warm start (optional): a planner may carry a memory from one plan to the next (``stateful=True``:
``plan_batch(obs, key, memory) -> (chunk, memory)``, called with ``memory=None`` for the first plan).
The diffusion planner keeps its last trajectory there and starts the next plan from it, shifted by
``plans_every`` rows (the time between the two plans) and partly re-noised, so consecutive chunks
stay on the same gait instead of each drawing a fresh one (``SamplerConfig.warm_start``).

The index is one scalar shared by a batch of robots (they replan together), so planning sits
behind a ``lax.cond`` on that scalar and is skipped on the steps that do not plan, even when the
robots are vmapped inside the planner call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import flax.struct
import jax
import jax.numpy as jnp

from dmpc_jax.diffusion.model import ACTION_DIM  # a chunk row starts with the action


@dataclasses.dataclass(frozen=True)
class MPCConfig:
    """The ``MPCConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        execute: E, actions executed per plan.
        margin: D, actions left of the old chunk when the next plan starts (async mode only).
        mode: ``async`` (robot timeline above) or ``sync`` (training).
        inpaint_committed: async only: the D actions still to run from the old chunk are inpainted
            into rows 0 .. D-1 of the new plan (``plan_batch(obs, key, prefix=)``), so the plan
            starts from what will really be executed before it takes over at row D.
    """

    execute: int = 11
    margin: int = 4
    mode: Literal["async", "sync"] = "async"
    inpaint_committed: bool = False

    def __post_init__(self):
        if self.mode not in ("async", "sync"):
            raise ValueError(f"MPCConfig.mode must be async or sync, got {self.mode!r}")
        if self.execute < 1:
            raise ValueError(f"MPCConfig.execute must be >= 1, got {self.execute}")
        if self.inpaint_committed and self.mode != "async":
            raise ValueError(
                "MPCConfig.inpaint_committed needs mode='async' (sync has no actions in flight)"
            )
        if self.mode == "async" and not 0 < self.margin < self.execute:
            raise ValueError(
                f"MPCConfig.margin must be in (0, execute={self.execute}) in async mode, got {self.margin}"
            )

    def check_horizon(self, horizon: int) -> None:
        if self.execute > horizon:
            raise ValueError(
                f"MPCConfig.execute ({self.execute}) exceeds the plan horizon ({horizon})"
            )

    @property
    def plans_every(self) -> int:
        return self.execute - self.margin if self.mode == "async" else self.execute


@flax.struct.dataclass
class MPCState:
    """chunk, pending: [B, H, Da] rows (actions, optionally followed by the planned state) of
    the running and of the next plan; index: the row of ``chunk`` executed next (a scalar shared
    by the batch); plans: plans made so far; last: the row index executed by the latest step."""

    chunk: jax.Array
    pending: jax.Array
    index: jax.Array
    plans: jax.Array
    last: jax.Array
    memory: Any = ()


PlanBatch = Callable[[jax.Array, jax.Array], jax.Array]  # (obs [B, Do], key) -> actions [B, H, Da]


def _planner(plan_batch, stateful: bool):
    """(obs, key, memory, prefix=None) -> (chunk, memory) for either kind of planner; ``prefix``
    [B, D, Da] (committed actions) is passed on only when given."""

    def call(obs, key, memory, prefix=None):
        extra = {} if prefix is None else {"prefix": prefix}
        if stateful:
            return plan_batch(obs, key, memory, **extra)
        return plan_batch(obs, key, **extra), ()

    return call


def mpc_init(
    cfg: MPCConfig, plan_batch, obs: jax.Array, key: jax.Array, *, stateful: bool = False
) -> MPCState:
    """Plan synchronously from the first observation; execution starts at row 0. ``stateful``:
    ``plan_batch(obs, key, memory) -> (chunk, memory)``, here called with ``memory=None``."""
    chunk, memory = _planner(plan_batch, stateful)(obs, key, None)
    cfg.check_horizon(chunk.shape[1])
    zero = jnp.zeros((), jnp.int32)
    return MPCState(chunk, chunk, zero, jnp.ones((), jnp.int32), zero, memory)


def mpc_step(cfg: MPCConfig, plan_batch, state: MPCState, obs, key, *, stateful: bool = False):
    """The chunk row [B, Da] executed at this control step, and the next state. ``obs`` [B, Do]
    is the observation at this step (used only when a plan starts here)."""
    e, d = cfg.execute, cfg.margin
    plan = _planner(plan_batch, stateful)
    if cfg.mode == "sync":
        need = state.index >= e
        chunk, memory = jax.lax.cond(
            need, lambda: plan(obs, key, state.memory), lambda: (state.chunk, state.memory)
        )
        index = jnp.where(need, 0, state.index)
        action = chunk[:, index]
        new = MPCState(chunk, chunk, index + 1, state.plans + need.astype(jnp.int32), index, memory)
        return action, new
    plan_now = state.index == e - d
    prefix = state.chunk[:, e - d : e, :ACTION_DIM] if cfg.inpaint_committed else None
    pending, memory = jax.lax.cond(
        plan_now,
        lambda: plan(obs, key, state.memory, prefix),
        lambda: (state.pending, state.memory),
    )
    action = state.chunk[:, state.index]
    index = state.index + 1
    switch = index == e
    chunk = jnp.where(switch, pending, state.chunk)
    index = jnp.where(switch, d, index)
    plans = state.plans + plan_now.astype(jnp.int32)
    return action, MPCState(chunk, pending, index, plans, state.index, memory)
