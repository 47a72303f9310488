"""The robot's numpy observation equals the MJX env's on the same MuJoCo state (parity)."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmpc_jax.deploy.observation import BadStateError, ProprioState, build_robot_observation
from dmpc_jax.robot import go2


def _lowstate_from(qpos, qvel):
    """A LowState-like message from MuJoCo state (SDK motor order, IMU in the base frame)."""
    sdk = go2.model_to_sdk()
    q, dq = np.asarray(qpos[7:])[sdk], np.asarray(qvel[6:])[sdk]
    motors = [types.SimpleNamespace(q=float(q[i]), dq=float(dq[i])) for i in range(12)]
    imu = types.SimpleNamespace(
        quaternion=list(map(float, qpos[3:7])), gyroscope=list(map(float, qvel[3:6]))
    )
    return types.SimpleNamespace(imu_state=imu, motor_state=motors)


def test_parity_with_env_observation(env, env_fns):
    reset, step = env_fns
    s = reset(jax.random.PRNGKey(7))
    for t in range(3):
        s = step(s, 0.4 * jnp.sin(jnp.arange(12.0) + t))
        d = s.pipeline_state
        env_obs = np.asarray(env._policy_obs(d, s.info))  # noise-free, no latency
        msg = _lowstate_from(np.asarray(d.qpos), np.asarray(d.qvel))
        robot_obs = build_robot_observation(
            ProprioState.from_lowstate(msg),
            command=np.asarray(s.info["command"]),
            last_action=np.asarray(s.info["last_action"]),
            q_default=np.asarray(env.q_default),
        )
        np.testing.assert_allclose(robot_obs, env_obs, atol=1e-5)


def test_bad_states_are_rejected():
    good = ProprioState(np.array([1.0, 0, 0, 0]), np.zeros(3), np.zeros(12), np.zeros(12))
    args = dict(command=np.zeros(3), last_action=np.zeros(12), q_default=np.zeros(12))
    assert build_robot_observation(good, **args).shape == (49,)
    with pytest.raises(BadStateError, match="NaN"):
        build_robot_observation(
            ProprioState(good.quat_wxyz, np.array([0, np.nan, 0]), good.q_sdk, good.dq_sdk), **args
        )
    with pytest.raises(BadStateError, match="not a rotation"):
        build_robot_observation(
            ProprioState(np.zeros(4), good.gyro, good.q_sdk, good.dq_sdk), **args
        )
    with pytest.raises(BadStateError, match="shape"):
        build_robot_observation(
            ProprioState(good.quat_wxyz, good.gyro, np.zeros(11), good.dq_sdk), **args
        )
