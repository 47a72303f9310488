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
    """Times ``plan`` and checks it against ``rcfg``'s E/D: (``rcfg`` with the D to use, the
    PlanBudget). On a refusal the planner process in ``plan_kw`` (if any) is closed first."""
    try:
        budget = check_budget(
            time_plan(plan, np.zeros(obs_dim, np.float32), calls), rcfg.execute, rcfg.margin,
            rcfg.policy_every / rcfg.tick_hz, auto_margin, headroom,
        )  # fmt: skip
    except Exception:
        if "worker" in plan_kw:
            plan_kw["worker"].close()
        raise
    print(budget.summary(), flush=True)
    return dataclasses.replace(rcfg, margin=budget.margin), budget
