"""The robot-side control loop: 500 Hz LowCmd, 50 Hz policy steps, the planner in its own thread or
its own process (``planner_process.py``).

Timeline (METHOD §5, asynchronous): the loop executes plan rows at 50 Hz; when D = 4 rows of the
E = 11 remain, it hands the current observation to the planner thread and keeps executing; at row E
it switches to the new plan at its row D. The loop never waits: a plan that is not there at the
switch is a stalled planner, and the robot goes to damping.

Modes: ``wait`` (no state yet: nothing is sent) -> ``stand`` (interpolate from the measured pose to
the default pose over ``stand_s``) -> ``ready`` (hold the pose until the first plan arrives) ->
``walk`` (the first ``blend_s`` of planned actions scaled up from 0, the default pose, to the
plan's). Any fault latches ``damping`` (kp = 0, kd > 0, tau = 0) from the tick it is detected on:
NaN/Inf or bad orientation in the state, a state older than ``stale_state_s`` or one whose tick
has not advanced for that long (a frozen, republished state), the loop's own overrun (more than
``max_tick_gap_s`` between two ticks), a missing, failed or out-of-limits plan, a non-finite
outgoing command (never sent), or any exception inside the tick (caught: none escapes the loop).
A failed send is different: the publisher itself is suspect, so the runner stops sending and says
so; the motors then keep their last command until the user intervenes (on the Go2 Unitree's
damping or sport-mode recovery from the remote). Every fault is logged (``logging``,
``Runner.events``). Dry run by default: commands are only sent with ``live=True``.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from dmpc_jax import milestones
from dmpc_jax.deploy.observation import ProprioState, build_robot_observation
from dmpc_jax.deploy.realtime import PLANNER_PRIORITY, raise_priority, realtime
from dmpc_jax.deploy.runner_config import RunnerConfig
from dmpc_jax.deploy.safety import (
    Limits,
    command_fault,
    state_fault,
)
from dmpc_jax.deploy.transport import LowCmd
from dmpc_jax.robot import go2

log = logging.getLogger("dmpc.deploy")
SDK_TO_MODEL = go2.sdk_to_model()
MODEL_TO_SDK = go2.model_to_sdk()


# (obs [49], seq, task) -> actions [H, 12]; task: index into the plan function's task list
PlanFn = Callable[[np.ndarray, int, int], np.ndarray]
# obs [49] -> action [12]: a per-step controller
PolicyFn = Callable[[np.ndarray], np.ndarray]


class PlannerWorker:
    """Runs ``plan_fn`` in a daemon thread on the newest request; ``result(seq)`` never blocks."""

    def __init__(self, plan_fn: PlanFn):
        self._plan_fn = plan_fn
        self._cv = threading.Condition()
        self._request: tuple[int, np.ndarray, int] | None = None
        self._results: dict[int, object] = {}
        self._busy = False
        self._stop = False
        self.latencies_s: list[float] = []
        self._thread = threading.Thread(target=self._loop, name="dmpc-planner", daemon=True)
        self._thread.start()

    def submit(self, seq: int, obs: np.ndarray, task: int = 0) -> None:
        with self._cv:
            self._request = (seq, obs, task)
            self._cv.notify_all()

    def result(self, seq: int):
        """The plan [H, 12] of request ``seq``, an Exception it raised, or None (not ready)."""
        with self._cv:
            return self._results.pop(seq, None)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """For tests and shutdown: block until no request is pending or running."""
        end = time.monotonic() + timeout
        with self._cv:
            while (self._busy or self._request is not None) and time.monotonic() < end:
                self._cv.wait(0.01)
            return not (self._busy or self._request is not None)

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()

    def _loop(self) -> None:
        raise_priority(PLANNER_PRIORITY)  # this thread only: below the loop, above other work
        while True:
            with self._cv:
                while self._request is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                seq, obs, task = self._request
                self._request, self._busy = None, True
            t0 = time.perf_counter()
            try:
                out = np.asarray(self._plan_fn(obs, seq, task), np.float64)
            except Exception as e:  # noqa: BLE001 (handed to the loop, which goes to damping)
                out = e
            with self._cv:
                self.latencies_s.append(time.perf_counter() - t0)
                self._results = {seq: out}  # only the newest result is ever wanted
                self._busy = False
                self._cv.notify_all()


class Runner:
    """One ``tick(now)`` per LowCmd period; ``run(seconds)`` calls it at ``tick_hz``."""

    def __init__(
        self, cfg: RunnerConfig, transport, plan_fn: PlanFn | None = None, worker=None,
        policy: PolicyFn | None = None,
    ):  # fmt: skip
        """``plan_fn`` runs in a thread of this process (``PlannerWorker``); or pass ``worker``
        with the same interface, e.g. ``planner_process.ProcessPlannerWorker`` (its own
        process: what sim2sim and deploy use); or ``policy``, a per-step controller (the PPO
        demonstrator, ``export_policy.ExportedPolicy``) called in the loop at every policy step:
        it walks as soon as the robot stands, with the same safety layer."""
        if sum(x is not None for x in (plan_fn, worker, policy)) != 1:
            raise ValueError("Runner takes exactly one of plan_fn, worker and policy")
        self.cfg = cfg
        self.transport = transport
        self.policy = policy
        self.policy_latencies_s: list[float] = []
        self.priority: str | None = None  # the loop's scheduling in the last run()
        self.worker = None if policy is not None else (
            worker if worker is not None else PlannerWorker(plan_fn))  # fmt: skip
        self.limits = Limits(cfg.safety)
        self.q_default = np.asarray(cfg.q_default, np.float64)
        self.mode = "wait"
        self.events: list[dict] = []
        self.ticks = 0
        self.sent = 0
        self.send_times: deque[float] = deque(maxlen=200_000)
        self.policy_steps = 0
        self._t_mode = 0.0
        self._q_start = self.q_default.copy()
        self._q_target = self.q_default.copy()
        self._last_action = np.zeros(12)
        self._chunk: np.ndarray | None = None
        self._index = 0
        self._seq = 0
        self._walk_tick0 = 0
        self._damping = LowCmd.damping(cfg.safety.damping_kd)
        self._last_tick_t: float | None = None
        self._state_tick: int | None = None
        self._state_tick_t = 0.0
        self.send_failed = False
        # set the heap (JAX's included) aside: a full collection over it took 20-30 ms, and none
        gc.freeze()  # in the 500 Hz loop traverses it again (no collect: the state stream is live)

    # ---------------------------------------------------------------- the loop body

    def tick(self, now: float) -> LowCmd | None:
        """Compute (and, live, send) this tick's command; never raises."""
        self.ticks += 1
        try:
            cmd = self._tick(now)
            bad = None if cmd is None else command_fault(cmd)
            if bad:
                cmd = self._fault(now, bad)
        except Exception as e:  # noqa: BLE001 (the loop must not die: damping instead)
            cmd = self._fault(now, f"exception in tick: {type(e).__name__}: {e}")
        if cmd is not None and not self.send_failed:
            self.sent += 1
            self.send_times.append(now)
            if self.cfg.live:
                try:
                    self.transport.send(cmd)
                except Exception as e:  # noqa: BLE001
                    # damping over the same publisher would fail too: stop sending, say so
                    self.send_failed = True
                    self._fault(now, f"send failed: {type(e).__name__}: {e}; sending stopped")
                    log.error(
                        "LowCmd send failed: no further commands are sent; the motors keep their "
                        "last command: put the robot in damping from the remote"
                    )
        return cmd

    def _tick(self, now: float) -> LowCmd | None:
        sc = self.cfg.safety
        gap, self._last_tick_t = (
            None if self._last_tick_t is None else now - self._last_tick_t
        ), now  # fmt: skip
        if gap is not None and gap > sc.max_tick_gap_s and self.mode not in ("wait", "damping"):
            return self._fault(
                now, f"loop overrun: {1e3 * gap:.1f} ms between ticks (bound "
                f"{1e3 * sc.max_tick_gap_s:.0f} ms)",
            )  # fmt: skip
        got = self.transport.latest_state()
        if got is None:
            return None if self.mode == "wait" else self._fault(now, "no robot state")
        st, t_recv = got
        if now - t_recv > sc.stale_state_s:
            return self._fault(now, f"stale state ({1e3 * (now - t_recv):.0f} ms old)")
        if st.tick != self._state_tick:
            self._state_tick, self._state_tick_t = st.tick, now
        elif sc.check_tick and now - self._state_tick_t > sc.stale_state_s:
            return self._fault(
                now, f"frozen state: LowState tick {st.tick} unchanged for "
                f"{1e3 * (now - self._state_tick_t):.0f} ms (a simulator that never advances it: "
                "--cfg.safety.check-tick false)",
            )  # fmt: skip
        q, dq = np.asarray(st.q)[SDK_TO_MODEL], np.asarray(st.dq)[SDK_TO_MODEL]
        bad = state_fault(self.cfg.safety, st.quat_wxyz, st.gyro, q, dq)
        if bad:
            return self._fault(now, bad)
        if self.mode == "damping":
            return self._damping
        if self.mode == "wait":
            self._q_start = q.copy()
            self._set_mode("stand", now)  # sets _t_mode
        if self.mode == "stand":
            a = min((now - self._t_mode) / self.cfg.stand_s, 1.0)
            self._q_target = (1 - a) * self._q_start + a * self.q_default
            if a >= 1.0 and self.policy is not None:  # a policy needs no first plan
                self._walk_tick0 = self.ticks
                self._set_mode("walk", now)
            elif a >= 1.0:
                self.worker.submit(0, self._observation(st))
                self._set_mode("ready", now)
        elif self.mode == "ready":
            res = self.worker.result(0)
            if res is None:
                if now - self._t_mode > self.cfg.first_plan_timeout_s:
                    return self._fault(now, "planner did not deliver the first plan")
            else:
                fault = self._accept(res)
                if fault:
                    return self._fault(now, fault)
                self._index, self._walk_tick0 = 0, self.ticks
                self._set_mode("walk", now)
        if self.mode == "walk" and (self.ticks - self._walk_tick0) % self.cfg.policy_every == 0:
            fault = self._policy_step(st) if self.policy is None else self._act_step(st)
            if fault:
                return self._fault(now, fault)
        return self._command(q, dq)

    def task_now(self) -> int:
        """The task of the plan requested now: 1 from ``switch_at_s`` of walking on, else 0."""
        at = self.cfg.switch_at_s
        walked_s = self.policy_steps * self.cfg.policy_every / self.cfg.tick_hz
        return int(at is not None and walked_s >= at)

    def _policy_step(self, st) -> str | None:
        e, d = self.cfg.execute, self.cfg.margin
        if self._index == e - d:
            self._seq += 1
            self.worker.submit(self._seq, self._observation(st), self.task_now())
        if self._index == e:
            res = self.worker.result(self._seq)
            if res is None:
                return f"planner stalled: plan {self._seq} not ready at the switch"
            fault = self._accept(res)
            if fault:
                return fault
            self._index = d
        self._execute(self._chunk[self._index])
        self._index += 1
        return None

    def _act_step(self, st) -> str | None:
        """One step of a per-step policy: its action from this observation, checked as a plan."""
        t = time.perf_counter()
        res = self.policy(self._observation(st))
        self.policy_latencies_s.append(time.perf_counter() - t)
        a = np.asarray(res, np.float64)
        if a.shape != (12,):
            return f"policy action has shape {a.shape}, expected (12,)"
        fault = self.limits.plan_fault(self.q_default + self.cfg.action_scale * a[None])
        if fault:
            return fault
        self._execute(a)
        return None

    def _execute(self, row: np.ndarray) -> None:
        if self.policy_steps == 0:
            milestones.mark("first_step")  # start-up measurements; nothing unless asked
        action = row * self._blend()
        self._last_action = action
        self._q_target = self.q_default + self.cfg.action_scale * action
        self.policy_steps += 1

    def _blend(self) -> float:
        """The share of the planned action executed at this policy step (``blend_s``)."""
        n = round(self.cfg.blend_s * self.cfg.tick_hz / self.cfg.policy_every)
        return 1.0 if n <= 0 else min((self.policy_steps + 1) / n, 1.0)

    def _accept(self, res) -> str | None:
        if isinstance(res, Exception):
            return f"planner raised {type(res).__name__}: {res}"
        if res.ndim != 2 or res.shape[1] != 12 or res.shape[0] < self.cfg.execute:
            return f"plan has shape {res.shape}, expected [>= {self.cfg.execute}, 12]"
        fault = self.limits.plan_fault(self.q_default + self.cfg.action_scale * res)
        if fault:
            return fault
        self._chunk = res
        return None

    def _observation(self, st) -> np.ndarray:
        return build_robot_observation(
            ProprioState.from_lowstate_record(st), np.asarray(self.cfg.command),
            self._last_action, self.q_default,
        )  # fmt: skip

    def _command(self, q, dq) -> LowCmd:
        kp, kd = self.cfg.kp, self.cfg.kd
        target = self.limits.clamp_target(self._q_target, q, dq, kp, kd)
        z = np.zeros(12)
        return LowCmd(target[MODEL_TO_SDK], z, np.full(12, kp), np.full(12, kd), z.copy())

    def _set_mode(self, mode: str, now: float) -> None:
        self.events.append({"t": now, "event": f"mode {self.mode} -> {mode}"})
        log.info("mode %s -> %s", self.mode, mode)
        self.mode, self._t_mode = mode, now

    def _fault(self, now: float, what: str) -> LowCmd:
        if self.mode != "damping":
            self.events.append({"t": now, "event": f"FAULT in {self.mode}: {what}", "fault": what})
            log.warning("fault in mode %s: %s -> damping", self.mode, what)
            self.mode = "damping"
        return self._damping

    # ---------------------------------------------------------------- real time

    def run(self, seconds: float, stop: threading.Event | None = None) -> dict:
        """Tick at ``tick_hz`` for ``seconds`` (absolute deadlines; a late tick runs at once and
        counts as an overrun) at real-time priority (``realtime.realtime``; what it got:
        ``self.priority``). Returns timing statistics."""
        dt = 1.0 / self.cfg.tick_hz
        with realtime() as priority:  # the loop at real-time priority, the caller's restored after
            t0 = time.monotonic()
            k, overruns = 0, 0
            while time.monotonic() - t0 < seconds and not (stop is not None and stop.is_set()):
                deadline = t0 + k * dt
                delay = deadline - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -dt:
                    overruns += 1
                self.tick(time.monotonic())
                k += 1
        self.priority = priority
        return {"ticks": k, "overruns": overruns}

    def stats(self) -> dict:
        """LowCmd period and plan latency percentiles (ms), faults, mode and (over DDS) the LowStates
        dropped on a bad CRC."""
        out = {"mode": self.mode, "ticks": self.ticks, "sent": self.sent,
               "policy_steps": self.policy_steps, "priority": self.priority,
               "faults": [e["fault"] for e in self.events if "fault" in e]}  # fmt: skip
        if hasattr(self.transport, "crc_errors"):  # LowStates dropped on a bad CRC (DDS)
            out["lowstate_crc_errors"] = int(self.transport.crc_errors)
        times = np.asarray(self.send_times)
        lat = self.policy_latencies_s if self.worker is None else self.worker.latencies_s
        lat = np.asarray(lat[1:]) * 1e3  # the first includes warm-up
        for name, v in (("lowcmd_period_ms", np.diff(times) * 1e3), ("plan_latency_ms", lat)):
            if len(v):
                out[name] = {"p50": float(np.percentile(v, 50)), "max": float(v.max()),
                             "p99": float(np.percentile(v, 99))}  # fmt: skip
        if len(lat):
            out["plan_latency_ms"]["plans"] = int(len(lat))
        return out

    def finish(self, damping_s: float) -> None:
        """End a run as on the robot: damping (live) for ``damping_s``, logged, then close."""
        t = time.monotonic()
        self.events.append({"t": t, "event": f"finish -> damping for {damping_s:g} s"})
        while self.cfg.live and time.monotonic() < t + damping_s:
            self.transport.send(self._damping)
            time.sleep(1.0 / self.cfg.tick_hz)
        self.close()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        gc.unfreeze()  # outside the loop, the collector may have the heap back
