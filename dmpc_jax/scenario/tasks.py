"""The named test-time tasks of the evaluation suite (``dmpc eval --cfg.task NAME``).

Each is a ``TaskSpec`` (``planner/task.py``): the same trained planner, other reward weights,
targets and bounds. ``TASKS[name].measure`` names the quantity the task should move and
``direction`` which way (+1 up, -1 down, 0: a hard bound that must hold), against the ``walk``
task at the same command.
"""

from __future__ import annotations

import dataclasses

from dmpc_jax.planner.task import NN_GUIDANCE, TASK_GUIDANCE, BoxSpec, RewardWeights, TaskSpec

# Task defaults (guidance scales) live with the TaskSpec: planner.task.


@dataclasses.dataclass(frozen=True)
class SuiteTask:
    spec: TaskSpec
    measure: str  # a key of the evaluation's per-episode metrics
    direction: int  # +1 / -1: should rise / fall vs the nominal planner; 0: hard bound
    margin: float  # the acceptance margin in the measure's units (relative for energy)
    description: str


def _task(name: str, measure: str, direction: int, margin: float, description: str, **spec):
    """A suite task whose spec is the nominal one (walk at 1.0 m/s) with ``spec`` changed."""
    base = TaskSpec(command=(1.0, 0.0, 0.0), guidance_scale=NN_GUIDANCE)
    return SuiteTask(dataclasses.replace(base, name=name, **spec), measure, direction, margin,
                     description)  # fmt: skip


def _shaped(name: str, measure: str, description: str, **spec):
    """A reward-shaping task: its terms at TASK_GUIDANCE, to lower (-1) its measure."""
    return _task(name, measure, -1, 0.0, description, guidance_scale=TASK_GUIDANCE, **spec)


_HIP_BAND = 0.1  # narrowed hip range: q_default +- this, rad
_UPRIGHT = 1000.0  # weight of the upright term in the balance tasks
_HEIGHT = dict(weights=RewardWeights(base_height=100.0), guidance_scale=TASK_GUIDANCE)

TASKS: dict[str, SuiteTask] = {
    t.spec.name: t
    for t in (
        _task("walk_0.5", "success_rate", 0, 0.0, "walk at 0.5 m/s", command=(0.5, 0.0, 0.0)),
        _task("walk_1.0", "success_rate", 0, 0.0, "walk at 1.0 m/s (the nominal task)"),
        _task("walk_1.5", "success_rate", 0, 0.0, "walk at 1.5 m/s", command=(1.5, 0.0, 0.0)),
        _task("height_low", "base_height_m", -1, 0.03, "lower the base (target 0.22 m)",
              base_height_target=0.22, **_HEIGHT),
        _task("height_high", "base_height_m", +1, 0.03, "raise the base (target 0.34 m)",
              base_height_target=0.34, **_HEIGHT),
        _task("narrow_range", "constraint_violations", 0, 0.0,
              "hip targets within q_default +- 0.1 rad (hard)",
              boxes=(
                  BoxSpec("q_target", lo=0.1 - _HIP_BAND, hi=0.1 + _HIP_BAND, legs=("FL", "RL"),
                          joints=("hip",)),
                  BoxSpec("q_target", lo=-0.1 - _HIP_BAND, hi=-0.1 + _HIP_BAND, legs=("FR", "RR"),
                          joints=("hip",)),
              )),
        _task("qdot_cap", "constraint_violations", 0, 0.0,
              "planned |qdot| <= 1 rad/s on every joint (hard)",
              boxes=(BoxSpec("qdot", lo=-1.0, hi=1.0),)),
        _task("energy", "energy_J_per_m", -1, 0.20, "save energy (torque x velocity proxy)",
              guidance_scale=TASK_GUIDANCE, weights=RewardWeights(energy=0.05)),
        _shaped("smooth", "joint_acc_rms", "joint acceleration and velocity regularisation",
                weights=RewardWeights(joint_acc=0.05, joint_vel=0.05)),
        _shaped("leg_lift", "rear_lift_err_rad",
                "walk with the rear legs lifted (thigh +0.5, calf +1.0)",
                weights=RewardWeights(leg_lift=5.0)),
        _task("push_1x", "success_rate", 0, 0.0, "pushes as in training (0.1-0.5 m/s)"),
        _task("push_2x", "success_rate", 0, 0.0, "pushes twice as strong", push_scale=2.0),
        _task("push_3x", "success_rate", 0, 0.0, "pushes three times as strong", push_scale=3.0),
        # balance: the same pushes with a reward for a level body (planned projected gravity)
        *(_task(f"balance_{m}x", "success_rate", +1, 0.0,
                f"keep the body level under pushes x{m} (upright reward)", push_scale=float(m),
                guidance_scale=TASK_GUIDANCE, weights=RewardWeights(upright=_UPRIGHT))
          for m in (1, 2, 3)),
    )
}  # fmt: skip


# what `make eval-suite` / `dmpc eval-suite` run by default
SUITE: tuple[str, ...] = (
    "walk_0.5", "walk_1.0", "walk_1.5", "height_low", "height_high", "narrow_range", "qdot_cap",
    "energy", "smooth", "leg_lift", "push_2x", "push_3x", "balance_1x", "balance_2x", "balance_3x",
)  # fmt: skip


def get_task(name: str) -> SuiteTask:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]
