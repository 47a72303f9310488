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
    """The ``SafetyConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        stale_state_s: no new LowState for this long -> damping; also how long the LowState's tick
            may stay unchanged (a frozen, republished state) before it counts as stale.
        max_tick_gap_s: the runner's own loop: more than this between two of its ticks (an overrun;
            the motors hold the last PD target meanwhile) -> damping. Normal jitter on the 2-core
            development machine: LowCmd period p99 3.1-4.0 ms at 500 Hz (experiments/sim2sim).
        max_roll: orientation beyond these (rad) -> damping.
        max_pitch: orientation beyond these (rad) -> damping.
        joint_margin: targets are clamped this far (rad) inside the joint limits.
        plan_tolerance: a planned target this far (rad) outside the joint limits is a bad plan.
        torque_scale: fraction of the motor torque limits the PD command may ask for.
        damping_kd: kd of the damping command (kp = 0, tau = 0), N m s / rad.
        max_joint_speed: |dq| above this (rad/s) -> damping.
        check_tick: require the LowState tick to advance (the Go2 and our sim bridge count it up;
            turn off only for a simulator that leaves it constant).
    """

    stale_state_s: float = 0.05
    max_tick_gap_s: float = 0.025
    max_roll: float = 0.8
    max_pitch: float = 0.8
    joint_margin: float = 0.02
    plan_tolerance: float = 0.15
    torque_scale: float = 0.9
    damping_kd: float = 2.0
    max_joint_speed: float = 30.0
    check_tick: bool = True

    def __post_init__(self):
        if self.stale_state_s <= 0 or self.damping_kd <= 0 or self.max_tick_gap_s <= 0:
            raise ValueError(
                "SafetyConfig.stale_state_s, max_tick_gap_s and damping_kd must be > 0"
            )
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
        """Torque clamp (|kp (q_t - q) - kd dq| <= tau_max), then the joint clamp: the joint
        range wins, so a target never leaves it, even where fast motion near a limit would have
        the torque clamp push it out (the torque is then what the range allows)."""
        lo = q + (-self.tau_max + kd * dq) / kp
        hi = q + (self.tau_max + kd * dq) / kp
        q_target = np.clip(q_target, lo, hi)
        m = self.cfg.joint_margin
        return np.clip(q_target, self.lo + m, self.hi - m)


def gains_fault(kp: float, kd: float) -> str | None:
    """PD gains the runner can use: kp finite and > 0 (the torque clamp divides by it), kd finite
    and >= 0."""
    if not (np.isfinite(kp) and kp > 0):
        return f"kp must be finite and > 0, got {kp}"
    if not (np.isfinite(kd) and kd >= 0):
        return f"kd must be finite and >= 0, got {kd}"
    return None


def command_fault(cmd) -> str | None:
    """An outgoing LowCmd with a NaN/Inf field (never sent: damping goes out instead)."""
    for name in ("q", "dq", "kp", "kd", "tau"):
        if not np.all(np.isfinite(getattr(cmd, name))):
            return f"outgoing command {name} contains NaN/Inf"
    return None


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
    if np.max(np.abs(dq)) > cfg.max_joint_speed:  # dq in model order
        j = int(np.argmax(np.abs(dq)))
        return (
            f"joint speed {abs(dq[j]):.1f} rad/s beyond {cfg.max_joint_speed} "
            f"({go2.JOINT_NAMES[j]}, q {q[j]:.2f} rad)"
        )
    return None
