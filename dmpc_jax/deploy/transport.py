"""Robot messages and their transports: unitree_sdk2py DDS channels (rt/lowcmd, rt/lowstate) or an
in-process fake for tests.

``LowCmd`` and ``LowState`` are plain numpy records in the SDK's motor order (FR, FL, RR, RL x hip,
thigh, calf); only the transports know the SDK's IDL types, and unitree_sdk2py is imported lazily
(the library works without it). Install it with the ``robot`` extra: ``unitree-sdk2py-dimos``
pulls the cyclonedds 11.x wheel (sim2sim on one machine); the Go2 itself runs CycloneDDS 0.10.x,
which does not talk to 11.x peers: for the real robot build cyclonedds 0.10.2 (README, "Robot").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from dmpc_jax.deploy.realtime import realtime

N_MOTORS = 12
LOWCMD_TOPIC = "rt/lowcmd"
LOWSTATE_TOPIC = "rt/lowstate"
POS_STOP = 2.146e9  # the SDK's "no position target" sentinel
VEL_STOP = 16000.0  # the SDK's "no velocity target" sentinel


class TransportUnavailable(RuntimeError):
    """unitree_sdk2py (or its DDS library) cannot be imported here."""


@dataclass
class LowCmd:
    """One motor command, SDK order: tau = kp (q - q_m) + kd (dq - dq_m) + tau_ff on the motors."""

    q: np.ndarray
    dq: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    tau: np.ndarray

    @classmethod
    def damping(cls, kd: float) -> LowCmd:
        z = np.zeros(N_MOTORS)
        return cls(z.copy(), z.copy(), z.copy(), np.full(N_MOTORS, kd), z.copy())

    def is_damping(self) -> bool:
        return bool(np.all(self.kp == 0) and np.all(self.tau == 0) and np.all(self.kd > 0))


@dataclass
class LowState:
    """What the controller reads from rt/lowstate, SDK order."""

    quat_wxyz: np.ndarray
    gyro: np.ndarray
    q: np.ndarray
    dq: np.ndarray
    tau_est: np.ndarray = field(default_factory=lambda: np.zeros(N_MOTORS))
    tick: int = 0


def _sdk():
    try:
        from unitree_sdk2py.core.channel import (
            ChannelFactoryInitialize,
            ChannelPublisher,
            ChannelSubscriber,
        )
        from unitree_sdk2py.idl.default import (
            unitree_go_msg_dds__LowCmd_,
            unitree_go_msg_dds__LowState_,
        )
        from unitree_sdk2py.idl.unitree_go.msg.dds_ import LowCmd_, LowState_
        from unitree_sdk2py.utils.crc import CRC
    except Exception as e:  # noqa: BLE001 (ImportError, or the DDS library failing to load)
        raise TransportUnavailable(
            f"unitree_sdk2py is not usable here ({type(e).__name__}: {e}); install the robot "
            'extra: pip install -e ".[robot]"'
        ) from e
    return {
        "init": ChannelFactoryInitialize, "Publisher": ChannelPublisher,
        "Subscriber": ChannelSubscriber, "LowCmd_": LowCmd_, "LowState_": LowState_,
        "new_cmd": unitree_go_msg_dds__LowCmd_, "new_state": unitree_go_msg_dds__LowState_,
        "CRC": _shared_crc(CRC),
    }  # fmt: skip


_CRC_LOCK = threading.Lock()
_CRC = None


def _shared_crc(cls):
    """``() -> `` the SDK's CRC object, made once per process. Call this, never ``CRC()``: the
    SDK's ``CRC`` is a singleton whose ``__init__`` runs again at every ``CRC()``, reloading its C
    library and resetting the function's return type, so a CRC computed meanwhile in another
    thread comes back as a signed int, wrong for every message whose CRC has its top bit set (a
    thread building ``CRC()`` in a loop made 2,719 of 20,000 checks fail; test_transport). With
    a ``CRC()`` per message sent, the runner dropped good LowStates in its DDS thread and the
    simulated robot good LowCmds."""

    def get():
        global _CRC
        if _CRC is not None:
            return _CRC
        with _CRC_LOCK:
            if _CRC is None:
                _CRC = cls()
            return _CRC

    return get


_INIT_LOCK = threading.Lock()
_INITIALISED: tuple | None = None


def init_dds(domain: int, interface: str | None) -> dict:
    """``ChannelFactoryInitialize`` once per process (the SDK keeps a global participant)."""
    global _INITIALISED
    sdk = _sdk()
    with _INIT_LOCK:
        if _INITIALISED is None:
            if interface:
                sdk["init"](domain, interface)
            else:
                sdk["init"](domain)
            _INITIALISED = (domain, interface)
        elif _INITIALISED != (domain, interface):
            raise RuntimeError(f"DDS already initialised with {_INITIALISED} in this process")
    return sdk


def lowcmd_to_sdk(sdk: dict, cmd: LowCmd):
    msg = sdk["new_cmd"]()
    msg.head[0], msg.head[1] = 0xFE, 0xEF
    msg.level_flag = 0xFF
    msg.gpio = 0
    for i in range(20):
        m = msg.motor_cmd[i]
        if i < N_MOTORS:
            m.mode = 0x01
            m.q, m.dq = float(cmd.q[i]), float(cmd.dq[i])
            m.kp, m.kd, m.tau = float(cmd.kp[i]), float(cmd.kd[i]), float(cmd.tau[i])
        else:
            m.mode, m.q, m.dq, m.kp, m.kd, m.tau = 0x00, POS_STOP, VEL_STOP, 0.0, 0.0, 0.0
    msg.crc = sdk["CRC"]().Crc(msg)
    return msg


def lowcmd_from_sdk(msg) -> LowCmd:
    g = lambda name: np.array([getattr(msg.motor_cmd[i], name) for i in range(N_MOTORS)])  # noqa: E731
    return LowCmd(g("q"), g("dq"), g("kp"), g("kd"), g("tau"))


def lowstate_to_sdk(sdk: dict, st: LowState):
    msg = sdk["new_state"]()
    msg.head[0], msg.head[1] = 0xFE, 0xEF
    msg.level_flag = 0xFF
    msg.tick = int(st.tick) & 0xFFFFFFFF
    msg.imu_state.quaternion = [float(v) for v in st.quat_wxyz]
    msg.imu_state.gyroscope = [float(v) for v in st.gyro]
    for i in range(N_MOTORS):
        m = msg.motor_state[i]
        m.q, m.dq, m.tau_est = float(st.q[i]), float(st.dq[i]), float(st.tau_est[i])
    msg.crc = sdk["CRC"]().Crc(msg)
    return msg


def lowstate_crc_ok(crc, msg) -> bool:
    """The LowState's CRC field matches its contents (the Go2 and our sim bridge both set it);
    ``crc``: an SDK ``CRC()`` instance (reuse one: ~0.12 ms a message here, in the DDS thread)."""
    return int(msg.crc) == int(crc.Crc(msg))


def lowstate_from_sdk(msg) -> LowState:
    return LowState(
        quat_wxyz=np.asarray(msg.imu_state.quaternion, np.float64),
        gyro=np.asarray(msg.imu_state.gyroscope, np.float64),
        q=np.array([msg.motor_state[i].q for i in range(N_MOTORS)]),
        dq=np.array([msg.motor_state[i].dq for i in range(N_MOTORS)]),
        tau_est=np.array([msg.motor_state[i].tau_est for i in range(N_MOTORS)]),
        tick=int(msg.tick),
    )


class FakeTransport:
    """In-process transport for tests: ``push_state`` plays the robot, ``sent`` records commands."""

    def __init__(self):
        self._state: tuple[LowState, float] | None = None
        self.sent: list[LowCmd] = []

    def push_state(self, state: LowState, t: float) -> None:
        self._state = (state, t)

    def latest_state(self) -> tuple[LowState, float] | None:
        return self._state

    def send(self, cmd: LowCmd) -> None:
        self.sent.append(cmd)


class DdsTransport:
    """The controller's side over DDS: subscribes rt/lowstate, publishes rt/lowcmd (CRC set).
    The threads that receive rt/lowstate run at real-time priority (``realtime``): a state that
    waits behind other work goes stale.

    ``check_crc``: a LowState whose CRC does not match is dropped and counted (``crc_errors``);
    the runner then sees the state go stale, as if the message had not arrived."""

    def __init__(self, domain: int = 0, interface: str | None = "lo", check_crc: bool = True):
        # DDS's receive threads and the SDK's reader thread start here and inherit real-time
        # priority; this thread's own scheduling is restored after
        self._lock = threading.Lock()  # the handler's state first: a LowState may arrive at once
        self._state: tuple[LowState, float] | None = None
        self.received = 0
        self.crc_errors = 0
        with realtime():
            self._sdk = init_dds(domain, interface)
            self._crc = self._sdk["CRC"]() if check_crc else None
            self._sub = self._sdk["Subscriber"](LOWSTATE_TOPIC, self._sdk["LowState_"])
            self._sub.Init(self._on_state, 10)
        self._pub = self._sdk["Publisher"](LOWCMD_TOPIC, self._sdk["LowCmd_"])
        self._pub.Init()

    def _on_state(self, msg) -> None:
        if self._crc is not None and not lowstate_crc_ok(self._crc, msg):
            with self._lock:
                self.crc_errors += 1
            return
        st = lowstate_from_sdk(msg)
        with self._lock:
            self._state = (st, time.monotonic())
            self.received += 1

    def latest_state(self) -> tuple[LowState, float] | None:
        with self._lock:
            return self._state

    def send(self, cmd: LowCmd) -> None:
        self._pub.Write(lowcmd_to_sdk(self._sdk, cmd))

    def close(self) -> None:
        for ch in (self._sub, self._pub):
            try:
                ch.Close()
            except Exception:  # noqa: BLE001, S110 (closing at exit: nothing left to protect)
                pass
