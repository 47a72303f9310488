"""Does the compiled plan fit the robot's timeline on this machine? Checked before the loop starts.

On the asynchronous timeline (``runner.py``) a plan is requested when D rows of the E-row chunk
remain and must be ready at the switch, D policy steps later: its budget is D x policy_dt (80 ms
at D = 4, 50 Hz). A machine whose plan latency p99 exceeds that would stop the robot at the first
switch ("planner stalled"); the runner refuses it at start-up with the numbers instead, or, if the
user asked for it (``auto_margin``), uses the smallest D < E that fits. The latency is measured
before the loop starts (in sim2sim with the simulator already running), so it misses the loop's
own load: ``headroom`` multiplies the measured p99 before the comparison (1.3 by default in
sim2sim and deploy: on the 2-core development machine a plan with p99 69 ms measured this way
missed an 80 ms switch once the loop ran). The runner's own p99 is reported afterwards.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np


class PlanTooSlow(RuntimeError):
    """The plan's measured latency does not fit the configured (or any) replanning margin."""


@dataclasses.dataclass(frozen=True)
class PlanBudget:
    p50_ms: float
    p99_ms: float
    calls: int
    execute: int
    margin: int  # the D that will be used
    requested_margin: int
    policy_dt_s: float
    headroom: float = 1.0

    @property
    def budget_ms(self) -> float:
        return 1e3 * self.margin * self.policy_dt_s

    def summary(self) -> str:
        changed = (
            f" (D raised from {self.requested_margin})"
            if self.margin != self.requested_margin
            else ""
        )
        return (
            f"plan latency p50 {self.p50_ms:.1f} / p99 {self.p99_ms:.1f} ms over {self.calls} calls "
            f"(x {self.headroom:g} headroom: {self.headroom * self.p99_ms:.1f}); budget D = "
            f"{self.margin}{changed} x {1e3 * self.policy_dt_s:.0f} ms = {self.budget_ms:.0f} ms "
            f"(E = {self.execute})"
        )


def time_plan(
    plan_fn: Callable[[np.ndarray, int], np.ndarray],
    obs: np.ndarray,
    calls: int,
    clock: Callable[[], float] = time.perf_counter,
) -> np.ndarray:
    """Latencies (s) of ``calls`` plan calls on ``obs`` (after the caller's warm-up call)."""
    out = np.empty(calls)
    for i in range(calls):
        t0 = clock()
        np.asarray(plan_fn(obs, i + 1))
        out[i] = clock() - t0
    return out


def check_budget(
    latencies_s: np.ndarray,
    execute: int,
    margin: int,
    policy_dt_s: float,
    auto_margin: bool = False,
    headroom: float = 1.0,
) -> PlanBudget:
    """The budget for the measured latencies: D = ``margin`` if headroom x p99 fits, else (with
    ``auto_margin``) the smallest D < E that fits; raises PlanTooSlow with the numbers otherwise."""
    if headroom < 1.0:
        raise ValueError(f"headroom must be >= 1, got {headroom}")
    lat_ms = 1e3 * np.asarray(latencies_s, np.float64)
    p50, p99 = float(np.percentile(lat_ms, 50)), float(np.percentile(lat_ms, 99))
    need_ms = headroom * p99
    needed = max(1, math.ceil(need_ms / (1e3 * policy_dt_s) - 1e-9))  # policy steps it takes
    use = margin
    if needed > margin:
        if auto_margin and needed < execute:
            use = needed
        else:
            advice = (
                f"--cfg.auto-margin (it would use D = {needed}; the plan then starts from an "
                f"observation {needed} steps old)"
                if needed < execute
                else f"no D < E = {execute} fits on this machine"
            )
            raise PlanTooSlow(
                f"this machine plans too slowly for the robot's timeline: plan latency p99 "
                f"{p99:.1f} ms (p50 {p50:.1f}, {len(lat_ms)} calls) x {headroom:g} headroom = "
                f"{need_ms:.1f} ms > the budget D = {margin} x "
                f"{1e3 * policy_dt_s:.0f} ms = {1e3 * margin * policy_dt_s:.0f} ms (E = "
                f"{execute}); {advice}; or export a faster planner (fewer candidates "
                "--num-candidates, DDIM --method ddim)"
            )
    return PlanBudget(p50, p99, len(lat_ms), execute, use, margin, policy_dt_s, headroom)


def fit_budget(plan, plan_kw: dict, obs_dim: int, rcfg, calls: int, auto_margin: bool,
               headroom: float):  # fmt: skip
    """Times ``plan`` and checks it against ``rcfg``'s E/D while an idle 500 Hz loop measures its
    tick jitter (``tick_gaps_during``, ``check_jitter``): (``rcfg`` with the D to use, the
    PlanBudget, the LoopJitter). On a refusal the planner process in ``plan_kw`` (if any) is
    closed first."""
    try:
        lat, gaps = tick_gaps_during(
            lambda: time_plan(plan, np.zeros(obs_dim, np.float32), calls), rcfg.tick_hz
        )
        budget = check_budget(
            lat, rcfg.execute, rcfg.margin, rcfg.policy_every / rcfg.tick_hz, auto_margin,
            headroom,
        )  # fmt: skip
        jitter = check_jitter(gaps, rcfg.safety.max_tick_gap_s)
    except Exception:
        if "worker" in plan_kw:
            plan_kw["worker"].close()
        raise
    print(budget.summary() + "; " + jitter.summary(), flush=True)
    return dataclasses.replace(rcfg, margin=budget.margin), budget, jitter


class LoopTooSlow(RuntimeError):
    """The machine cannot hold the 500 Hz loop's pace with the planner and simulator running."""


@dataclasses.dataclass(frozen=True)
class LoopJitter:
    """Gaps between the ticks of a paced, idle 500 Hz loop at the runner's priority."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    ticks: int
    bound_ms: float

    def summary(self) -> str:
        return (
            f"loop tick gap p50 {self.p50_ms:.2f} / p99 {self.p99_ms:.2f} / max {self.max_ms:.1f} ms "
            f"over {self.ticks} ticks (bound {self.bound_ms:.0f} ms)"
        )


def tick_gaps_during(
    work: Callable[[], object], tick_hz: float, clock=time.monotonic, sleep=time.sleep
) -> tuple[object, np.ndarray]:
    """(``work()``'s result, the gaps (s) between the ticks of an idle loop paced at ``tick_hz``
    as the runner paces its own, at the runner's real-time priority, while ``work`` runs in this
    thread): the loop's jitter under the load the run will have (the planner timed, the
    simulator or the robot publishing)."""
    import threading

    from dmpc_jax.deploy.realtime import realtime

    stop, stamps = threading.Event(), []

    def loop():
        with realtime():
            t0, k, dt = clock(), 0, 1.0 / tick_hz
            while not stop.is_set():
                delay = t0 + k * dt - clock()
                if delay > 0:
                    sleep(delay)
                stamps.append(clock())
                k += 1

    thread = threading.Thread(target=loop, name="dmpc-jitter", daemon=True)
    thread.start()
    try:
        result = work()
    finally:
        stop.set()
        thread.join()
    return result, np.diff(np.asarray(stamps))


def check_jitter(gaps_s: np.ndarray, bound_s: float) -> LoopJitter:
    """The jitter of ``gaps_s``; raises LoopTooSlow with the numbers when a gap exceeded the
    runner's loop-overrun bound (``SafetyConfig.max_tick_gap_s``): a run here would end in
    damping on "loop overrun"."""
    g = 1e3 * np.asarray(gaps_s, np.float64)
    if g.size == 0:
        raise LoopTooSlow("the loop-jitter check measured no tick")
    out = LoopJitter(float(np.percentile(g, 50)), float(np.percentile(g, 99)), float(g.max()),
                     int(g.size) + 1, 1e3 * bound_s)  # fmt: skip
    if out.max_ms > out.bound_ms:
        raise LoopTooSlow(
            f"this machine cannot hold the 500 Hz loop's pace with the planner and the robot "
            f"running: {out.summary()}; a run would end in damping on 'loop overrun'. Free "
            "cores (stop other work), run as root for real-time priority, or pin the planner "
            "(--cfg.planner-cpus)"
        )
    return out
