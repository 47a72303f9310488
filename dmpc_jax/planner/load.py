"""A trained planner from a pretraining (or finetuning) run directory, ready to plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dmpc_jax.diffusion.model import DiffusionConfig, Networks, schedule_for
from dmpc_jax.planner.sampler import SamplerConfig, make_plan_fn


@dataclasses.dataclass(frozen=True)
class TrainedPlanner:
    """Attributes:
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


def load_planner(run_dir: str | Path) -> TrainedPlanner:
    from dmpc_jax.diffusion.train import checkpoint_digest, load_planner_checkpoint, robot_constants

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
