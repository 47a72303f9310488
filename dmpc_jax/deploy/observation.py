"""Numpy observation builder for the robot: LowState -> the env's 49-dim observation.

Uses ``dmpc_jax.envs.obs.build_observation`` (the definition the MJX env uses) with ``numpy``, and
maps motor arrays from the SDK order (FR, FL, RR, RL) to the model order (FL, FR, RL, RR) by joint
name (``dmpc_jax.robot.go2.sdk_to_model``). No JAX import: this runs in the 500 Hz loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.robot import go2

_SDK_TO_MODEL = go2.sdk_to_model()


class BadStateError(ValueError):
    """A LowState that cannot become an observation (wrong size, NaN/Inf, zero quaternion)."""


@dataclass(frozen=True)
class ProprioState:
    """What the observation needs from a LowState, in SDK units and order.

    Attributes:
        quat_wxyz: IMU orientation quaternion [4] (w, x, y, z), as ``imu_state.quaternion``.
        gyro: IMU angular velocity [3], rad/s, body frame, as ``imu_state.gyroscope``.
        q_sdk: motor positions [12] in SDK order, rad.
        dq_sdk: motor velocities [12] in SDK order, rad/s.
    """

    quat_wxyz: np.ndarray
    gyro: np.ndarray
    q_sdk: np.ndarray
    dq_sdk: np.ndarray

    @classmethod
    def from_lowstate(cls, msg) -> ProprioState:
        """From a ``unitree_go.msg.dds_.LowState_`` (or any object with the same fields)."""
        return cls(
            quat_wxyz=np.asarray(msg.imu_state.quaternion, np.float64),
            gyro=np.asarray(msg.imu_state.gyroscope, np.float64),
            q_sdk=np.array([msg.motor_state[i].q for i in range(12)], np.float64),
            dq_sdk=np.array([msg.motor_state[i].dq for i in range(12)], np.float64),
        )

    @classmethod
    def from_lowstate_record(cls, st) -> ProprioState:
        """From a ``deploy.transport.LowState`` record (numpy, SDK order)."""
        return cls(
            quat_wxyz=np.asarray(st.quat_wxyz, np.float64),
            gyro=np.asarray(st.gyro, np.float64),
            q_sdk=np.asarray(st.q, np.float64),
            dq_sdk=np.asarray(st.dq, np.float64),
        )


def build_robot_observation(
    state: ProprioState, command: np.ndarray, last_action: np.ndarray, q_default: np.ndarray
) -> np.ndarray:
    """The 49-dim observation (float32) from a robot state; raises ``BadStateError`` on bad input."""
    for name, arr, n in (("quat_wxyz", state.quat_wxyz, 4), ("gyro", state.gyro, 3),
                         ("q_sdk", state.q_sdk, 12), ("dq_sdk", state.dq_sdk, 12)):  # fmt: skip
        if np.shape(arr) != (n,):
            raise BadStateError(f"{name} has shape {np.shape(arr)}, expected ({n},)")
        if not np.all(np.isfinite(arr)):
            raise BadStateError(f"{name} contains NaN or Inf: {arr}")
    norm = np.linalg.norm(state.quat_wxyz)
    if norm < 0.5:
        raise BadStateError(f"quaternion {state.quat_wxyz} is not a rotation (norm {norm:.3f})")
    quat = state.quat_wxyz / norm
    obs = obs_lib.build_observation(
        np,
        ang_vel=state.gyro,
        gravity=obs_lib.projected_gravity(np, quat),
        command=np.asarray(command, np.float64),
        q=state.q_sdk[_SDK_TO_MODEL],
        qd=state.dq_sdk[_SDK_TO_MODEL],
        last_action=np.asarray(last_action, np.float64),
        q_default=np.asarray(q_default, np.float64),
    )
    return obs.astype(np.float32)
