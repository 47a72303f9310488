"""``make sim2sim``: the deploy runner walks a Go2 simulated in native MuJoCo, over real DDS.

Two processes, as on the robot: ``sim_robot.serve`` simulates the Go2 and behaves like its
low-level firmware (rt/lowstate out at 500 Hz, rt/lowcmd in). ``run_sim2sim`` starts it, drives it
with ``deploy.runner.Runner`` over ``DdsTransport`` and the exported planner, and writes
experiments/sim2sim/ (results.json and the page, ``report_sim2sim``).
DDS domain and interface are configurable; loopback by default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dmpc_jax.deploy import report_sim2sim
from dmpc_jax.deploy.sim2sim_summary import (  # noqa: F401 (the run's summary, re-exported)
    fall_flags,
    gait_metrics,
    load_trajectory,
    run_success,
    save_trajectory,
    summarize,
    walk_window,
)
from dmpc_jax.deploy.sim_robot import SIM_FAULTS
from dmpc_jax.deploy.unitree_peer import check_checkout
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR, DEFAULT_PLANNER

SIMULATORS = ("ours", "unitree")


@dataclasses.dataclass(frozen=True)
class Sim2SimConfig:
    """The ``Sim2SimConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        exported: exported planner directory; (re)created from ``planner_run`` with
            ``num_candidates`` when absent or exported from another run or N.
        planner_run: the planner run exported when ``exported`` does not exist.
        num_candidates: N of that export.
        sampler: its sampling path (``ddpm``, ``ddim<S>``, ``cache<R>``: ``dmpc export --sampler``).
        command: velocity command while walking.
        walk_s: seconds of walking after the planner takes over.
        stand_s: stand-up interpolation.
        blend_s: walking time over which the executed action ramps from the standing pose into the
            plan's (``RunnerConfig.blend_s``; 0: the first plan row at once).
        domain: DDS domain id and network interface (``lo``: loopback).
        interface: DDS domain id and network interface (``lo``: loopback).
        physics_dt: MuJoCo step of the simulated robot, s.
        out_dir: where results.json and the page go.
        seed: planner key seed of the first run.
        repeats: runs, each with a fresh robot process and the next seed.
        budget_calls: timed plan calls before each run for the start-up budget check
            (``deploy/budget.py``): a plan p99 over D x 20 ms is refused with the numbers.
        auto_margin: instead of refusing, use the smallest D < E whose budget the p99 fits.
        budget_headroom: the measured p99 is multiplied by this before the comparison (the
            loop's own load is not in the measurement).
        planner_process: run the planner in its own process (``deploy/planner_process.py``), so the
            500 Hz loop and the state reader never wait on it; False: a thread of the runner's.
        planner_cpus: CPUs of the planner process: ``last`` (one core, the last; default), ``all``
            or a list ``2,3`` (``planner_process.planner_cpus``).
        task: the test-time task walked (a TaskSpec JSON file or a suite task name, as in
            ``dmpc eval``); empty: the learned reward alone at the nominal guidance. The velocity
            command stays ``command``.
        switch_to: a second task, planned from ``switch_at`` s of walking on (empty: none).
        switch_at: walking time of the switch, s.
        sim: the robot's simulator: ``ours`` (``sim_robot``: our Go2 model, native MuJoCo) or
            ``unitree`` (``unitree_peer``: Unitree's own model and Python bridge, from the
            ``unitree_mujoco`` checkout; its physics step is theirs, ``physics_dt`` is ours only).
        unitree_mujoco: path to a unitree_mujoco checkout (``sim = unitree``; its pages go to
            experiments/sim2sim/unitree unless ``out_dir`` is given).
        damping_s: damping sent at the end of each run, as ``dmpc deploy`` ends one.
        controller: ``planner`` (the exported planner) or ``demonstrator`` (the PPO policy,
            exported from ``demonstrator_run`` into ``demonstrator_exported`` when absent, called
            at every policy step by the same runner and safety layer; no task, no budget check).
        demonstrator_run: the demonstrator run exported for ``controller = demonstrator``.
        demonstrator_exported: its exported policy directory.
    """

    exported: str = "exported/sim2sim"
    planner_run: str = DEFAULT_PLANNER
    num_candidates: int = 1
    # = planner.sampler.REALTIME_VARIANT, not imported: this module is also the simulated
    # robot's process, which must not load JAX (a full garbage collection over JAX's heap took
    # ~50 ms there and stalled its 500 Hz LowState: a stale-state stop in every run)
    sampler: str = "ddim5"
    command: tuple[float, float, float] = (0.5, 0.0, 0.0)
    walk_s: float = 10.0
    stand_s: float = 2.0
    blend_s: float = 0.0
    domain: int = 0
    interface: str = "lo"
    physics_dt: float = 0.001
    out_dir: str = "experiments/sim2sim"
    seed: int = 0
    repeats: int = 3
    budget_calls: int = 20
    auto_margin: bool = False
    budget_headroom: float = 1.3
    planner_process: bool = True
    planner_cpus: str = "last"
    task: str = ""
    switch_to: str = ""
    switch_at: float = 10.0
    sim: str = "ours"
    unitree_mujoco: str = ""
    damping_s: float = 1.0
    controller: str = "planner"
    demonstrator_run: str = DEFAULT_DEMONSTRATOR
    demonstrator_exported: str = "exported/demonstrator"

    def __post_init__(self):
        if self.controller not in ("planner", "demonstrator"):
            raise ValueError(
                f"Sim2SimConfig.controller must be planner or demonstrator, got {self.controller!r}"
            )
        if self.sim not in SIMULATORS:
            raise ValueError(f"Sim2SimConfig.sim must be one of {SIMULATORS}, got {self.sim!r}")
        if self.sim == "unitree":
            check_checkout(self.unitree_mujoco)
            if self.out_dir == "experiments/sim2sim":  # the default: keep our own page
                object.__setattr__(self, "out_dir", "experiments/sim2sim/unitree")

    def robot_process(self, seconds: float, log: Path, fault: str) -> list[str]:
        """The command line of one run's simulated robot."""
        common = [str(seconds), str(log), str(self.domain), self.interface]
        if self.sim == "unitree":
            return [sys.executable, "-m", "dmpc_jax.deploy.unitree_peer", *common,
                    str(check_checkout(self.unitree_mujoco)), fault]  # fmt: skip
        return [sys.executable, "-m", "dmpc_jax.deploy.sim_robot", *common,
                str(self.physics_dt), fault]  # fmt: skip


def load_exported(cfg: Sim2SimConfig):
    """The exported planner of ``cfg``, (re-)exported first when absent or from another run, N
    or sampling path."""
    from dmpc_jax.deploy.exported import ExportedPlanner

    exp = Path(cfg.exported)
    meta = json.loads((exp / "meta.json").read_text()) if (exp / "meta.json").exists() else {}
    if (meta.get("source_checkpoint", "").split(":")[0] != cfg.planner_run
            or meta.get("num_candidates") != cfg.num_candidates
            or meta.get("sampler_variant", "ddpm") != cfg.sampler):  # fmt: skip
        print(f"exporting {cfg.planner_run} -> {exp}", flush=True)
        subprocess.run([sys.executable, "-m", "dmpc_jax.cli", "export", "--run-dir",
                        cfg.planner_run, "--out", str(exp), "--num-candidates",
                        str(cfg.num_candidates), "--sampler", cfg.sampler], check=True)  # fmt: skip
    return ExportedPlanner(exp)


def load_demonstrator(cfg: Sim2SimConfig):
    """The exported demonstrator policy of ``cfg``, exported first when absent or from another
    run."""
    from dmpc_jax.deploy.export_policy import ExportedPolicy

    exp = Path(cfg.demonstrator_exported)
    meta = json.loads((exp / "meta.json").read_text()) if (exp / "meta.json").exists() else {}
    if meta.get("source_checkpoint") != cfg.demonstrator_run:
        print(f"exporting {cfg.demonstrator_run} -> {exp}", flush=True)
        subprocess.run([sys.executable, "-m", "dmpc_jax.cli", "export-demonstrator", "--run-dir",
                        cfg.demonstrator_run, "--out", str(exp)], check=True)  # fmt: skip
    return ExportedPolicy(exp)


def run_sim2sim(cfg: Sim2SimConfig, specs=()) -> dict:
    """``repeats`` runs (planner keys seed, seed + 1, ...), each with a fresh simulated robot
    process; writes results.json (every run), trajectory_<seed>.json.gz and the page. ``specs``:
    the TaskSpecs of ``cfg.task`` and ``cfg.switch_to`` (None: the default task), resolved by
    the caller (``dmpc sim2sim``)."""
    from dmpc_jax.deploy.transport import DdsTransport
    from dmpc_jax.planner.task import NN_GUIDANCE

    if cfg.controller == "demonstrator":
        planner, tasks = load_demonstrator(cfg), None
    else:
        planner = load_exported(cfg)
        tasks = planner.task_list(specs, cfg.command, NN_GUIDANCE)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("trajectory*.json*"):
        old.unlink()
    transport = DdsTransport(cfg.domain, cfg.interface)
    runs = []
    try:
        for seed in range(cfg.seed, cfg.seed + cfg.repeats):
            result, traj = _run_once(cfg, seed, planner, transport, out, tasks=tasks)
            save_trajectory(out, seed, traj)
            runs.append(result)
            print(json.dumps({"seed": seed, "success": result["success"],
                              "walked_s": result["walked_s"], "fell": result["fell"]}),
                  flush=True)  # fmt: skip
    finally:
        transport.close()
    summary = {
        "config": dataclasses.asdict(cfg),
        "runs": runs,
        "successes": sum(r["success"] for r in runs),
        "repeats": len(runs),
        "artifact_bytes": planner.size_bytes,
        "artifact_load_s": planner.load_s,
        "source_checkpoint": planner.meta.get("source_checkpoint"),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    report_sim2sim.write_sim2sim_page(cfg, summary, out)
    return summary


def _run_once(
    cfg: Sim2SimConfig, seed: int, planner, transport, out: Path,
    fault: str | None = None, fault_at_s: float = 3.0, after_s: float = 3.0, tasks=None,
):  # fmt: skip
    """One run with a fresh simulated robot. ``fault`` (``SIM_FAULTS`` or ``planner_kill``) is
    injected ``fault_at_s`` after walking starts; the run goes on ``after_s`` more seconds (the
    robot in damping sits down) and the result carries ``fault`` with its timings."""
    from dmpc_jax.deploy.budget import check_jitter, fit_budget, tick_gaps_during
    from dmpc_jax.deploy.planner_process import start_planner
    from dmpc_jax.deploy.realtime import realtime
    from dmpc_jax.deploy.runner import Runner, RunnerConfig
    from dmpc_jax.planner.task import NN_GUIDANCE

    t = time.perf_counter()
    policy = cfg.controller == "demonstrator"
    plan, plan_kw = (None, {"policy": planner}) if policy else start_planner(
        planner, cfg.exported, seed, NN_GUIDANCE, cfg.planner_process, cfg.planner_cpus, tasks
    )  # fmt: skip
    warmup_s = (time.perf_counter() - t) + (planner.warmup_s if policy else 0.0)
    switch = cfg.switch_at if tasks is not None and len(tasks) > 1 else None
    rcfg = RunnerConfig.from_meta(planner.meta, command=tuple(cfg.command),
                                  stand_s=cfg.stand_s, blend_s=cfg.blend_s, live=True,
                                  switch_at_s=switch)  # fmt: skip
    sim_log = out / "sim_log.json"
    walk_s = cfg.walk_s if fault is None else fault_at_s + after_s
    total = cfg.stand_s + 1.0 + walk_s
    t_launch = time.monotonic()
    sim = subprocess.Popen(
        cfg.robot_process(total + 30, sim_log, fault if fault in SIM_FAULTS else "none"),
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    injected = None
    try:
        while True:  # a state from this robot process (not the previous run's)
            got = transport.latest_state()
            if got is not None and got[1] > t_launch:
                break
            if sim.poll() is not None or time.monotonic() - t_launch > 30:
                raise RuntimeError("the simulated robot published no rt/lowstate within 30 s")
            time.sleep(0.05)
        budget = None
        if policy:  # a policy acts within the tick: the loop's jitter alone is checked
            _, gaps = tick_gaps_during(lambda: time.sleep(1.0), rcfg.tick_hz)
            jitter = check_jitter(gaps, rcfg.safety.max_tick_gap_s)
        else:  # a plan must fit its budget too
            rcfg, budget, jitter = fit_budget(  # with the simulator running (its load included)
                plan, plan_kw, planner.meta["obs_dim"], rcfg, cfg.budget_calls,
                cfg.auto_margin, cfg.budget_headroom,
            )  # fmt: skip
        # the 500 Hz loop stays at real-time priority between run() slices and while finishing
        with realtime():
            runner = Runner(rcfg, transport, **plan_kw)
            timing = runner.run(cfg.stand_s + (0.0 if fault else 0.2))  # stand up, first plan
            t_walk = None
            deadline = time.monotonic() + walk_s + 1.0
            while time.monotonic() < deadline and (
                runner.mode in ("stand", "ready", "walk") or injected is not None
            ):
                now = time.monotonic()
                if runner.mode == "walk" and t_walk is None:  # its start, from the runner's log
                    t_walk = next(e["t"] for e in runner.events if e["event"].endswith("-> walk"))
                if fault and injected is None and t_walk is not None and now - t_walk >= fault_at_s:
                    injected = _inject(fault, sim, runner.worker)
                if t_walk is not None and now - t_walk >= walk_s:
                    break
                t2 = runner.run(0.02 if fault and injected is None else 0.1)  # inject on time
                timing = {k: timing[k] + t2[k] for k in timing}
            stats = runner.stats()
            runner.finish(cfg.damping_s)  # as dmpc deploy ends a run
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    sim_res = json.loads(sim_log.read_text())
    sim_log.unlink()
    traj = sim_res.pop("trajectory")
    result = summarize(cfg, stats, timing, sim_res, traj, runner.events, warmup_s, planner)
    result["seed"] = seed
    result["start_budget"] = None if budget is None else dataclasses.asdict(budget)
    result["start_jitter"] = dataclasses.asdict(jitter)
    result["controller"] = cfg.controller
    if fault is not None:
        result["fault"] = {"kind": fault, "injected_t": injected, "walk_start_t": t_walk}
    return result, traj


def _inject(fault: str, sim, worker) -> float:
    """Start ``fault`` now; the monotonic time it started (for planner_kill: the kill)."""
    if fault == "planner_kill":
        if not hasattr(worker, "pid"):
            raise ValueError("planner_kill needs the planner in its own process (planner_process)")
        os.kill(worker.pid, signal.SIGKILL)
        return time.monotonic()
    if fault not in SIM_FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose from {(*SIM_FAULTS, 'planner_kill')}")
    sim.send_signal(signal.SIGUSR1)
    return time.monotonic()  # the simulator logs its own start time (fault_t) too
