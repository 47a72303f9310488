"""``make sim2sim-faults``: faults injected over real DDS while the runner walks the simulated Go2.

Each fault gets a fresh simulated robot (``sim2sim.serve``) and the exported planner in its own
process; ``fault_at_s`` after walking starts it is injected: the simulator ``stop``s publishing
rt/lowstate, republishes a ``freeze``-frame (same tick), or publishes ``nan`` in a joint reading
(on SIGUSR1), or the runner's planner process is killed (``planner_kill``). Per fault the page
gives: what the runner detected and how long after the injection (``time.monotonic`` is one clock
for both processes), how long after that the simulator received the first damping command (one
tick is 2 ms), how many received LowCmds left the joint range or asked the motors for more than
their torque limit (checked in the simulator from what it received), and whether the robot sat
down (base below 0.2 m, upright at the end) or fell (roll or pitch beyond 1 rad at any time).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from dmpc_jax.deploy import report_sim2sim
from dmpc_jax.deploy.sim2sim import Sim2SimConfig, _run_once, load_exported
from dmpc_jax.deploy.sim_robot import SIM_FAULTS

FAULTS = (*SIM_FAULTS, "planner_kill")


@dataclasses.dataclass(frozen=True)
class FaultConfig:
    """The ``FaultConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        sim: the sim2sim settings (planner, command, DDS domain/interface, ...).
        faults: which faults to inject, one run each.
        fault_at_s: seconds of walking before the fault (0.1: inside the first chunk, before the
            first plan switch, so that a planner too slow for this machine cannot stall first).
        after_s: seconds the run goes on after it (the robot in damping sits down).
        out: the page (markdown); ``<stem>.json`` beside it.
    """

    sim: Sim2SimConfig = Sim2SimConfig()
    faults: tuple[str, ...] = FAULTS
    fault_at_s: float = 0.1
    after_s: float = 3.0
    out: str = "experiments/sim2sim/faults.md"

    def __post_init__(self):
        bad = set(self.faults) - set(FAULTS)
        if bad:
            raise ValueError(f"unknown fault(s) {sorted(bad)}; choose from {FAULTS}")


def fault_row(kind: str, result: dict, traj: list[dict]) -> dict:
    """The fault table's numbers of one run."""
    sim, events = result["sim"], result["events"]
    injected = sim.get("fault_t") or result["fault"]["injected_t"]
    after = [e for e in events if "fault" in e and injected is not None and e["t"] >= injected]
    first = after[0] if after else None
    damp_t = sim.get("first_damping_t")
    end = traj[-1] if traj else {}
    tilt_end = max(abs(end.get("roll", np.nan)), abs(end.get("pitch", np.nan)))
    # a fall is a flip (roll or pitch beyond 1 rad): a robot in damping folds down to its belly
    # (base ~0.08 m), which is the intended way to stop, not a fall
    fell = any(max(abs(p["roll"]), abs(p["pitch"])) > 1.0 for p in traj)
    return {
        "fault": kind,
        "detected": first["fault"] if first else None,
        "detection_ms": 1e3 * (first["t"] - injected) if first else None,
        "damping_received_ms": 1e3 * (damp_t - first["t"]) if first and damp_t else None,
        "faults_before_injection": [e["fault"] for e in events if "fault" in e and e not in after],
        "lowcmd_out_of_joint_range": sim["lowcmd_out_of_joint_range"],
        "lowcmd_over_torque": sim["lowcmd_over_torque"],
        "lowcmd_max_torque_ratio": sim["lowcmd_max_torque_ratio"],
        "fell": fell,
        "end_base_height_m": end.get("z"),
        "end_tilt_rad": tilt_end,
        "sat_down": bool(not fell and end.get("z", 1.0) < 0.2 and tilt_end < 0.5),
    }


def run_faults(cfg: FaultConfig = FaultConfig()) -> dict:
    from dmpc_jax.deploy.transport import DdsTransport

    planner = load_exported(cfg.sim)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    transport = DdsTransport(cfg.sim.domain, cfg.sim.interface)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:  # the simulator's per-run logs
            for kind in cfg.faults:
                result, traj = _run_once(
                    cfg.sim, cfg.sim.seed, planner, transport, Path(tmp), fault=kind,
                    fault_at_s=cfg.fault_at_s, after_s=cfg.after_s,
                )  # fmt: skip
                rows.append(fault_row(kind, result, traj))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        transport.close()
    summary = {"config": dataclasses.asdict(cfg), "rows": rows,
               "source_checkpoint": planner.meta.get("source_checkpoint")}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    report_sim2sim.write_faults_page(cfg, summary)
    return summary
