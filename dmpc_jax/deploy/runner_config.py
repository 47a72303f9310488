"""The robot-side control loop's settings (``RunnerConfig``), read by ``deploy.runner``."""

from __future__ import annotations

import dataclasses

from dmpc_jax.deploy.safety import SafetyConfig, gains_fault
from dmpc_jax.robot import go2


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    """The ``RunnerConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        command: (vx, vy, wz) velocity command.
        tick_hz: LowCmd rate.
        policy_every: ticks per policy step (500 / 10 = 50 Hz).
        execute: E of the asynchronous receding horizon (rows executed per plan).
        margin: D (rows left of the old plan when the next is requested).
        stand_s: duration of the stand-up interpolation.
        blend_s: walking time over which the executed action ramps from 0 (standing) to the
            plan's (step k of n = 50 blend_s executes (k + 1) / n of its row); 0: no ramp.
        first_plan_timeout_s: longest wait for the first plan after standing up.
        kp: PD stiffness of the trained planner (``ExportedPlanner.meta``), N m / rad.
        kd: PD damping of the trained planner, N m s / rad.
        action_scale: PD target = q_default + action_scale * action, rad.
        q_default: the trained planner's default pose (12 joints, model order), rad.
        safety: limits and watchdogs.
        live: send commands (False: dry run).
        switch_at_s: walking time (s) from which plans are requested for task 1 of the plan
            function's task list instead of task 0; None: task 0 throughout.
    """

    command: tuple[float, float, float] = (0.5, 0.0, 0.0)
    tick_hz: float = 500.0
    policy_every: int = 10
    execute: int = 11
    margin: int = 4
    stand_s: float = 2.0
    blend_s: float = 0.0
    first_plan_timeout_s: float = 2.0
    kp: float = 40.0
    kd: float = 1.0
    action_scale: float = 0.5
    q_default: tuple[float, ...] = tuple(go2.paper_default_pose())
    safety: SafetyConfig = SafetyConfig()
    live: bool = False
    switch_at_s: float | None = None

    def __post_init__(self):
        if self.blend_s < 0:
            raise ValueError(f"RunnerConfig.blend_s must be >= 0, got {self.blend_s}")
        if not 0 < self.margin < self.execute:
            raise ValueError(f"RunnerConfig.margin must be in (0, execute), got {self.margin}")
        if len(self.q_default) != 12:
            raise ValueError("RunnerConfig.q_default must have 12 joints")
        bad = gains_fault(self.kp, self.kd)
        if bad:
            raise ValueError(f"RunnerConfig: {bad} (from the exported planner's meta.json?)")

    @classmethod
    def from_meta(cls, meta: dict, **kw) -> RunnerConfig:
        """Gains, action scale and default pose from an exported planner's meta.json."""
        return cls(kp=float(meta["kp"]), kd=float(meta["kd"]),
                   action_scale=float(meta["action_scale"]),
                   q_default=tuple(float(v) for v in meta["q_default"]), **kw)  # fmt: skip
