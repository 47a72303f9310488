"""The peer simulator of sim2sim: Unitree's own MuJoCo Go2 and Python bridge (unitree_mujoco),
run headless as the robot's process (``python -m dmpc_jax.deploy.unitree_peer``; ``make sim2sim
SIM=unitree UNITREE_MUJOCO=<checkout>``). The user fetches the checkout; tests and CI never need it.

What is theirs, as written: the Go2 model (``unitree_robots/go2/go2.xml``: armature, joint damping
and friction loss, foot friction 0.4, torque limits as actuator ranges), the physics step of their
``simulate_python/config.py`` (``SIMULATE_DT``), and ``UnitreeSdk2Bridge``: it publishes
rt/lowstate from the model's sensors at every physics step in its own thread, and on each rt/lowcmd
computes tau = tau_ff + kp (q* - q) + kd (dq* - dq) once and holds it until the next command.

What we add, and why:
- headless: no viewer thread; the physics loop of their ``SimulationThread`` (step, then sleep to
  real time) runs here. Visual meshes are dropped (collision geometry, inertias, joints and
  actuators are untouched) and so are the obstacles of their ``scene.xml`` (two 8 cm bars at
  1.2-1.6 m, stairs from 2.3 m): the flat floor is the scene ours walks on.
- firmware stamps on outgoing LowState: their bridge leaves ``tick`` and ``crc`` at 0; the Go2's
  firmware advances the tick and sets the CRC, and the runner checks both (a frozen tick
  is a fault). The faults of ``sim_robot.SIM_FAULTS`` act on the same outgoing stream.
- the robot starts lying down (our pose), as ours does; their scene drops the robot from standing.
- the received LowCmds are checked against the joint and torque limits (``sim_robot.CommandLog``)
  before their bridge applies them; a bad CRC is counted and, as on the robot, dropped.
"""

from __future__ import annotations

import copy
import signal
import sys
import time
import types
from pathlib import Path

import numpy as np

from dmpc_jax.deploy.sim_robot import (
    LIE_DOWN_POSE,
    SIM_FAULTS,
    CommandLog,
    base_pose,
    pace,
    write_log,
)
from dmpc_jax.robot import go2

BRIDGE = "simulate_python/unitree_sdk2py_bridge.py"
SCENE = "unitree_robots/go2/scene.xml"


def check_checkout(path: str) -> Path:
    """The unitree_mujoco checkout at ``path``, or a clear error saying what is missing."""
    if not path:
        raise ValueError(
            "--cfg.sim unitree needs --cfg.unitree-mujoco <path to a unitree_mujoco checkout> "
            "(git clone https://github.com/unitreerobotics/unitree_mujoco; make sim2sim "
            "SIM=unitree UNITREE_MUJOCO=<path>)"
        )
    root = Path(path).expanduser().resolve()
    missing = [f for f in (BRIDGE, SCENE) if not (root / f).is_file()]
    if missing:
        raise ValueError(f"{root} is not a unitree_mujoco checkout: missing {', '.join(missing)}")
    return root


def load_model(root: Path, physics_dt: float):
    """Their Go2 scene, flat and headless (module docstring), with their physics step."""
    import mujoco

    spec = mujoco.MjSpec.from_file(str(root / SCENE))
    for g in list(spec.worldbody.geoms):
        if g.name != "floor":  # their obstacles
            spec.delete(g)
    for body in spec.bodies:
        for g in list(body.geoms):
            if g.type == mujoco.mjtGeom.mjGEOM_MESH and not (g.contype or g.conaffinity):
                spec.delete(g)
    for mesh in list(spec.meshes):
        spec.delete(mesh)
    model = spec.compile()
    model.opt.timestep = physics_dt
    return model


def import_bridge(root: Path):
    """(their config module, their bridge module). pygame serves only their gamepad, which is
    not used: an empty stand-in is registered when it is not installed."""
    sys.path.insert(0, str(root / "simulate_python"))
    try:
        import pygame  # noqa: F401
    except ImportError:
        sys.modules["pygame"] = types.ModuleType("pygame")
    import config
    import unitree_sdk2py_bridge

    return config, unitree_sdk2py_bridge


class FirmwareStamp:
    """Wraps their LowState publisher's ``Write``: advances ``tick`` by one a message, sets the
    CRC, and after SIGUSR1 injects ``fault``: ``stop`` (nothing out), ``freeze`` (the frame at
    the fault, republished), ``nan`` (joint 4's position NaN, CRC valid)."""

    def __init__(self, write, crc, fault: str = "none"):
        if fault not in ("none", *SIM_FAULTS):
            raise ValueError(f"unknown simulator fault {fault!r}; choose from {SIM_FAULTS}")
        self.write, self.crc, self.fault = write, crc, fault
        self.fault_t = None
        self.frame = None
        self.sent = 0

    def start_fault(self, *_):
        self.fault_t = time.monotonic()

    def __call__(self, msg):
        msg.tick = (self.sent + 1) & 0xFFFFFFFF
        if self.fault_t is not None and self.fault != "none":
            if self.fault == "stop":
                return True
            if self.fault == "freeze":
                self.frame = self.frame or copy.deepcopy(msg)
                msg = self.frame
            elif self.fault == "nan":
                msg.motor_state[4].q = float("nan")
        msg.crc = self.crc.Crc(msg)
        self.sent += 1
        return self.write(msg)


def serve(seconds: float, out: str, domain: int, interface: str, checkout: str,
          fault: str = "none") -> None:  # fmt: skip
    """Their bridge on their model until SIGTERM or ``seconds``; writes the same log as
    ``sim_robot.serve`` (base trajectory at 50 Hz, LowCmd checks, fault times) to ``out``."""
    import mujoco

    from dmpc_jax.deploy.transport import init_dds

    root = check_checkout(checkout)
    config, bridge_mod = import_bridge(root)
    model = load_model(root, float(config.SIMULATE_DT))
    data = mujoco.MjData(model)
    data.qpos[7:] = LIE_DOWN_POSE  # their joint order in qpos is ours (FL, FR, RL, RR)
    data.qpos[2] = go2.standing_height(LIE_DOWN_POSE) + 0.01
    mujoco.mj_forward(model, data)
    sdk = init_dds(domain, interface)
    log = CommandLog(sdk["CRC"]())
    nu = model.nu  # their actuators and sensors are in SDK order (FR, FL, RR, RL)
    first = {"t": None}

    class Bridge(bridge_mod.UnitreeSdk2Bridge):
        def LowCmdHandler(self, msg):  # noqa: N802 (their name)
            cmd = log.check(msg, data.sensordata[:nu].copy(), data.sensordata[nu : 2 * nu].copy())
            if cmd is None:
                return
            if first["t"] is None:
                first["t"] = float(data.time)
            super().LowCmdHandler(msg)

    # their publisher is made inside their __init__, whose thread publishes at once: the stamp
    # wraps the SDK publisher's Write (this process only) before it starts
    stamp = {}
    pub_cls = bridge_mod.ChannelPublisher
    orig_write = pub_cls.Write

    def write(self, msg, timeout=None):
        if type(msg).__name__ != "LowState_":
            return orig_write(self, msg, timeout)
        if "s" not in stamp:
            stamp["s"] = FirmwareStamp(lambda m: orig_write(self, m, timeout), sdk["CRC"](), fault)
        return stamp["s"](msg)

    pub_cls.Write = write
    Bridge(model, data)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGUSR1, lambda *_: stamp["s"].start_fault())
    dt = model.opt.timestep
    every = max(int(round(0.02 / dt)), 1)
    traj, late, k, work = [], 0, 0, 0.0
    t0 = time.monotonic()
    while not stop["flag"] and time.monotonic() - t0 < seconds:
        # one physics step per pass, paced as Unitree's own loop (simulate_python) paces it: no
        # catching up, since their bridge holds the torque of the last LowCmd between steps and
        # several steps under one held torque are not what their simulator does
        mujoco.mj_step(model, data)
        work += float(np.abs(data.actuator_force * data.actuator_velocity).sum()) * dt
        if k % every == 0:
            traj.append({"t": k * dt, **base_pose(data.qpos), "work": work})
        k += 1
        late += pace(t0, k, dt)
    s = stamp.get("s")
    write_log(out, t0, k, late, log, traj, pacing="one step a pass", fault=fault,
              fault_t=s.fault_t if s else None, first_lowcmd_t=first["t"],
              simulator="unitree_mujoco", physics_dt=dt,
              lowstate_sent=s.sent if s else 0)  # fmt: skip


if __name__ == "__main__":  # the peer robot's process (started by run_sim2sim, --cfg.sim unitree)
    a = sys.argv[1:]
    serve(float(a[0]), a[1], int(a[2]), a[3], a[4], fault=a[5] if len(a) > 5 else "none")
