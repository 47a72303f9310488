"""Episode metrics of closed-loop traces (``envs.rollout``: ``trace[key]`` is [T, B, ...]), the
same on every page: success with its interval, tracking error, energy per metre, base height and
joint motion, each over every episode's steps before its fall."""

from __future__ import annotations

import numpy as np

from dmpc_jax.scenario.outcomes import wilson_interval

# The deploy runner's joint-speed bound, rad/s (``deploy.safety.SafetyConfig.max_joint_speed``,
# a test keeps the two equal): above it the robot path ends in damping, which MJX does not.
JOINT_SPEED_BOUND = 30.0


def energy_per_metre(trace: dict, dt: float) -> float:
    """Mechanical energy per metre, the one definition of every page: work sum |tau . qdot| dt
    over the forward (body-frame) distance, both pooled over every episode's steps before its
    fall (so a controller that falls still has a value); NaN under 1 m walked in all."""
    alive = ~np.asarray(trace["done_any"])
    work = (np.asarray(trace["state/mech_power"]) * dt * alive).sum()
    dist = (np.asarray(trace["state/forward_vel"]) * dt * alive).sum()
    return float(work / dist) if dist > 1.0 else float("nan")


def episode_stats(trace: dict, speed: float, dt: float) -> dict:
    """Success (no fall in the episode) with its Wilson 95% interval, mean |v_xy - v_cmd|,
    energy per metre and mean forward velocity."""
    fallen = np.asarray(trace["done_any"])  # [T, B], true from the step of the fall on
    alive = ~fallen
    success = ~fallen[-1]
    err = np.asarray(trace["tracking/lin_vel_err"])
    track = (err * alive).sum() / max(alive.sum(), 1)
    return {
        "speed": speed,
        "success_rate": float(success.mean()),
        "episodes": int(success.size),
        "success_ci95": list(wilson_interval(int(success.sum()), int(success.size))),
        "tracking_err_m_per_s": float(track),
        "energy_J_per_m": energy_per_metre(trace, dt),
        "mean_forward_vel": float(
            (np.asarray(trace["state/forward_vel"]) * alive).sum() / max(alive.sum(), 1)
        ),
    }


def motion_metrics(trace: dict, dt: float) -> dict:
    """Energy per metre, base height and joint velocity / acceleration RMS over every episode's
    steps before a fall (so a controller that lowers success still has a value)."""
    alive = ~np.asarray(trace["done_any"])  # [T, B]
    n = max(alive.sum(), 1)
    qd = np.asarray(trace["qvel"])[..., 6:]
    acc = np.diff(qd, axis=0) / dt
    both = alive[1:] & alive[:-1]
    out = {
        "energy_J_per_m": energy_per_metre(trace, dt),
        "base_height_m": float((np.asarray(trace["qpos"])[..., 2] * alive).sum() / n),
        "joint_vel_rms": float(np.sqrt((np.square(qd).mean(-1) * alive).sum() / n)),
        "joint_acc_rms": float(
            np.sqrt((np.square(acc).mean(-1) * both).sum() / max(both.sum(), 1))
        ),
    }
    if "state/peak_joint_speed" in trace:
        out.update(peak_joint_speed(trace))
    return out


def peak_joint_speed(trace: dict, bound: float = JOINT_SPEED_BOUND) -> dict:
    """Each episode's peak |qdot| over its physics substeps before its fall: the median and the
    largest over episodes, and the share of episodes that pass ``bound`` (those the deploy
    runner would have ended in damping)."""
    alive = ~np.asarray(trace["done_any"])  # [T, B]
    peak = (np.asarray(trace["state/peak_joint_speed"]) * alive).max(axis=0)  # [B]
    return {
        "peak_joint_speed_median": float(np.median(peak)),
        "peak_joint_speed_max": float(peak.max()),
        "over_joint_speed_bound": float((peak > bound).mean()),
    }
