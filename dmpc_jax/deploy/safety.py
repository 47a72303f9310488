"""The safety layer of the robot loop: limits, checks and the damping command.

Every check returns a fault string (or None) instead of raising, so the 500 Hz loop decides what
to do (latch damping, log) without an exception path. Numpy only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dmpc_jax.envs.obs import roll_pitch
from dmpc_jax.robot import go2


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    """Attributes:
    stale_state_s: no new LowState for this long -> damping.
    max_roll, max_pitch: orientation beyond these (rad) -> damping.
    joint_margin: targets are clamped this far (rad) inside the joint limits.
    plan_tolerance: a planned target this far (rad) outside the joint limits is a bad plan.
    torque_scale: fraction of the motor torque limits the PD command may ask for.
    damping_kd: kd of the damping command (kp = 0, tau = 0), N m s / rad.
    max_joint_speed: |dq| above this (rad/s) -> damping.
    """

    stale_state_s: float = 0.05
    max_roll: float = 0.8
    max_pitch: float = 0.8
    joint_margin: float = 0.02
    plan_tolerance: float = 0.15
    torque_scale: float = 0.9
    damping_kd: float = 2.0
    max_joint_speed: float = 30.0

    def __post_init__(self):
        if self.stale_state_s <= 0 or self.damping_kd <= 0:
            raise ValueError("SafetyConfig.stale_state_s and damping_kd must be > 0")
        if not 0 < self.torque_scale <= 1:
            raise ValueError(
                f"SafetyConfig.torque_scale must be in (0, 1], got {self.torque_scale}"
            )


class Limits:
    """Joint and torque limits in model order, from the robot description."""

    def __init__(self, cfg: SafetyConfig):
        lo, hi = go2.joint_limits()
        self.lo, self.hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        self.tau_max = cfg.torque_scale * np.asarray(go2.torque_limits(), np.float64)
        self.cfg = cfg

    def plan_fault(self, q_targets: np.ndarray) -> str | None:
        """A plan's joint targets [H, 12] (model order): NaN/Inf or outside the limits."""
        if not np.all(np.isfinite(q_targets)):
            return "plan contains NaN/Inf"
        tol = self.cfg.plan_tolerance
        bad = (q_targets < self.lo - tol) | (q_targets > self.hi + tol)
        if bad.any():
            h, j = np.argwhere(bad)[0]
            return (
                f"plan violates joint limits (row {h}, joint {go2.JOINT_NAMES[j]}: "
                f"{q_targets[h, j]:.3f} outside [{self.lo[j]:.3f}, {self.hi[j]:.3f}])"
            )
        return None

    def clamp_target(self, q_target, q, dq, kp, kd) -> np.ndarray:
        """Joint clamp, then torque clamp: |kp (q_t - q) - kd dq| <= tau_max."""
        m = self.cfg.joint_margin
        q_target = np.clip(q_target, self.lo + m, self.hi - m)
        lo = q + (-self.tau_max + kd * dq) / kp
        hi = q + (self.tau_max + kd * dq) / kp
        return np.clip(q_target, lo, hi)


def state_fault(cfg: SafetyConfig, quat_wxyz, gyro, q, dq) -> str | None:
    """NaN/Inf, a non-rotation quaternion, orientation or joint speed beyond the limits."""
    for name, arr in (("quaternion", quat_wxyz), ("gyro", gyro), ("q", q), ("dq", dq)):
        if not np.all(np.isfinite(arr)):
            return f"state {name} contains NaN/Inf"
    norm = float(np.linalg.norm(quat_wxyz))
    if norm < 0.5:
        return f"state quaternion is not a rotation (norm {norm:.3f})"
    roll, pitch = roll_pitch(np, np.asarray(quat_wxyz) / norm)
    if abs(roll) > cfg.max_roll or abs(pitch) > cfg.max_pitch:
        return f"orientation beyond limits (roll {roll:.2f}, pitch {pitch:.2f} rad)"
    if np.max(np.abs(dq)) > cfg.max_joint_speed:
        return f"joint speed {np.max(np.abs(dq)):.1f} rad/s beyond {cfg.max_joint_speed}"
    return None
