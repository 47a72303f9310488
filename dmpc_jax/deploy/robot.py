"""``make deploy``: drive a real Go2 with the exported planner through unitree_sdk2py.

Dry run unless ``LIVE=1`` is in the environment: the loop reads rt/lowstate, runs the planner and
the safety layer and counts the commands it would send, but publishes nothing. Before a live run,
put the robot in low-level mode (sport mode off), hang it or lay it down, and keep the remote's
emergency stop at hand. Ctrl-C (or the end of ``seconds``) sends damping for ``damping_s`` and exits.
The Go2 runs CycloneDDS 0.10.x: install cyclonedds 0.10.2 from source (README, "Robot").
"""

from __future__ import annotations

import dataclasses
import json
import os
import time


@dataclasses.dataclass(frozen=True)
class DeployConfig:
    """The ``DeployConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        exported: exported planner directory (``make export``).
        interface: network interface wired to the robot (e.g. ``eth0``).
        domain: DDS domain id.
        command: velocity command (vx, vy, wz).
        seconds: run length (stand-up included).
        guidance: learned-reward guidance scale.
        damping_s: damping sent after the run or Ctrl-C.
        seed: planner key seed.
        budget_calls: timed plan calls for the start-up budget check (``deploy/budget.py``): a
            plan p99 over D x 20 ms is refused with the numbers before anything is sent.
        auto_margin: instead of refusing, use the smallest D < E whose budget the p99 fits.
        budget_headroom: the measured p99 is multiplied by this before the comparison (the
            loop's own load is not in the measurement).
        planner_process: the planner in its own process (``deploy/planner_process.py``); False: a
            thread of the runner's process.
        planner_cpus: CPUs of the planner process: ``last`` (one core, the last; default), ``all``
            or a list ``2,3`` (``planner_process.planner_cpus``).
        blend_s: walking time over which the executed action ramps from the standing pose into the
            plan's (``RunnerConfig.blend_s``).
        task: a test-time task (a TaskSpec file or a suite name; as ``Sim2SimConfig``).
        switch_to: a second task, planned from ``switch_at`` s of walking on.
        switch_at: walking time of the switch, s.
        controller: ``planner`` (``exported``) or ``demonstrator``: the exported PPO policy in
            ``demonstrator_exported`` (``dmpc export-demonstrator``), called at every policy step
            by the same runner and safety layer (no task, no plan budget; the loop's pace is
            still checked before the robot stands up).
        demonstrator_exported: the exported demonstrator policy directory.
    """

    exported: str = "exported/sim2sim"
    interface: str = "eth0"
    domain: int = 0
    command: tuple[float, float, float] = (0.3, 0.0, 0.0)
    seconds: float = 20.0
    guidance: float = 0.1
    damping_s: float = 1.0
    blend_s: float = 0.0
    seed: int = 0
    budget_calls: int = 30
    auto_margin: bool = False
    budget_headroom: float = 1.3
    planner_process: bool = True
    planner_cpus: str = "last"
    task: str = ""
    switch_to: str = ""
    switch_at: float = 10.0
    controller: str = "planner"
    demonstrator_exported: str = "exported/demonstrator"

    def __post_init__(self):
        if self.controller not in ("planner", "demonstrator"):
            raise ValueError(
                f"DeployConfig.controller must be planner or demonstrator, got {self.controller!r}"
            )


def run_robot(cfg: DeployConfig, specs=()) -> dict:
    from dmpc_jax.deploy.budget import fit_budget
    from dmpc_jax.deploy.exported import ExportedPlanner
    from dmpc_jax.deploy.planner_process import start_planner
    from dmpc_jax.deploy.runner import RunnerConfig

    live = os.environ.get("LIVE") == "1"
    if cfg.controller == "demonstrator":
        return _run(cfg, None, live)
    planner = ExportedPlanner(cfg.exported)
    tasks = planner.task_list(specs, cfg.command, cfg.guidance)
    plan, plan_kw = start_planner(
        planner, cfg.exported, cfg.seed, cfg.guidance, cfg.planner_process, cfg.planner_cpus, tasks
    )
    switch = cfg.switch_at if tasks is not None and len(tasks) > 1 else None
    rcfg = RunnerConfig.from_meta(
        planner.meta,
        command=tuple(cfg.command),
        live=live,
        switch_at_s=switch,
        blend_s=cfg.blend_s,
    )
    rcfg, _, _ = fit_budget(  # refuses a machine too slow for the timeline before any DDS
        plan, plan_kw, planner.meta["obs_dim"], rcfg, cfg.budget_calls, cfg.auto_margin,
        cfg.budget_headroom,
    )  # fmt: skip
    return _run(cfg, (rcfg, plan_kw), live)


def _run(cfg: DeployConfig, planned, live: bool) -> dict:
    """The loop on the robot: ``planned`` (runner config, planner worker) from ``run_robot``, or
    None for the exported demonstrator, whose loop pace is checked here."""
    from dmpc_jax.deploy.budget import check_jitter, tick_gaps_during
    from dmpc_jax.deploy.export_policy import ExportedPolicy
    from dmpc_jax.deploy.runner import Runner, RunnerConfig
    from dmpc_jax.deploy.transport import DdsTransport

    if planned is None:
        policy = ExportedPolicy(cfg.demonstrator_exported)
        rcfg = RunnerConfig.from_meta(policy.meta, command=tuple(cfg.command), live=live,
                                      blend_s=cfg.blend_s)  # fmt: skip
        _, gaps = tick_gaps_during(lambda: time.sleep(1.0), rcfg.tick_hz)
        print(check_jitter(gaps, rcfg.safety.max_tick_gap_s).summary(), flush=True)
        planned = (rcfg, {"policy": policy})
    rcfg, plan_kw = planned
    transport = DdsTransport(cfg.domain, cfg.interface)
    runner = Runner(rcfg, transport, **plan_kw)
    print(f"{'LIVE' if live else 'DRY RUN (set LIVE=1 to send)'}: {cfg.seconds:g} s on "
          f"{cfg.interface}, command {cfg.command}", flush=True)  # fmt: skip
    try:
        runner.run(cfg.seconds)
    except KeyboardInterrupt:
        print("interrupted: damping", flush=True)
    finally:
        runner.finish(cfg.damping_s)
        transport.close()
    stats = runner.stats()
    print(json.dumps(stats), flush=True)
    return stats
