"""The planner in its own process: the 500 Hz loop and the DDS reader keep their process to
themselves (its cores and its GIL), and a planner that dies is seen, not waited on.

``ProcessPlannerWorker`` has ``PlannerWorker``'s interface (``submit``, ``result``, ``wait_idle``,
``close``, ``latencies_s``), so ``Runner`` and its deadline logic do not change: a plan that is
not back at the switch tick is a stalled planner (damping). Requests and plans travel over a
``multiprocessing`` pipe (49 + 24 x 12 floats, tens of microseconds); the child keeps only the
newest request, as the thread worker does. The child is *spawned* (a fork of a process that has
started JAX is unsafe), builds its plan function from a picklable factory, compiles it with one
warm-up call and only then reports ready; ``result`` of a request after the child has died returns
an exception with its exit code, which the runner turns into damping.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing as mp
import os
import time
from collections.abc import Callable

import numpy as np

PlanFn = Callable[[np.ndarray, int], np.ndarray]


class PlannerProcessError(RuntimeError):
    """The planner process failed to start, raised, or died."""


def exported_plan_fn(exported: str, seed: int, guidance: float | None, tasks=None) -> PlanFn:
    """The factory the deploy runner spawns: the exported artifact's ``plan_fn`` (picklable as a
    ``functools.partial`` of this module-level function; ``tasks``: numpy task inputs)."""
    from dmpc_jax.deploy.exported import ExportedPlanner

    return ExportedPlanner(exported).plan_fn(seed, guidance, tasks)


def planner_cpus(spec: str) -> tuple[int, ...] | None:
    """The CPUs the planner process is pinned to: ``all`` (none: the OS schedules it), ``last``
    (the last CPU this process may use, when it may use two or more) or a list ``2,3``.

    Pinning the plan to one core of two is faster, not slower: a cpu-size planner at N = 1 plans
    in 10.6 ms (DDIM-5) / 21.0 ms (DDPM-10) on one core against 13.9 / 27.7 ms on two (make
    bench; XLA:CPU's two threads spend the difference synchronising on layers this small), and
    the other core stays free for the 500 Hz loop."""
    allowed = sorted(os.sched_getaffinity(0))
    if spec == "all":
        return None
    if spec == "last":
        return (allowed[-1],) if len(allowed) >= 2 else None
    try:
        cpus = tuple(int(c) for c in spec.split(","))
    except ValueError:
        raise ValueError(f"planner CPUs {spec!r}: expected all, last or a list like 2,3") from None
    bad = set(cpus) - set(allowed)
    if bad:
        raise ValueError(f"planner CPUs {sorted(bad)} are not available to this process {allowed}")
    return cpus


def _serve(factory: Callable[[], PlanFn], conn, obs_dim: int, cpus=None) -> None:
    try:
        if cpus:  # before the factory imports JAX, which sizes its thread pools from it
            os.sched_setaffinity(0, cpus)
        plan_fn = factory()
        t0 = time.perf_counter()
        np.asarray(plan_fn(np.zeros(obs_dim, np.float32), 0))  # compile before "ready"
        gc.collect()  # then set JAX's heap aside: no later collection traverses it (a full one
        gc.freeze()  # took 20-30 ms, on top of a plan)
        conn.send(("ready", time.perf_counter() - t0))
    except Exception as e:  # noqa: BLE001 (reported to the parent, which refuses to start)
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    while True:
        try:
            req = conn.recv()
            while conn.poll(0):  # only the newest request is wanted
                req = conn.recv()
        except (EOFError, OSError):
            return
        if req is None:
            return
        seq, obs, task = req
        t0 = time.perf_counter()
        try:
            out = np.asarray(plan_fn(obs, seq, task), np.float64)
        except Exception as e:  # noqa: BLE001 (handed to the loop, which goes to damping)
            out = PlannerProcessError(f"planner raised {type(e).__name__}: {e}")
        conn.send((seq, out, time.perf_counter() - t0))


class ProcessPlannerWorker:
    """Runs the plan function built by ``factory()`` in a spawned process; never blocks the loop."""

    def __init__(
        self,
        factory: Callable[[], PlanFn],
        obs_dim: int = 49,
        start_timeout_s: float = 300.0,
        cpus: tuple[int, ...] | None = None,
    ):
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(factory, child, obs_dim, cpus), name="dmpc-planner", daemon=True
        )
        self._proc.start()
        child.close()
        self.latencies_s: list[float] = []
        self._results: dict[int, object] = {}
        self._outstanding = 0
        if not self._conn.poll(start_timeout_s):
            self.close()
            raise PlannerProcessError(f"planner process not ready within {start_timeout_s:.0f} s")
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(timeout=5)
            kind, value = "error", f"it exited during start-up (exit code {self._proc.exitcode})"
        if kind != "ready":
            self.close()
            raise PlannerProcessError(f"planner process failed to start: {value}")
        self.warmup_s = float(value)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def submit(self, seq: int, obs: np.ndarray, task: int = 0) -> None:
        try:
            self._conn.send((seq, np.asarray(obs, np.float32), task))
            self._outstanding = 1  # the child keeps only the newest request
        except (BrokenPipeError, OSError):
            pass  # a dead child: result() reports it

    def _drain(self) -> None:
        try:
            while self._conn.poll(0):
                seq, out, lat = self._conn.recv()
                self.latencies_s.append(lat)
                self._results = {seq: out}  # only the newest result is ever wanted
                self._outstanding = 0
        except (EOFError, OSError):
            pass

    def result(self, seq: int):
        """The plan [H, 12] of request ``seq``, an Exception, or None (not ready yet)."""
        self._drain()
        if seq in self._results:
            return self._results.pop(seq)
        if not self._proc.is_alive():
            return PlannerProcessError(
                f"planner process died (exit code {self._proc.exitcode}) before plan {seq}"
            )
        return None

    def plan_blocking(self, obs: np.ndarray, seq: int, timeout_s: float = 30.0) -> np.ndarray:
        """One plan through the process, waited for (start-up timing, not the loop)."""
        self.submit(seq, obs)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            res = self.result(seq)
            if isinstance(res, Exception):
                raise res
            if res is not None:
                return res
            self._conn.poll(0.001)
        raise PlannerProcessError(f"plan {seq} not back within {timeout_s:.0f} s")

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """For tests and shutdown: until the newest request is answered (or the child died)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._outstanding == 0 or not self._proc.is_alive():
                return True
            if self._conn.poll(0.005):
                self._drain()
        return self._outstanding == 0

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        self._conn.close()


def start_planner(
    planner, exported: str, seed: int, guidance, own_process: bool, cpus: str = "all", tasks=None
):  # fmt: skip
    """(a blocking ``plan(obs, seq)``, the ``Runner`` keyword that runs it) for the exported
    ``planner`` (an ``ExportedPlanner`` of directory ``exported``): in its own process (pinned to
    ``planner_cpus(cpus)``), compiled there before this returns, or in a thread of this one,
    compiled here."""
    if own_process:
        worker = ProcessPlannerWorker(
            functools.partial(exported_plan_fn, exported, seed, guidance, tasks),
            planner.meta["obs_dim"],
            cpus=planner_cpus(cpus),
        )  # fmt: skip
        return worker.plan_blocking, {"worker": worker}
    plan = planner.plan_fn(seed, guidance, tasks)
    plan(np.zeros(planner.meta["obs_dim"], np.float32), 0)  # compile before the loop
    return plan, {"plan_fn": plan}
