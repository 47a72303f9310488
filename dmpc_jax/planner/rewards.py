"""Analytic test-time rewards (METHOD §4): differentiable functions of a planned trajectory.

Each term maps (action [H, 12], obs [H, 49], params) in env units to a scalar; ``TaskParams``
holds every number a user may change at run time (weights, targets, limits) as arrays, so
switching tasks never recompiles the planner.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.robot import go2

S = obs_lib.OBS_SLICES
REWARD_NAMES = (
    "nn",  # the learned R_nn (handled by the sampler, listed for the weight vector's layout)
    "energy",
    "joint_acc",
    "joint_vel",
    "posture",
    "base_height",
    "leg_lift",
    "soft_joint_range",
    "vel_cap",
    "upright",
)


@flax.struct.dataclass
class TaskParams:
    """Runtime task description (all arrays).

    Attributes:
        weights: [len(REWARD_NAMES)] weight of each reward term (0 disables it).
        guidance_scale: lambda of the gradient step.
        base_height_target: m.
        soft_lo, soft_hi: [12] soft joint range, rad.
        vel_cap: rad/s of the soft velocity cap reward.
        leg_lift_offset: [3] (hip, thigh, calf) offset of the rear legs' reference, rad.
    """

    weights: jax.Array
    guidance_scale: jax.Array
    base_height_target: jax.Array
    soft_lo: jax.Array
    soft_hi: jax.Array
    vel_cap: jax.Array
    leg_lift_offset: jax.Array


def default_task(nn_weight: float = 1.0, guidance_scale: float = 0.0, **weights) -> TaskParams:
    unknown = set(weights) - set(REWARD_NAMES)
    if unknown:
        raise ValueError(f"unknown reward term(s) {sorted(unknown)}; known: {REWARD_NAMES}")
    w = np.zeros(len(REWARD_NAMES), np.float32)
    w[0] = nn_weight
    for name, value in weights.items():
        w[REWARD_NAMES.index(name)] = value
    lo, hi = go2.joint_limits()
    return TaskParams(
        weights=jnp.asarray(w),
        guidance_scale=jnp.asarray(guidance_scale, jnp.float32),
        base_height_target=jnp.asarray(0.30, jnp.float32),
        soft_lo=jnp.asarray(lo, jnp.float32),
        soft_hi=jnp.asarray(hi, jnp.float32),
        vel_cap=jnp.asarray(1.0, jnp.float32),
        leg_lift_offset=jnp.asarray([0.0, 0.5, 1.0], jnp.float32),
    )


# ------------------------------------------------------------------ kinematics


def _leg_geometry():
    bodies = {b["name"]: b for b in go2.load_description()["bodies"]}
    hip = np.array([bodies[f"{leg}_hip"]["pos_in_parent"] for leg in go2.LEGS])
    thigh = np.array([bodies[f"{leg}_thigh"]["pos_in_parent"] for leg in go2.LEGS])
    calf = np.array([bodies[f"{leg}_calf"]["pos_in_parent"] for leg in go2.LEGS])
    foot = np.array(go2.load_description()["foot_contact"]["pos_in_calf"], float)
    return hip, thigh, calf, foot


# numpy constants: a jnp array at import time would start the XLA backend before
# jax.distributed.initialize can run
HIP_POS, THIGH_OFF, CALF_OFF, FOOT_OFF = (np.asarray(a, np.float32) for a in _leg_geometry())
FOOT_RADIUS = float(go2.load_description()["foot_contact"]["radius"])


def _rx(a):
    c, s = jnp.cos(a), jnp.sin(a)
    o, z = jnp.ones_like(a), jnp.zeros_like(a)
    return jnp.stack(
        [jnp.stack([o, z, z], -1), jnp.stack([z, c, -s], -1), jnp.stack([z, s, c], -1)], -2
    )


def _ry(a):
    c, s = jnp.cos(a), jnp.sin(a)
    o, z = jnp.ones_like(a), jnp.zeros_like(a)
    return jnp.stack(
        [jnp.stack([c, z, s], -1), jnp.stack([z, o, z], -1), jnp.stack([-s, z, c], -1)], -2
    )


def foot_positions(q):
    """Foot centres in the base frame: q [..., 12] (model order) -> [..., 4, 3]."""
    q = q.reshape(q.shape[:-1] + (4, 3))
    hip, thigh, calf = q[..., 0], q[..., 1], q[..., 2]
    p = CALF_OFF + jnp.einsum("...ij,j->...i", _ry(calf), FOOT_OFF)
    p = THIGH_OFF + jnp.einsum("...ij,...j->...i", _ry(thigh), p)
    return HIP_POS + jnp.einsum("...ij,...j->...i", _rx(hip), p)


def base_height(q, gravity, sharpness: float = 30.0):
    """Base height over the ground from joint angles and the gravity direction (stance feet).

    The height is the depth of the feet below the base along the up axis (-gravity), plus the
    foot radius; the deepest feet carry the body, so depths are averaged with softmax weights.
    q [..., 12], gravity [..., 3] -> [...].
    """
    up = -gravity / jnp.linalg.norm(gravity, axis=-1, keepdims=True)
    depth = -jnp.einsum("...fi,...i->...f", foot_positions(q), up)
    w = jax.nn.softmax(sharpness * depth, axis=-1)
    return jnp.sum(w * depth, axis=-1) + FOOT_RADIUS


# ------------------------------------------------------------------ terms


def _unpack(action, obs, q_default):
    q = obs[:, S["joint_pos"]] + q_default
    qd = obs[:, S["joint_vel"]] / obs_lib.JOINT_VEL_SCALE
    return q, qd


def compute_analytic_rewards(action, obs, task: TaskParams, *, q_default, kp, kd, action_scale):
    """Per-term rewards [len(REWARD_NAMES) - 1] (all but ``nn``) of one trajectory in env units."""
    q, qd = _unpack(action, obs, q_default)
    target = q_default + action_scale * action
    torque = kp * (target - q) - kd * qd
    energy = -jnp.mean(jnp.abs(torque * qd))
    joint_acc = -jnp.mean(jnp.square(qd[1:] - qd[:-1]))
    joint_vel = -jnp.mean(jnp.square(qd))
    posture = -jnp.mean(jnp.square(q - q_default))
    # posture terms score both the planned joint angles and the commanded PD targets: the targets
    # are what the robot executes, and guidance on q alone barely reaches the actions
    # the planner changes its height with the legs: no gradient through the planned gravity
    # direction (tilting the plan's gravity slice would "lower" the base on paper only, and it
    # dominated the gradient; the denoiser then restores a level base)
    planned_gravity = obs[:, S["gravity"]]
    gravity = jax.lax.stop_gradient(planned_gravity)
    base_h = -0.5 * (
        jnp.mean(jnp.square(base_height(q, gravity) - task.base_height_target))
        + jnp.mean(jnp.square(base_height(target, gravity) - task.base_height_target))
    )
    lo, hi = go2.joint_limits()
    rear_ref = jnp.clip(
        q_default[6:] + jnp.tile(task.leg_lift_offset, 2), jnp.asarray(lo[6:]), jnp.asarray(hi[6:])
    )
    leg_lift = -0.5 * (
        jnp.mean(jnp.abs(q[:, 6:] - rear_ref)) + jnp.mean(jnp.abs(target[:, 6:] - rear_ref))
    )
    soft_range = -jnp.mean(jax.nn.relu(q - task.soft_hi) + jax.nn.relu(task.soft_lo - q))
    vel_cap = jnp.mean(jax.nn.sigmoid(10.0 * (task.vel_cap - jnp.abs(qd))))
    # keep the planned body level: the horizontal part of the planned projected gravity
    upright = -jnp.mean(jnp.sum(jnp.square(planned_gravity[:, :2]), -1))
    return jnp.stack(
        [energy, joint_acc, joint_vel, posture, base_h, leg_lift, soft_range, vel_cap, upright]
    )


def planned_base_height(obs, q_default):
    """Base height of every row of a plan (for reports): obs [H, 49] -> [H]."""
    q = obs[:, S["joint_pos"]] + q_default
    return base_height(q, obs[:, S["gravity"]])
