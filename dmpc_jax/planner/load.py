"""A trained planner from a pretraining (or finetuning) run directory, ready to plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

from dmpc_jax.diffusion.model import DiffusionConfig, Networks, schedule_for
from dmpc_jax.planner.sampler import SamplerConfig, make_cached_plan_fn, make_plan_fn


class PlannerInputs(NamedTuple):
    """The runtime input of a planner's rollouts and plans (a pytree: new values, no recompile).

    Attributes:
        params: the networks' parameters {'denoiser', 'value'}.
        task: ``planner.rewards.TaskParams`` (reward weights, targets, guidance scale).
        cons: env-unit ``planner.constraints.Constraints`` (the hard bounds).
    """

    params: Any
    task: Any
    cons: Any


@dataclasses.dataclass(frozen=True)
class TrainedPlanner:
    """The ``TrainedPlanner`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        nets: graph definitions; params: EMA parameters {'denoiser', 'value'}.
        dcfg: the model config; scaler: diffusion-space scaling {'shift', 'scale'} [61].
        robot: q_default [12], kp, kd, action_scale of the env the data came from.
        source: ``<run_dir>:<step>@<digest>`` of the checkpoint.
    """

    nets: Networks
    params: dict
    dcfg: DiffusionConfig
    scaler: dict
    robot: dict
    source: str

    def plan_fn(self, scfg: SamplerConfig, *, guided: bool = True):
        """``plan(params, s_now, task, constraints, key, cache=None)`` (see planner.sampler)."""
        return make_plan_fn(
            self.nets, self.dcfg, scfg, schedule_for(self.dcfg), self.scaler,
            **self.robot, guided=guided,
        )  # fmt: skip

    def task_args(self, spec) -> PlannerInputs:
        """``PlannerInputs(params, task, cons)`` of a ``TaskSpec``: the runtime input of
        ``controller``'s rollouts."""
        from dmpc_jax.planner.task import task_arrays

        task, cons, _ = task_arrays(
            spec, self.dcfg.horizon, q_default=self.robot["q_default"],
            action_scale=self.robot["action_scale"],
        )  # fmt: skip
        return PlannerInputs(self.params, task, cons)

    def controller(self, scfg: SamplerConfig, mcfg):
        """The receding-horizon planner as a batched env controller whose rollout args are
        ``task_args(spec)``: one compilation serves every task."""
        from dmpc_jax.planner.closed_loop import ROBOT_AXIS, planner_controller
        from dmpc_jax.planner.sampler import shift_plan

        plan = self.plan_fn(scfg)
        if scfg.cache_after:  # the early-step cache travels as the planner's memory
            cached = make_cached_plan_fn(plan, scfg, self.scaler, axis_name=ROBOT_AXIS)

            def plan_cached(args, s_now, key, cache):
                params, task, cons = args
                out, cache = cached(params, s_now, task, cons, key, cache)
                return out.rows, cache

            return planner_controller(mcfg, plan_cached, stateful=True)
        if not scfg.warm_start:

            def plan_one(args, s_now, key, prefix=None):
                params, task, cons = args
                return plan(params, s_now, task, cons, key, prefix=prefix).rows

            return planner_controller(mcfg, plan_one)

        def plan_warm(args, s_now, key, last_tau):
            """Each plan starts from the previous one, shifted by the steps between the two."""
            params, task, cons = args
            warm = None if last_tau is None else shift_plan(last_tau, mcfg.plans_every)
            out = plan(params, s_now, task, cons, key, warm=warm)
            return out.rows, out.tau

        return planner_controller(mcfg, plan_warm, stateful=True)


def load_planner(run_dir: str | Path) -> TrainedPlanner:
    from dmpc_jax.diffusion.artifact import (
        checkpoint_digest,
        load_planner_checkpoint,
        robot_constants,
    )

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise FileNotFoundError(
            f"planner run {run_dir} does not exist (train one with `make pretrain`)"
        )
    nets, params, dcfg, scaler = load_planner_checkpoint(run_dir)
    return TrainedPlanner(
        nets, params, dcfg, scaler, robot_constants(run_dir),
        f"{run_dir}:{checkpoint_digest(run_dir)}",
    )  # fmt: skip
