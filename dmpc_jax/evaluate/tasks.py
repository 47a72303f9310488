"""The named test-time tasks of the evaluation suite (``dmpc eval --task NAME``).

Each is a ``TaskSpec`` (``planner/task.py``): the same trained planner, other reward weights,
targets and bounds. ``TASKS[name].measure`` names the quantity the task should move and
``direction`` which way (+1 up, -1 down, 0: a hard bound that must hold), against the ``walk``
task at the same command.
"""

from __future__ import annotations

import dataclasses

from dmpc_jax.planner.task import BoxSpec, RewardWeights, TaskSpec

# Guidance scale of the nominal planner (learned reward only) and of the reward-shaping tasks.
# Chosen from an ad-hoc sweep on an intermediate cpu checkpoint (16 envs x 10 s, not recorded):
# the nominal planner's success did not depend on it in [0, 3]; task terms needed ~10 to change
# anything measurable, and >= 30 stopped the robot walking. Re-tune after finetuning.
NN_GUIDANCE = 0.1
TASK_GUIDANCE = 10.0


@dataclasses.dataclass(frozen=True)
class SuiteTask:
    spec: TaskSpec
    measure: str  # a key of the evaluation's per-episode metrics
    direction: int  # +1 / -1: should rise / fall vs the nominal planner; 0: hard bound
    margin: float  # the acceptance margin in the measure's units (relative for energy)
    description: str


def _walk(speed: float, name: str) -> TaskSpec:
    return TaskSpec(name=name, command=(speed, 0.0, 0.0), guidance_scale=NN_GUIDANCE)


_NOMINAL = _walk(1.0, "walk_1.0")
_HIP_BAND = 0.1  # narrowed hip range: q_default +- this, rad

TASKS: dict[str, SuiteTask] = {
    "walk_0.5": SuiteTask(_walk(0.5, "walk_0.5"), "success_rate", 0, 0.0, "walk at 0.5 m/s"),
    "walk_1.0": SuiteTask(_NOMINAL, "success_rate", 0, 0.0, "walk at 1.0 m/s (the nominal task)"),
    "walk_1.5": SuiteTask(_walk(1.5, "walk_1.5"), "success_rate", 0, 0.0, "walk at 1.5 m/s"),
    "height_low": SuiteTask(
        dataclasses.replace(
            _NOMINAL,
            name="height_low",
            weights=RewardWeights(base_height=100.0),
            base_height_target=0.22,
        ),
        "base_height_m",
        -1,
        0.03,
        "lower the base (target 0.22 m)",
    ),  # fmt: skip
    "height_high": SuiteTask(
        dataclasses.replace(
            _NOMINAL,
            name="height_high",
            weights=RewardWeights(base_height=100.0),
            base_height_target=0.34,
        ),
        "base_height_m",
        +1,
        0.03,
        "raise the base (target 0.34 m)",
    ),  # fmt: skip
    "narrow_range": SuiteTask(
        dataclasses.replace(
            _NOMINAL,
            name="narrow_range",
            boxes=(
                BoxSpec(
                    "q_target",
                    lo=0.1 - _HIP_BAND,
                    hi=0.1 + _HIP_BAND,
                    legs=("FL", "RL"),
                    joints=("hip",),
                ),
                BoxSpec(
                    "q_target",
                    lo=-0.1 - _HIP_BAND,
                    hi=-0.1 + _HIP_BAND,
                    legs=("FR", "RR"),
                    joints=("hip",),
                ),
            ),
        ),
        "constraint_violations",
        0,
        0.0,
        "hip targets within q_default +- 0.1 rad (hard)",
    ),  # fmt: skip
    "qdot_cap": SuiteTask(
        dataclasses.replace(_NOMINAL, name="qdot_cap", boxes=(BoxSpec("qdot", lo=-1.0, hi=1.0),)),
        "constraint_violations",
        0,
        0.0,
        "planned |qdot| <= 1 rad/s on every joint (hard)",
    ),  # fmt: skip
    "energy": SuiteTask(
        dataclasses.replace(
            _NOMINAL,
            name="energy",
            guidance_scale=TASK_GUIDANCE,
            weights=RewardWeights(energy=0.05),
        ),
        "energy_J_per_m",
        -1,
        0.20,
        "save energy (torque x velocity proxy)",
    ),  # fmt: skip
    "smooth": SuiteTask(
        dataclasses.replace(
            _NOMINAL,
            name="smooth",
            guidance_scale=TASK_GUIDANCE,
            weights=RewardWeights(joint_acc=0.05, joint_vel=0.05),
        ),
        "joint_acc_rms",
        -1,
        0.0,
        "joint acceleration and velocity regularisation",
    ),  # fmt: skip
    "leg_lift": SuiteTask(
        dataclasses.replace(
            _NOMINAL,
            name="leg_lift",
            guidance_scale=TASK_GUIDANCE,
            weights=RewardWeights(leg_lift=5.0),
        ),
        "rear_lift_err_rad",
        -1,
        0.0,
        "walk with the rear legs lifted (thigh +0.5, calf +1.0)",
    ),  # fmt: skip
    "push_1x": SuiteTask(
        dataclasses.replace(_NOMINAL, name="push_1x"),
        "success_rate",
        0,
        0.0,
        "pushes as in training (0.1-0.5 m/s)",
    ),  # fmt: skip
    "push_2x": SuiteTask(
        dataclasses.replace(_NOMINAL, name="push_2x", push_scale=2.0),
        "success_rate",
        0,
        0.0,
        "pushes twice as strong",
    ),  # fmt: skip
    "push_3x": SuiteTask(
        dataclasses.replace(_NOMINAL, name="push_3x", push_scale=3.0),
        "success_rate",
        0,
        0.0,
        "pushes three times as strong",
    ),  # fmt: skip
}


def get_task(name: str) -> SuiteTask:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]
