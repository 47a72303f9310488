"""The simulated Go2 of sim2sim, run as its own process (``python -m dmpc_jax.deploy.sim_robot``):
native MuJoCo (full collision geometry, 1 ms physics, no MJX) behaving like the robot's low-level
firmware: rt/lowstate out at 500 Hz, the newest rt/lowcmd applied as motor PD torques
(tau = kp (q* - q) + kd (dq* - dq) + tau_ff, clipped to the torque limits, recomputed every physics
step; commands with a bad CRC are dropped). The robot starts lying down. No JAX: a collection of
its heap would stall the 500 Hz stream."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

from dmpc_jax.envs.obs import roll_pitch
from dmpc_jax.robot import go2

LIE_DOWN_POSE = np.tile([0.0, 1.36, -2.65], 4)  # model order (FL, FR, RL, RR)


class SimRobot:
    """Native MuJoCo Go2 with motor-side PD on the LowCmd fields (model order inside)."""

    def __init__(self, physics_dt: float = 0.001):
        import mujoco

        cfg = go2.ModelConfig(contacts="full", timestep=physics_dt, solver_iterations=20,
                              ls_iterations=10, foot_condim=3)  # fmt: skip
        self.mj = mujoco
        self.model = go2.make_model(cfg)
        self.model.actuator_gainprm[:, 0] = 0.0  # torques come from qfrc_applied
        self.model.actuator_biasprm[:, :3] = 0.0
        self.data = mujoco.MjData(self.model)
        self.data.qpos[:] = go2.home_qpos()
        self.data.qpos[7:] = LIE_DOWN_POSE
        self.data.qpos[2] = go2.standing_height(LIE_DOWN_POSE) + 0.01
        mujoco.mj_forward(self.model, self.data)
        self.tau_max = go2.torque_limits()
        self.sdk_to_model, self.model_to_sdk = go2.sdk_to_model(), go2.model_to_sdk()
        self.tick = 0
        self.work = 0.0  # mechanical work of the motors, sum |tau . dq| dt (J)

    def step(self, cmd, n_substeps: int) -> None:
        """Advance ``n_substeps`` physics steps under LowCmd ``cmd`` (SDK order; None: limp)."""
        d = self.data
        for _ in range(n_substeps):
            if cmd is None:
                tau = np.zeros(12)
            else:
                q, dq = d.qpos[7:][self.model_to_sdk], d.qvel[6:][self.model_to_sdk]
                tau_sdk = cmd.kp * (cmd.q - q) + cmd.kd * (cmd.dq - dq) + cmd.tau
                tau = tau_sdk[self.sdk_to_model]
            d.qfrc_applied[6:] = np.clip(tau, -self.tau_max, self.tau_max)
            self.mj.mj_step(self.model, d)
            self.work += (
                float(np.abs(d.qfrc_applied[6:] * d.qvel[6:]).sum()) * self.model.opt.timestep
            )
        self.tick += 1

    def lowstate(self):
        from dmpc_jax.deploy.transport import LowState

        d = self.data
        return LowState(
            quat_wxyz=d.qpos[3:7].copy(),
            gyro=d.qvel[3:6].copy(),  # free-joint angular velocity is in the body frame
            q=d.qpos[7:][self.model_to_sdk].copy(),
            dq=d.qvel[6:][self.model_to_sdk].copy(),
            tau_est=d.qfrc_applied[6:][self.model_to_sdk].copy(),
            tick=self.tick,
        )

    def base(self) -> dict:
        return base_pose(self.data.qpos)


def base_pose(qpos) -> dict:
    """Base position, yaw, roll and pitch (rad) from a free-joint qpos (the 50 Hz trajectory)."""
    w, x, y, z = qpos[3:7]
    roll, pitch = roll_pitch(np, qpos[3:7])
    return {
        "x": float(qpos[0]), "y": float(qpos[1]), "z": float(qpos[2]),
        "yaw": float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))),
        "roll": float(roll),
        "pitch": float(pitch),
    }  # fmt: skip


class CommandLog:
    """What a simulated robot saw of rt/lowcmd: counts, bad CRCs, commands outside the joint
    limits, PD torques (before the motor clamp) beyond the torque limits, the first damping
    command (``time.monotonic``, the clock the runner logs with). SDK joint order."""

    def __init__(self, crc):
        self.crc = crc
        m2s = go2.model_to_sdk()
        self.lo, self.hi = (np.asarray(x)[m2s] for x in go2.joint_limits())
        self.tau_max = np.asarray(go2.torque_limits())[m2s]
        self.received = self.bad_crc = self.out_of_range = self.over_torque = 0
        self.max_torque_ratio = 0.0
        self.first_damping_t = None
        self.last_t = None  # the newest LowCmd (time.monotonic): when the runner stopped sending

    def check(self, msg, q, dq):
        """The LowCmd of ``msg``, or None when its CRC is bad (dropped, as the firmware does);
        ``q``, ``dq``: the joints now (SDK order)."""
        from dmpc_jax.deploy.transport import lowcmd_from_sdk

        if self.crc.Crc(msg) != msg.crc:
            self.bad_crc += 1
            return None
        cmd = lowcmd_from_sdk(msg)
        self.received += 1
        self.last_t = time.monotonic()
        if cmd.is_damping():
            if self.first_damping_t is None:
                self.first_damping_t = time.monotonic()
            return cmd
        ratio = np.abs(cmd.kp * (cmd.q - q) + cmd.kd * (cmd.dq - dq) + cmd.tau) / self.tau_max
        self.max_torque_ratio = max(self.max_torque_ratio, float(ratio.max()))
        self.over_torque += int((ratio > 1.0 + 1e-6).any())
        self.out_of_range += int(((cmd.q < self.lo) | (cmd.q > self.hi)).any())
        return cmd

    def summary(self) -> dict:
        return {
            "lowcmd_received": self.received, "lowcmd_bad_crc": self.bad_crc,
            "lowcmd_out_of_joint_range": self.out_of_range,
            "lowcmd_over_torque": self.over_torque,
            "lowcmd_max_torque_ratio": self.max_torque_ratio,
            "first_damping_t": self.first_damping_t,
            "last_lowcmd_t": self.last_t,
        }  # fmt: skip


# the most ticks a simulated robot steps at once to catch up with real time (0.1 s at 500 Hz):
# a process stopped longer than that falls behind real time instead of jumping ahead
MAX_CATCHUP_TICKS = 50


def ticks_due(t0: float, k: int, dt: float, cap: int = MAX_CATCHUP_TICKS) -> int:
    """How many ticks to step now, after ``k`` ticks of ``dt`` from ``t0``, to bring the
    simulated time back to real time: 1 when on time, more when the process was held up
    (at most ``cap``). A real robot's physics never waits for its firmware: a simulator that
    steps one tick per loop falls behind real time whenever it is starved of CPU, and the
    controller's 50 Hz steps then act on a robot that moves slower than it (the simulated Go2
    ran 8080 ticks of 2 ms in 24 s of a demonstrator run on 2 busy cores)."""
    return int(min(max((time.monotonic() - t0) // dt - k + 1, 1), cap))


def pace(t0: float, k: int, dt: float) -> int:
    """Sleep until step ``k``'s time ``t0 + k dt`` (real time); 1 if already more than a step
    late (a late step, counted), else 0."""
    delay = t0 + k * dt - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    return int(delay < -dt)


def write_log(out: str, t0: float, k: int, late: int, log: CommandLog, traj: list, **extra) -> None:
    """A simulated robot's log for sim2sim: steps, late steps, wall time, its start
    (``time.monotonic``), the LowCmd checks, ``extra`` and the 50 Hz base trajectory."""
    Path(out).write_text(json.dumps({
        "ticks": k, "late_ticks": late, "wall_s": time.monotonic() - t0, "t0": t0,
        **log.summary(), **extra, "trajectory": traj,
    }) + "\n")  # fmt: skip


SIM_FAULTS = ("stop", "freeze", "nan")  # injected by the simulated robot on SIGUSR1


def serve(seconds: float, out: str, domain: int = 0, interface: str = "lo",
          physics_dt: float = 0.001, rate_hz: float = 500.0, fault: str = "none") -> None:  # fmt: skip
    """The simulated robot's process: 500 Hz lowstate out, lowcmd in, until SIGTERM or
    ``seconds``; writes the base trajectory (50 Hz) and message counts to ``out`` (JSON).

    ``fault`` (``SIM_FAULTS``) starts on SIGUSR1: ``stop`` publishing rt/lowstate, republish a
    ``freeze``-frame (same tick and values), or publish ``nan`` in a joint reading; physics and
    the received LowCmds go on. Every received LowCmd is checked against the joint limits (and
    its PD torque, before the motor clamp, against the torque limits), and the first damping
    command is timed (``time.monotonic``, the clock the runner logs with)."""
    import threading

    from dmpc_jax.deploy.transport import (
        LOWCMD_TOPIC,
        LOWSTATE_TOPIC,
        init_dds,
        lowstate_to_sdk,
    )

    if fault not in ("none", *SIM_FAULTS):
        raise ValueError(f"unknown simulator fault {fault!r}; choose from {SIM_FAULTS}")
    # ordinary priority: at SCHED_FIFO 20 (with a 0.5 ms GIL switch interval) it kept its pace
    # under load but made the runner's stale states *more* frequent on a quiet machine
    # (experiments/sim2sim/realtime.md), so it stays a plain process
    priority = "ordinary"
    sdk = init_dds(domain, interface)
    robot = SimRobot(physics_dt)
    lock = threading.Lock()
    latest = {"cmd": None}
    log = CommandLog(sdk["CRC"]())
    faulted = {"t": None, "frame": None}
    signal.signal(signal.SIGUSR1, lambda *_: faulted.update(t=time.monotonic()))

    def on_cmd(msg):
        with lock:
            d = robot.data
            cmd = log.check(msg, d.qpos[7:][robot.model_to_sdk], d.qvel[6:][robot.model_to_sdk])
            if cmd is not None:
                latest["cmd"] = cmd

    pub = sdk["Publisher"](LOWSTATE_TOPIC, sdk["LowState_"])
    pub.Init()
    sub = sdk["Subscriber"](LOWCMD_TOPIC, sdk["LowCmd_"])
    sub.Init(on_cmd, 10)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    dt = 1.0 / rate_hz
    n_sub = max(int(round(dt / physics_dt)), 1)
    traj, late, first_cmd_t = [], 0, None
    t0 = time.monotonic()
    k = 0
    while not stop["flag"] and time.monotonic() - t0 < seconds:
        with lock:
            cmd = latest["cmd"]
        if cmd is not None and first_cmd_t is None:
            first_cmd_t = k * dt
        n = ticks_due(t0, k, dt)  # the ticks since the last one, stepped under the newest LowCmd
        robot.step(cmd, n_sub * n)
        st = robot.lowstate()
        if faulted["t"] is None or fault == "none":
            pub.Write(lowstate_to_sdk(sdk, st))
        elif fault == "freeze":
            faulted["frame"] = faulted["frame"] or lowstate_to_sdk(sdk, st)
            pub.Write(faulted["frame"])
        elif fault == "nan":
            st.q[4] = np.nan
            pub.Write(lowstate_to_sdk(sdk, st))
        # "stop": nothing goes out
        if (k + n - 1) // 10 > (k - 1) // 10:  # a 50 Hz sample fell in these ticks
            traj.append({"t": ((k + n - 1) // 10) * 10 * dt, **robot.base(), "work": robot.work})
        k += n
        late += n - 1  # ticks whose state went out late (caught up, published once)
        pace(t0, k, dt)
    write_log(out, t0, k, late, log, traj, pacing="real time", fault=fault, fault_t=faulted["t"],
              first_lowcmd_t=first_cmd_t, priority=priority)  # fmt: skip


if __name__ == "__main__":  # the simulated robot's process (started by run_sim2sim)
    a = sys.argv[1:]
    serve(float(a[0]), a[1], int(a[2]), a[3], float(a[4]), fault=a[5] if len(a) > 5 else "none")
