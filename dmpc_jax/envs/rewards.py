"""Reward terms of the Go2 joystick env, each a tiny pure function logged as ``reward/<term>``.

Every term takes the step context ``c`` (a dict of arrays, built in ``go2_joystick.py``) and the
``RewardConfig``, and returns an unscaled scalar; the env multiplies by the scale and ``ctrl_dt``.
Context keys: lin_vel, ang_vel (body frame), gravity, command, q, qd, qd_prev, action,
last_action, torque, qd_peak (each joint's peak |qd| over the physics substeps), torque_sq_power (substep mean of sum (tau qd)^2), q_default, q_lo, q_hi,
contact [4], first_contact [4], air_time [4], foot_height [4], foot_slip_speed [4],
terminated, collision.
"""

from __future__ import annotations

import jax.numpy as jnp


def _reward_tracking_lin_vel(c, cfg):
    err = jnp.sum(jnp.square(c["command"][:2] - c["lin_vel"][:2]))
    return jnp.exp(-err / cfg.tracking_sigma)


def _reward_tracking_ang_vel(c, cfg):
    err = jnp.square(c["command"][2] - c["ang_vel"][2])
    return jnp.exp(-err / cfg.tracking_sigma)


def _cost_lin_vel_z(c, cfg):
    return jnp.square(c["lin_vel"][2])


def _cost_ang_vel_xy(c, cfg):
    return jnp.sum(jnp.square(c["ang_vel"][:2]))


def _cost_orientation(c, cfg):
    return jnp.sum(jnp.square(c["gravity"][:2]))


def _cost_torques(c, cfg):
    return jnp.sum(jnp.square(c["torque"]))


def _cost_energy(c, cfg):
    return jnp.sum(jnp.abs(c["torque"] * c["qd"]))


def _cost_energy_sq(c, cfg):
    # METHOD §7: sum (tau qdot)^2, averaged over the physics substeps of one control step.
    return c["torque_sq_power"]


def _cost_action_rate(c, cfg):
    return jnp.sum(jnp.square(c["action"] - c["last_action"]))


def _reward_pose(c, cfg):
    # hip deviations cost more than thigh/calf ones (keeps the legs under the body).
    weight = jnp.tile(jnp.array([1.0, 0.25, 0.25]), 4)
    return jnp.exp(-jnp.sum(jnp.square(c["q"] - c["q_default"]) * weight))


def _cost_dof_pos(c, cfg):
    return jnp.sum(jnp.square(c["q"] - c["q_default"]))


def _cost_dof_vel(c, cfg):
    return jnp.sum(jnp.square(c["qd"]))


def _cost_dof_acc(c, cfg):
    return jnp.sum(jnp.square((c["qd"] - c["qd_prev"]) / c["ctrl_dt"]))


def _cost_dof_vel_limits(c, cfg):
    # rad/s above the soft joint-speed bound, summed over joints, at each joint's substep peak
    return jnp.sum(jnp.clip(c["qd_peak"] - cfg.soft_joint_speed, 0.0))


def _cost_dof_pos_limits(c, cfg):
    soft_lo = c["q_lo"] * 0.95
    soft_hi = c["q_hi"] * 0.95
    return jnp.sum(jnp.clip(soft_lo - c["q"], 0.0) + jnp.clip(c["q"] - soft_hi, 0.0))


def _reward_feet_air_time(c, cfg):
    moving = jnp.linalg.norm(c["command"]) > 0.1
    air = jnp.sum((c["air_time"] - 0.1) * c["first_contact"])
    return air * moving


def _cost_feet_slip(c, cfg):
    return jnp.sum(c["foot_slip_speed"] * c["contact"])


def _cost_feet_clearance(c, cfg):
    # swinging feet should rise to max_foot_height; weighted by their horizontal speed
    err = jnp.square(c["foot_height"] - cfg.max_foot_height)
    return jnp.sum(err * jnp.sqrt(c["foot_slip_speed"] + 1e-6) * (1.0 - c["contact"]))


def _cost_stand_still(c, cfg):
    still = jnp.linalg.norm(c["command"]) < 0.1
    return jnp.sum(jnp.abs(c["q"] - c["q_default"])) * still


def _reward_alive(c, cfg):
    return jnp.ones(())


def _cost_termination(c, cfg):
    return c["terminated"].astype(jnp.float32)


def _cost_collision(c, cfg):
    return c["collision"].astype(jnp.float32)


REWARD_TERMS = {
    "tracking_lin_vel": _reward_tracking_lin_vel,
    "tracking_ang_vel": _reward_tracking_ang_vel,
    "lin_vel_z": _cost_lin_vel_z,
    "ang_vel_xy": _cost_ang_vel_xy,
    "orientation": _cost_orientation,
    "torques": _cost_torques,
    "energy": _cost_energy,
    "energy_sq": _cost_energy_sq,
    "action_rate": _cost_action_rate,
    "pose": _reward_pose,
    "dof_pos": _cost_dof_pos,
    "dof_vel": _cost_dof_vel,
    "dof_acc": _cost_dof_acc,
    "dof_pos_limits": _cost_dof_pos_limits,
    "dof_vel_limits": _cost_dof_vel_limits,
    "feet_air_time": _reward_feet_air_time,
    "feet_slip": _cost_feet_slip,
    "feet_clearance": _cost_feet_clearance,
    "stand_still": _cost_stand_still,
    "alive": _reward_alive,
    "termination": _cost_termination,
    "collision": _cost_collision,
}


def compute_rewards(c, cfg, scales: dict[str, float], dt: float):
    """(total reward, {term: scaled reward}) for one control step."""
    terms = {name: REWARD_TERMS[name](c, cfg) * scale * dt for name, scale in scales.items()}
    total = sum(terms.values())
    if cfg.clip_negative:
        total = jnp.maximum(total, 0.0)
    return total, terms
