"""Go2 joystick environment on MJX: brax Env API, unbatched and pure, physics substeps in a scan.

``reset(key) -> State`` and ``step(state, action) -> State``; ``State.pipeline_state`` is an
``mjx.Data``. Observations are a dict: ``state`` (the 49-dim policy observation of METHOD §1, with
noise and latency) and ``privileged_state`` (noise-free state plus quantities the robot cannot
measure, for the PPO critic). Domain-randomisation parameters are drawn at every reset and live in
``state.info['dr']``; the env applies them to its MJX model inside ``step``, so every episode gets
new physics without rebuilding anything.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax import math as brax_math
from brax.envs.base import Env, State
from mujoco import mjx

from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.envs import randomization as rnd
from dmpc_jax.envs import signals, traced
from dmpc_jax.envs.config import EnvConfig
from dmpc_jax.envs.rewards import compute_rewards
from dmpc_jax.envs.terrain import make_terrain_height
from dmpc_jax.robot import go2

PRIVILEGED_SIZE = 3 + 3 + 3 + 3 + 12 + 12 + 12 + 1 + 4 + 1 + 2  # 56, see _privileged_obs
FOOT_CONTACT_MARGIN = 0.005  # m above the ground that still counts as contact
KNEE_CONTACT_MARGIN = 0.02  # m: the thigh box half-thickness around the knee
# Why an episode can end, each logged per step as metric ``fall/<cause>`` (1.0 while it holds):
# |roll| > max_roll, |pitch| > max_pitch (atan2 form, obs.roll_pitch), body upside down
# (gravity z > 0), base or knee below the terrain (probe points), non-finite physics state.
FALL_CAUSES = ("roll", "pitch", "upside_down", "base_contact", "knee_contact", "nonfinite")


class Go2Joystick(Env):
    """Velocity-command tracking for the Go2 (see the module docstring)."""

    def __init__(self, cfg: EnvConfig = EnvConfig()):
        self.cfg = cfg
        self.mj_model = go2.make_model(cfg.model)
        if self.explicit_pd:
            signals.to_torque_motors(self.mj_model)
        # this process's own device: MJX's default, jax.devices()[0], belongs to process 0 under
        # jax.distributed, and a model there cannot be read by the other processes
        self.mjx_model = mjx.put_model(self.mj_model, impl="jax", device=jax.local_devices()[0])
        m = self.mj_model
        self._base_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "base")
        self._floor_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        self._foot_ids = np.array(
            [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f) for f in go2.FEET]
        )
        self._calf_ids = np.array(
            [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"{leg}_calf") for leg in go2.LEGS]
        )
        self._foot_radius = float(go2.load_description()["foot_contact"]["radius"])
        pose = go2.default_pose(cfg.default_pose)
        self.q_default = jnp.asarray(pose, jnp.float32)
        lo, hi = go2.joint_limits()
        self._q_lo, self._q_hi = jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32)
        init = go2.home_qpos().copy()
        init[7:] = pose
        init[2] = go2.standing_height(pose, cfg.model) + 0.01
        self._init_qpos = jnp.asarray(init, jnp.float32)
        # recorded starts (EnvConfig.init_states), read once here; None without
        self._init_states = rnd.load_init_states(cfg.init_states, init.size, self.mj_model.nv)
        # base collision probes in the base frame: box bottom corners and the nose sphere bottom
        sx, sy, sz = 0.1881, 0.04675, 0.057
        self._base_probes = jnp.array(
            [[x, y, -sz] for x in (-sx, sx) for y in (-sy, sy)] + [[0.293, 0.0, -0.06 - 0.047]]
        )
        self._terrain_height = make_terrain_height(cfg, self.mj_model)

    @property
    def explicit_pd(self) -> bool:
        """The env computes the PD torque from a delayed joint state (``EnvConfig.pd_delay``)."""
        return self.cfg.pd_delay[1] > 0

    # ------------------------------------------------------------------ brax Env API
    @property
    def observation_size(self):
        return {"state": (obs_lib.OBS_SIZE,), "privileged_state": (PRIVILEGED_SIZE,)}

    @property
    def terminating_causes(self) -> tuple[str, ...]:
        """The ``FALL_CAUSES`` that end an episode under this config (every cause is recorded
        as ``fall/<cause>`` in the metrics either way)."""
        contact = ("base_contact", "knee_contact") if self.cfg.terminate_on_contact else ()
        return ("roll", "pitch", "upside_down", *contact, "nonfinite")

    @property
    def action_size(self) -> int:
        return go2.NU

    @property
    def backend(self) -> str:
        return "mjx"

    @property
    def dt(self) -> float:
        return self.cfg.ctrl_dt

    @property
    def sys(self) -> mjx.Model:
        return self.mjx_model

    def reset(self, rng: jax.Array) -> State:
        return traced.reset(self, rng)  # one trace per config and process (envs/traced.py)

    def step(self, state: State, action: jax.Array) -> State:
        return traced.step(self, state, action)

    def _reset(self, rng: jax.Array) -> State:
        cfg = self.cfg
        key, k_q, k_yaw, k_v, k_dr, k_cmd, k_push, k_lat = jax.random.split(rng, 8)
        qpos = self._init_qpos
        yaw = jax.random.uniform(k_yaw, (), minval=-jnp.pi, maxval=jnp.pi)
        quat = jnp.array([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])
        if cfg.init_attitude > 0:  # q = q_yaw * q_pitch * q_roll (ZYX)
            roll, pitch = jax.random.uniform(
                jax.random.fold_in(k_yaw, 1), (2,), minval=-cfg.init_attitude,
                maxval=cfg.init_attitude,
            )  # fmt: skip
            q_pitch = jnp.array([jnp.cos(pitch / 2), 0.0, jnp.sin(pitch / 2), 0.0])
            q_roll = jnp.array([jnp.cos(roll / 2), jnp.sin(roll / 2), 0.0, 0.0])
            quat = brax_math.quat_mul(brax_math.quat_mul(quat, q_pitch), q_roll)
        qpos = qpos.at[3:7].set(quat)
        qpos = qpos.at[7:].add(jax.random.uniform(k_q, (12,), minval=-0.1, maxval=0.1))
        qvel = (
            jnp.zeros(self.mj_model.nv)
            .at[:6]
            .set(jax.random.uniform(k_v, (6,), minval=-0.3, maxval=0.3))
        )
        if self._init_states is not None:  # a recorded state, its base over the origin
            qpos, qvel = rnd.draw_init_state(self._init_states, jax.random.fold_in(k_q, 1))
        data = mjx.make_data(self.mjx_model, impl="jax", device=jax.local_devices()[0])
        data = data.replace(qpos=qpos, qvel=qvel, ctrl=qpos[7:])
        dr = rnd.sample_randomization(self.cfg.randomization, k_dr)
        data = mjx.forward(self._randomized_model(dr), data)

        latency_lo, latency_hi = (
            (int(round(x / cfg.ctrl_dt)) for x in cfg.noise.latency_s)
            if cfg.noise.enabled
            else (0, 0)
        )
        info = {
            "key": key,
            "command": rnd.sample_command(cfg.command, k_cmd),
            "step": jnp.zeros((), jnp.int32),
            "last_action": jnp.zeros(12),
            "action_noise": jnp.zeros(12),  # a motor disturbance on the PD target (finetuning)
            "qd_prev": jnp.zeros(12),
            "air_time": jnp.zeros(4),
            "last_contact": jnp.ones(4, bool),
            "last_foot_pos": data.geom_xpos[self._foot_ids],
            "push_countdown": rnd.sample_push_interval(cfg.push, cfg.ctrl_dt, k_push),
            "push": jnp.zeros(2),
            "dr": dr,
            "latency": jax.random.randint(k_lat, (), latency_lo, latency_hi + 1),
            "obs_hist": jnp.zeros((cfg.max_latency_steps + 1, obs_lib.OBS_SIZE)),
        }
        if self.explicit_pd:
            lo, hi = cfg.pd_delay
            info["pd_delay"] = jax.random.randint(jax.random.fold_in(k_lat, 1), (), lo, hi + 1)
            info["pd_hist"] = jnp.broadcast_to(signals.joint_state(data), (hi + 1, 24))
        clean = self._policy_obs(data, info)
        info["obs_hist"] = jnp.broadcast_to(clean, info["obs_hist"].shape)
        obs = {"state": clean, "privileged_state": self._privileged_obs(data, info, jnp.ones(4))}
        metrics = {"reward": jnp.zeros(())}  # brax's evaluator writes this key; keep the tree fixed
        metrics.update({f"reward/{k}": jnp.zeros(()) for k in cfg.reward.scales})
        metrics.update(self._tracking_metrics(data, info))
        metrics.update({f"fall/{c}": jnp.zeros(()) for c in FALL_CAUSES})
        metrics.update({"state/roll": jnp.zeros(()), "state/pitch": jnp.zeros(())})
        metrics["state/peak_joint_speed"] = jnp.max(jnp.abs(qvel[6:]))
        return State(data, obs, jnp.zeros(()), jnp.zeros(()), metrics, info)

    def _step(self, state: State, action: jax.Array) -> State:
        if action.shape != (self.action_size,):
            raise ValueError(
                f"Go2Joystick.step expects one action of shape ({self.action_size},), got "
                f"{action.shape}; vmap the env for batches"
            )
        cfg, info = self.cfg, dict(state.info)
        key, k_push, k_angle, k_mag, k_cmd, k_noise = jax.random.split(info["key"], 6)
        model = self._randomized_model(info["dr"])
        data = state.pipeline_state

        # pushes: a horizontal velocity impulse on the base when the countdown runs out
        push = jnp.zeros(2)
        if cfg.push.enabled:
            due = info["push_countdown"] <= 0
            if cfg.push.mode == "set":  # the new velocity, drawn per axis
                hi = cfg.push.magnitude[1]
                v_new = jax.random.uniform(k_mag, (2,), minval=-hi, maxval=hi)
                push = jnp.where(due, v_new - data.qvel[:2], 0.0)
            else:
                angle = jax.random.uniform(k_angle, (), minval=-jnp.pi, maxval=jnp.pi)
                mag = jax.random.uniform(
                    k_mag, (), minval=cfg.push.magnitude[0], maxval=cfg.push.magnitude[1]
                )
                push = jnp.where(due, mag * jnp.array([jnp.cos(angle), jnp.sin(angle)]), 0.0)
            data = data.replace(qvel=data.qvel.at[:2].add(push))
            info["push_countdown"] = jnp.where(
                due,
                rnd.sample_push_interval(cfg.push, cfg.ctrl_dt, k_push),
                info["push_countdown"] - 1,
            )
        info["push"] = push

        target = self.q_default + cfg.action_scale * (action + info["action_noise"])
        data = data.replace(ctrl=target)

        def substep(carry, _):
            d, hist = carry
            if self.explicit_pd:
                d = d.replace(
                    ctrl=signals.delayed_pd(cfg.kp, cfg.kd, target, hist, info["pd_delay"])
                )
            d = mjx.step(model, d)
            if self.explicit_pd:
                hist = signals.shift_in(hist, d)
            out = (jnp.sum(jnp.square(d.actuator_force * d.qvel[6:])), jnp.abs(d.qvel[6:]))
            return (d, hist), out

        hist = None
        if self.explicit_pd:  # a push changed the velocity since the last step ended
            hist = info["pd_hist"].at[0].set(signals.joint_state(data))
        (data, hist), (power_sq, qd_abs) = jax.lax.scan(
            substep, (data, hist), None, length=cfg.n_substeps
        )
        if self.explicit_pd:
            info["pd_hist"] = hist
        # each joint's peak |qdot| over the physics substeps: the deploy runner checks it at 500 Hz
        qd_peak = jnp.max(qd_abs, axis=0)

        # contacts and feet
        foot_pos = data.geom_xpos[self._foot_ids]
        foot_height = foot_pos[:, 2] - self._terrain_height(foot_pos[:, :2]) - self._foot_radius
        contact = foot_height < FOOT_CONTACT_MARGIN
        contact_filt = contact | info["last_contact"]
        first_contact = (info["air_time"] > 0) & contact_filt
        air_time = info["air_time"] + cfg.ctrl_dt
        foot_slip_speed = jnp.linalg.norm(
            (foot_pos[:, :2] - info["last_foot_pos"][:, :2]) / cfg.ctrl_dt, axis=-1
        )
        base_contact, knee_contact, calf_contact = self._body_contacts(data)

        gravity = obs_lib.projected_gravity(jnp, data.qpos[3:7])
        roll, pitch = obs_lib.roll_pitch(jnp, data.qpos[3:7])
        falls = {
            "roll": jnp.abs(roll) > cfg.max_roll,
            "pitch": jnp.abs(pitch) > cfg.max_pitch,
            "upside_down": gravity[2] > 0.0,
            "base_contact": base_contact,
            "knee_contact": knee_contact,
            "nonfinite": ~jnp.all(jnp.isfinite(data.qpos)) | ~jnp.all(jnp.isfinite(data.qvel)),
        }
        terminating = self.terminating_causes
        terminated = jnp.any(jnp.stack([falls[c] for c in terminating]))

        ctx = {
            "lin_vel": self._local_lin_vel(data),
            "ang_vel": data.qvel[3:6],
            "gravity": gravity,
            "command": info["command"],
            "q": data.qpos[7:],
            "qd": data.qvel[6:],
            "qd_prev": info["qd_prev"],
            "action": action,
            "last_action": info["last_action"],
            "torque": data.actuator_force,
            "torque_sq_power": jnp.mean(power_sq),
            "qd_peak": qd_peak,
            "q_default": self.q_default,
            "q_lo": self._q_lo,
            "q_hi": self._q_hi,
            "contact": contact.astype(jnp.float32),
            "first_contact": first_contact.astype(jnp.float32),
            "air_time": air_time,
            "foot_height": foot_height,
            "foot_slip_speed": foot_slip_speed,
            "terminated": terminated,
            "collision": base_contact | knee_contact | calf_contact,
            "ctrl_dt": cfg.ctrl_dt,
        }
        reward, terms = compute_rewards(ctx, cfg.reward, cfg.reward.scales, cfg.ctrl_dt)

        info["air_time"] = air_time * ~contact_filt
        info["last_contact"] = contact
        info["last_foot_pos"] = foot_pos
        info["qd_prev"] = data.qvel[6:]
        info["last_action"] = action
        info["step"] = info["step"] + 1
        resample = info["step"] % int(round(cfg.command.resample_s / cfg.ctrl_dt)) == 0
        info["command"] = jnp.where(
            resample, rnd.sample_command(cfg.command, k_cmd), info["command"]
        )
        info["key"] = key

        clean = self._policy_obs(data, info)
        noisy = clean + signals.obs_noise(cfg.noise, k_noise)
        info["obs_hist"] = jnp.concatenate([noisy[None], info["obs_hist"][:-1]], axis=0)
        obs = {
            "state": signals.delayed_observation(
                info["obs_hist"], info["latency"], cfg.noise.delay_last_action
            ),
            "privileged_state": self._privileged_obs(data, info, contact.astype(jnp.float32)),
        }
        reward = jnp.where(jnp.isfinite(reward), reward, 0.0)
        metrics = {"reward": reward}
        metrics.update({f"reward/{k}": v for k, v in terms.items()})
        metrics.update(self._tracking_metrics(data, info))
        metrics.update({f"fall/{c}": v.astype(jnp.float32) for c, v in falls.items()})
        metrics.update({"state/roll": roll, "state/pitch": pitch})
        metrics["state/peak_joint_speed"] = jnp.max(qd_peak)
        done = terminated.astype(jnp.float32)
        return state.replace(
            pipeline_state=data, obs=obs, reward=reward, done=done, metrics=metrics, info=info
        )

    # ------------------------------------------------------------------ pieces
    def _randomized_model(self, dr) -> mjx.Model:
        m, b = self.mjx_model, self._base_id
        contact_geoms = np.concatenate([[self._floor_id], self._foot_ids])
        s = dr["motor_strength"]
        return m.replace(
            geom_friction=m.geom_friction.at[contact_geoms, 0].set(dr["friction"]),
            body_mass=m.body_mass.at[b].add(dr["added_mass"]),
            body_ipos=m.body_ipos.at[b, :2].add(dr["com_offset"]),
            actuator_gainprm=m.actuator_gainprm.at[:, 0].multiply(s),
            actuator_biasprm=m.actuator_biasprm.at[:, 1:3].multiply(s),
            dof_damping=m.dof_damping.at[6:].multiply(dr["damping_scale"]),
        )

    def _local_lin_vel(self, data):
        rot = data.xmat[self._base_id]  # body -> world
        return rot.T @ data.qvel[:3]

    def _policy_obs(self, data, info):
        return obs_lib.build_observation(
            jnp,
            ang_vel=data.qvel[3:6],
            gravity=obs_lib.projected_gravity(jnp, data.qpos[3:7]),
            command=info["command"],
            q=data.qpos[7:],
            qd=data.qvel[6:],
            last_action=info["last_action"],
            q_default=self.q_default,
        )

    def _privileged_obs(self, data, info, contact):
        base_height = data.qpos[2] - self._terrain_height(data.qpos[None, :2])[0]
        return jnp.concatenate(
            [
                self._local_lin_vel(data),
                data.qvel[3:6],
                obs_lib.projected_gravity(jnp, data.qpos[3:7]),
                info["command"],
                data.qpos[7:] - self.q_default,
                data.qvel[6:],
                info["last_action"],
                base_height[None],
                contact,
                info["dr"]["friction"][None],
                info["push"],
            ]
        )

    def _body_contacts(self, data):
        """(base, knee, calf) ground contact flags from probe points (the feet-only model has no
        contacts for these bodies, so we test geometry against the terrain height)."""
        base_pts = data.xpos[self._base_id] + self._base_probes @ data.xmat[self._base_id].T
        base = jnp.any(base_pts[:, 2] < self._terrain_height(base_pts[:, :2]))
        knees = data.xpos[self._calf_ids]
        knee = jnp.any(knees[:, 2] - self._terrain_height(knees[:, :2]) < KNEE_CONTACT_MARGIN)
        mid = knees + jnp.einsum(
            "lij,j->li", data.xmat[self._calf_ids], jnp.array([0.0, 0.0, -0.1])
        )
        calf = jnp.any(mid[:, 2] - self._terrain_height(mid[:, :2]) < 0.013)
        return base, knee, calf

    def _tracking_metrics(self, data, info):
        v = self._local_lin_vel(data)
        return {
            "tracking/lin_vel_err": jnp.linalg.norm(v[:2] - info["command"][:2]),
            "tracking/ang_vel_err": jnp.abs(data.qvel[5] - info["command"][2]),
            "state/base_height": data.qpos[2],
            "state/forward_vel": v[0],
            "state/mech_power": jnp.sum(jnp.abs(data.actuator_force * data.qvel[6:])),
        }


@functools.cache
def make_env(cfg: EnvConfig = EnvConfig()) -> Go2Joystick:
    """One env per config (the MJX model is built once)."""
    return Go2Joystick(cfg)
