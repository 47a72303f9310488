"""What the env puts between the controller and the physics, beside the physics itself: the
policy observation's noise and latency, and the PD torque computed from a delayed joint state
(``EnvConfig.noise``, ``EnvConfig.pd_delay``). Pure functions of arrays, used by
``go2_joystick``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dmpc_jax.envs import obs as obs_lib


def obs_noise(n, key):
    """Uniform noise for one policy observation under ``NoiseConfig`` ``n`` (zeros if off)."""
    if not n.enabled:
        return jnp.zeros(obs_lib.OBS_SIZE)
    s = obs_lib.OBS_SLICES
    scale = jnp.zeros(obs_lib.OBS_SIZE)
    scale = scale.at[s["ang_vel"]].set(n.ang_vel * obs_lib.ANG_VEL_SCALE)
    scale = scale.at[s["gravity"]].set(n.gravity)
    scale = scale.at[s["joint_pos"]].set(n.joint_pos)
    scale = scale.at[s["joint_vel"]].set(n.joint_vel * obs_lib.JOINT_VEL_SCALE)
    return scale * jax.random.uniform(key, (obs_lib.OBS_SIZE,), minval=-1.0, maxval=1.0)


def delayed_observation(obs_hist, latency, delay_last_action: bool = True):
    """The policy observation ``latency`` steps old from the ring buffer ``obs_hist`` [L, 49]
    (newest first); with ``delay_last_action`` False its last-action slot is the newest one, as
    on the robot, whose runtime knows the action it sent last."""
    obs = obs_hist[latency]
    if delay_last_action:
        return obs
    sl = obs_lib.OBS_SLICES["last_action"]
    return obs.at[sl].set(obs_hist[0, sl])


def to_torque_motors(mj_model) -> None:
    """Make the position actuators of ``mj_model`` torque motors in place: force = ctrl (times
    the motor strength of the randomisation), still clipped by their forcerange."""
    mj_model.actuator_gainprm[:, 0] = 1.0
    mj_model.actuator_biasprm[:, :3] = 0.0
    mj_model.actuator_ctrllimited[:] = 0


def joint_state(data) -> jax.Array:
    """[24]: joint positions then velocities."""
    return jnp.concatenate([data.qpos[7:], data.qvel[6:]])


def delayed_pd(kp, kd, target, hist, delay) -> jax.Array:
    """kp (q* - q) - kd qdot from ``hist[delay]`` (``hist[j]``: the joint state j physics steps
    old, ``hist[0]`` the current one)."""
    old = hist[delay]
    return kp * (target - old[:12]) - kd * old[12:]


def shift_in(hist, data) -> jax.Array:
    """The history one physics step on: ``data``'s joint state becomes ``hist[0]``."""
    return jnp.concatenate([joint_state(data)[None], hist[:-1]], axis=0)
