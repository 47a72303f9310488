"""The policy observation of METHOD §1, defined once for the MJX env and the robot's numpy path.

Every function takes the array module ``xp`` (``numpy`` or ``jax.numpy``) so the robot runtime
builds exactly the vector the env builds, without importing JAX.

Layout (Do = 49), in model joint order (FL, FR, RL, RR x hip, thigh, calf):

| slice | size | content | scale |
|---|---|---|---|
| lin_vel | 3 | base linear velocity (always zero: no estimate on the robot) | 2.0 |
| ang_vel | 3 | base angular velocity, body frame, rad/s | 0.25 |
| gravity | 3 | gravity direction in the body frame (unit vector) | 1 |
| command | 3 | vx, vy, wz | 2, 2, 0.25 |
| joint_pos | 12 | q - q_default, rad | 1 |
| joint_vel | 12 | qdot, rad/s | 0.05 |
| last_action | 12 | previous action | 1 |
| friction | 1 | friction - 1 (always zero) | 1 |
"""

from __future__ import annotations

OBS_SLICES: dict[str, slice] = {}
_start = 0
for _name, _size in (
    ("lin_vel", 3),
    ("ang_vel", 3),
    ("gravity", 3),
    ("command", 3),
    ("joint_pos", 12),
    ("joint_vel", 12),
    ("last_action", 12),
    ("friction", 1),
):
    OBS_SLICES[_name] = slice(_start, _start + _size)
    _start += _size
OBS_SIZE = _start  # 49

LIN_VEL_SCALE = 2.0
ANG_VEL_SCALE = 0.25
COMMAND_SCALE = (2.0, 2.0, 0.25)
JOINT_VEL_SCALE = 0.05


def roll_pitch(xp, quat_wxyz):
    """(roll, pitch) in rad of a (w, x, y, z) quaternion [..., 4], from the projected gravity g:
    roll = atan2(-g_y, -g_z) (the ZYX Euler roll exactly), pitch = atan2(g_x, -g_z) (nose down
    positive). Both span (-pi, pi]: a nose-over reaches |pitch| > pi/2, so a pitch limit such as
    the authors' 1.6 rad can trigger (the ZYX Euler pitch, an arcsin, never exceeds pi/2)."""
    return gravity_roll_pitch(xp, projected_gravity(xp, quat_wxyz))


def gravity_roll_pitch(xp, g):
    """``roll_pitch`` from a projected gravity g [..., 3] (as the observation holds it)."""
    return xp.arctan2(-g[..., 1], -g[..., 2]), xp.arctan2(g[..., 0], -g[..., 2])


def projected_gravity(xp, quat_wxyz):
    """Unit gravity direction in the body frame, R(q)^T [0, 0, -1]. quat_wxyz [..., 4] -> [..., 3]."""
    w, x, y, z = (quat_wxyz[..., i] for i in range(4))
    gx = -2.0 * (x * z - w * y)
    gy = -2.0 * (y * z + w * x)
    gz = -(1.0 - 2.0 * (x * x + y * y))
    return xp.stack([gx, gy, gz], axis=-1)


def build_observation(xp, *, ang_vel, gravity, command, q, qd, last_action, q_default):
    """The 49-dim observation vector (see the module docstring for the layout).

    Args:
        xp: ``numpy`` or ``jax.numpy``.
        ang_vel: body-frame angular velocity [..., 3], rad/s.
        gravity: projected gravity [..., 3].
        command: (vx, vy, wz) [..., 3].
        q: joint angles [..., 12], model order.
        qd: joint velocities [..., 12], model order.
        last_action: previous action [..., 12].
        q_default: default joint angles [12].

    Returns:
        [..., 49] observation.
    """
    batch = ang_vel.shape[:-1]
    zeros3 = xp.zeros(batch + (3,), dtype=ang_vel.dtype)
    zeros1 = xp.zeros(batch + (1,), dtype=ang_vel.dtype)
    return xp.concatenate(
        [
            zeros3 * LIN_VEL_SCALE,
            ang_vel * ANG_VEL_SCALE,
            gravity,
            command * xp.asarray(COMMAND_SCALE, dtype=ang_vel.dtype),
            q - q_default,
            qd * JOINT_VEL_SCALE,
            last_action,
            zeros1,
        ],
        axis=-1,
    )
