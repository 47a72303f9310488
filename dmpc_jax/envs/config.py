"""Frozen, validated configuration of the Go2 joystick environment."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from dmpc_jax.robot.go2 import ModelConfig


def _check_range(owner: str, name: str, rng: tuple[float, float], lo=-math.inf, hi=math.inf):
    if len(rng) != 2:
        raise ValueError(f"{owner}.{name} must be a (low, high) pair, got {rng!r}")
    a, b = rng
    if not (a <= b):
        raise ValueError(f"{owner}.{name} is empty: low {a} > high {b}")
    if a < lo or b > hi:
        raise ValueError(f"{owner}.{name}={rng} must lie within [{lo}, {hi}]")


@dataclasses.dataclass(frozen=True)
class CommandConfig:
    """Velocity commands, uniform in each range, resampled every ``resample_s`` seconds.

    Attributes:
        vx: forward velocity range, m/s.
        vy: lateral velocity range, m/s.
        wz: yaw rate range, rad/s.
        resample_s: period of command resampling, s.
        zero_prob: probability that a drawn command is exactly zero (standing).
        wz_deadband: a drawn yaw rate with |wz| below this is set to 0 (the authors' finetuning
            env clears commands below 0.1, so straight walking is a command class of its own);
            0 keeps every draw.
    """

    vx: tuple[float, float] = (-1.0, 1.0)
    vy: tuple[float, float] = (-0.5, 0.5)
    wz: tuple[float, float] = (-1.0, 1.0)
    resample_s: float = 5.0
    zero_prob: float = 0.05
    wz_deadband: float = 0.0

    def __post_init__(self):
        for name in ("vx", "vy", "wz"):
            _check_range("CommandConfig", name, getattr(self, name))
        if self.resample_s <= 0:
            raise ValueError(f"CommandConfig.resample_s must be > 0 s, got {self.resample_s}")
        if not 0.0 <= self.zero_prob <= 1.0:
            raise ValueError(f"CommandConfig.zero_prob must be in [0, 1], got {self.zero_prob}")
        if self.wz_deadband < 0:
            raise ValueError(f"CommandConfig.wz_deadband must be >= 0, got {self.wz_deadband}")


@dataclasses.dataclass(frozen=True)
class RandomizationConfig:
    """Domain randomisation, drawn per episode at reset.

    Attributes:
        enabled: draw the parameters below; otherwise use the nominal model.
        friction: ground and foot sliding friction coefficient range.
        added_base_mass: mass added to the base, kg.
        com_offset: base centre-of-mass shift range along x and y, m.
        motor_strength: scale of the PD gains kp and kd (weaker/stronger motors).
        joint_damping_scale: scale of the passive joint damping.
    """

    enabled: bool = True
    friction: tuple[float, float] = (0.4, 1.25)
    added_base_mass: tuple[float, float] = (-1.0, 2.0)
    com_offset: tuple[float, float] = (-0.03, 0.03)
    motor_strength: tuple[float, float] = (0.9, 1.1)
    joint_damping_scale: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self):
        _check_range("RandomizationConfig", "friction", self.friction, lo=0.0)
        _check_range("RandomizationConfig", "added_base_mass", self.added_base_mass, lo=-5.0)
        _check_range("RandomizationConfig", "com_offset", self.com_offset)
        _check_range("RandomizationConfig", "motor_strength", self.motor_strength, lo=0.0)
        _check_range("RandomizationConfig", "joint_damping_scale", self.joint_damping_scale, lo=0.0)


@dataclasses.dataclass(frozen=True)
class PushConfig:
    """Random pushes at random intervals.

    Attributes:
        enabled: apply pushes.
        interval_s: range of the time between pushes, s.
        magnitude: ``add``: range of the horizontal velocity change of a push, m/s (direction
            uniform); ``set``: the base's horizontal velocity is replaced by a draw from
            U(-magnitude[1], magnitude[1])^2 m/s.
        mode: ``add`` (this project's training and evaluation pushes) or ``set`` (the authors'
            data-collection pushes, ``push_robots`` in their ``legged_robot.py``: velocity set to
            U(-1, 1)^2 m/s, which makes recoveries from large errors part of the data).
    """

    enabled: bool = True
    interval_s: tuple[float, float] = (5.0, 10.0)
    magnitude: tuple[float, float] = (0.1, 0.5)
    mode: Literal["add", "set"] = "add"

    def __post_init__(self):
        _check_range("PushConfig", "interval_s", self.interval_s, lo=1e-6)
        _check_range("PushConfig", "magnitude", self.magnitude, lo=0.0)
        if self.mode not in ("add", "set"):
            raise ValueError(f"PushConfig.mode must be 'add' or 'set', got {self.mode!r}")


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    """Observation noise (uniform in +-scale, raw units before observation scaling) and latency.

    Attributes:
        enabled: add the noise below.
        ang_vel: gyro noise, rad/s.
        gravity: projected-gravity noise.
        joint_pos: joint angle noise, rad.
        joint_vel: joint velocity noise, rad/s.
        latency_s: range of proprioceptive latency, s; drawn per episode and rounded to whole
            control steps (a ring buffer of past observations).
        delay_last_action: delay the last-action slot with the rest of the observation. The
            robot's runtime knows its last action exactly, and the authors never delay that slot
            (``legged_robot_noisy.py``); True keeps this project's original behaviour, which the
            shipped demonstrator and data were made with.
    """

    enabled: bool = True
    ang_vel: float = 0.2
    gravity: float = 0.05
    joint_pos: float = 0.01
    joint_vel: float = 1.5
    latency_s: tuple[float, float] = (0.005, 0.045)
    delay_last_action: bool = True

    def __post_init__(self):
        for name in ("ang_vel", "gravity", "joint_pos", "joint_vel"):
            if getattr(self, name) < 0:
                raise ValueError(f"NoiseConfig.{name} must be >= 0, got {getattr(self, name)}")
        _check_range("NoiseConfig", "latency_s", self.latency_s, lo=0.0, hi=1.0)


# Reward scales per term (each term is multiplied by its scale and by ctrl_dt).
DEMONSTRATOR_REWARD = {
    # Tracking dominates and the pose reward is weak: with pose 0.5 / tracking 1.0 / torques -2e-4 a
    # first cpu run settled into standing still (6.5 M steps, lin-vel tracking 5.6 of 20 per episode).
    "tracking_lin_vel": 1.5,
    "tracking_ang_vel": 0.8,
    "lin_vel_z": -0.5,
    "ang_vel_xy": -0.05,
    "orientation": -5.0,
    "torques": -0.0001,
    "action_rate": -0.01,
    "energy": -0.0005,
    "pose": 0.1,
    "dof_pos_limits": -1.0,
    "feet_air_time": 0.2,
    "feet_slip": -0.05,
    "feet_clearance": -2.0,
    "stand_still": -0.5,
    "termination": -1.0,
}

# METHOD §7: the paper's finetuning reward and R_nn target.
FINETUNE_REWARD = {
    "tracking_lin_vel": 7.5,
    "tracking_ang_vel": 5.0,
    "energy_sq": -8e-7,
    "alive": 1.0,
    "termination": -5.0,
    "collision": -1.0,
    "orientation": -5.0,
    "dof_vel": -5e-4,
    "dof_acc": -5e-7,
    "dof_pos": -1.0,
}

REWARD_PRESETS = {"demonstrator": DEMONSTRATOR_REWARD, "finetune": FINETUNE_REWARD}


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """Reward: a named preset of scales, with optional overrides.

    Attributes:
        preset: ``demonstrator`` (PPO training) or ``finetune`` (METHOD §7).
        overrides: (term, scale) pairs replacing the preset's scale; a scale of 0 drops a term.
        tracking_sigma: width of the exponential tracking kernels, (m/s)^2.
        max_foot_height: swing height targeted by ``feet_clearance``, m.
        clip_negative: clip the per-step total at 0 (helps early PPO; off for the paper reward).
        soft_joint_speed: |qdot| above which ``dof_vel_limits`` costs, rad/s (the deploy runner
            ends in damping above ``SafetyConfig.max_joint_speed``, 30 rad/s).
    """

    preset: Literal["demonstrator", "finetune"] = "demonstrator"
    overrides: tuple[tuple[str, float], ...] = ()
    tracking_sigma: float = 0.25
    max_foot_height: float = 0.08
    clip_negative: bool = True
    soft_joint_speed: float = 24.0

    def __post_init__(self):
        if self.preset not in REWARD_PRESETS:
            raise ValueError(
                f"RewardConfig.preset must be one of {sorted(REWARD_PRESETS)}, got {self.preset!r}"
            )
        from dmpc_jax.envs.rewards import REWARD_TERMS

        for term, _ in self.overrides:
            if term not in REWARD_TERMS:
                raise ValueError(
                    f"RewardConfig.overrides names unknown term {term!r}; known: {sorted(REWARD_TERMS)}"
                )
        if self.tracking_sigma <= 0:
            raise ValueError(f"RewardConfig.tracking_sigma must be > 0, got {self.tracking_sigma}")
        if self.soft_joint_speed <= 0:
            raise ValueError(
                f"RewardConfig.soft_joint_speed must be > 0 rad/s, got {self.soft_joint_speed}"
            )

    @property
    def scales(self) -> dict[str, float]:
        scales = dict(REWARD_PRESETS[self.preset])
        scales.update(dict(self.overrides))
        return {k: v for k, v in scales.items() if v != 0.0}


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """The Go2 joystick environment.

    Attributes:
        ctrl_dt: control period, s (50 Hz).
        sim_dt: physics step, s; must divide ``ctrl_dt``.
        episode_length_s: episode length, s.
        action_scale: PD target = q_default + action_scale * action, rad per unit action.
        kp: PD stiffness, N m / rad.
        kd: PD damping, N m s / rad.
        default_pose: ``paper`` (METHOD §1 q_default) or ``home`` (the keyframe).
        contacts: ``feet`` or ``full`` (see ``ModelConfig``).
        terrain: ``flat``, ``rough`` or ``slope``.
        max_roll: termination when |roll| exceeds this, rad.
        max_pitch: termination when |pitch| exceeds this, rad.
        terminate_on_contact: terminate on base or thigh ground contact.
        init_attitude: initial base roll and pitch drawn from U(-x, x) rad at reset (0: level;
            the authors' data collection uses 0.2).
        init_states: an ``.npz`` of recorded states (``qpos`` [N, 19], ``qvel`` [N, 18]): each
            reset starts from one drawn at random, its base moved over the origin, instead of
            the standing pose (e.g. the planner's states before its falls, so the demonstrator
            shows how to recover from them: ``experiments/finetune/startup_trace.py``); "" for
            none. Overrides ``init_attitude`` and the pose and velocity noise of the reset.
        solver_iterations: the contact solver's iterations (``ModelConfig``; Unitree's
            ``go2.xml`` uses 100).
        cone: its friction cone, ``pyramidal`` or ``elliptic`` (``ModelConfig``).
        impratio: its frictional-to-normal impedance ratio (``ModelConfig``).
        foot_condim: the feet's contact dimensionality (``ModelConfig``; 3 or 6).
        pd_delay: (lo, hi) physics steps by which the PD torque lags the joint state, drawn per
            episode. (0, 0): MuJoCo's position actuators (kp, kd evaluated inside every step).
            Otherwise the actuators are torque motors and the env computes kp (q* - q) - kd qdot
            from the joint state ``delay`` steps old before every step, as Unitree's Python bridge
            does: it computes the torque from the joint sensors at each LowCmd and holds it, and
            MuJoCo's sensors after ``mj_step`` hold the state from that step's start (delay 1).
        command, randomization, push, noise, reward: see their classes.
    """

    ctrl_dt: float = 0.02
    sim_dt: float = 0.004
    episode_length_s: float = 20.0
    action_scale: float = 0.5
    kp: float = 40.0
    kd: float = 1.0
    default_pose: Literal["paper", "home"] = "paper"
    contacts: Literal["feet", "full"] = "feet"
    terrain: Literal["flat", "rough", "slope"] = "flat"
    max_roll: float = 1.0
    max_pitch: float = 1.6
    terminate_on_contact: bool = True
    init_attitude: float = 0.0
    init_states: str = ""
    solver_iterations: int = 1
    cone: Literal["pyramidal", "elliptic"] = "pyramidal"
    impratio: float = 1.0
    foot_condim: int = 3
    pd_delay: tuple[int, int] = (0, 0)
    command: CommandConfig = CommandConfig()
    randomization: RandomizationConfig = RandomizationConfig()
    push: PushConfig = PushConfig()
    noise: NoiseConfig = NoiseConfig()
    reward: RewardConfig = RewardConfig()

    def __post_init__(self):
        if self.ctrl_dt <= 0:
            raise ValueError(f"EnvConfig.ctrl_dt must be > 0 s, got {self.ctrl_dt}")
        if self.sim_dt <= 0:
            raise ValueError(f"EnvConfig.sim_dt must be > 0 s, got {self.sim_dt}")
        ratio = self.ctrl_dt / self.sim_dt
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(
                f"EnvConfig.sim_dt={self.sim_dt} must divide ctrl_dt={self.ctrl_dt} "
                f"into a whole number of substeps (got {ratio:.4f})"
            )
        if self.episode_length_s < self.ctrl_dt:
            raise ValueError(
                f"EnvConfig.episode_length_s must be >= ctrl_dt, got {self.episode_length_s}"
            )
        if self.action_scale <= 0:
            raise ValueError(f"EnvConfig.action_scale must be > 0, got {self.action_scale}")
        if self.default_pose not in ("paper", "home"):
            raise ValueError(
                f"EnvConfig.default_pose must be 'paper' or 'home', got {self.default_pose!r}"
            )
        if not (0 < self.max_roll <= math.pi and 0 < self.max_pitch <= math.pi):
            raise ValueError("EnvConfig.max_roll and max_pitch must be in (0, pi] rad")
        lo, hi = self.pd_delay
        if not (0 <= lo <= hi <= 10) or int(lo) != lo or int(hi) != hi:
            raise ValueError(
                f"EnvConfig.pd_delay must be whole physics steps 0 <= lo <= hi <= 10, got "
                f"{self.pd_delay}"
            )
        if not 0 <= self.init_attitude < 1.0:
            raise ValueError(
                f"EnvConfig.init_attitude must be in [0, 1) rad, got {self.init_attitude}"
            )
        _ = self.model  # ModelConfig validates kp, kd, contacts, terrain

    @property
    def n_substeps(self) -> int:
        return int(round(self.ctrl_dt / self.sim_dt))

    @property
    def episode_steps(self) -> int:
        return int(round(self.episode_length_s / self.ctrl_dt))

    @property
    def model(self) -> ModelConfig:
        return ModelConfig(
            contacts=self.contacts,
            kp=self.kp,
            kd=self.kd,
            timestep=self.sim_dt,
            terrain=self.terrain,
            solver_iterations=self.solver_iterations,
            cone=self.cone,
            impratio=self.impratio,
            foot_condim=self.foot_condim,
        )

    @property
    def max_latency_steps(self) -> int:
        return int(round(self.noise.latency_s[1] / self.ctrl_dt)) if self.noise.enabled else 0
