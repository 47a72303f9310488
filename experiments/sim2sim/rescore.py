"""Re-score a sim2sim page from its results.json and trajectories with the current fall
rule (``deploy.sim2sim.fall_flags``) and re-render it; no run is repeated. The page's config
(controller, command, walk time, simulator) is the one recorded in its results.json.

    .venv/bin/python experiments/sim2sim/rescore.py experiments/sim2sim/walk_1.0
"""

import json
import sys
from pathlib import Path

from dmpc_jax.deploy.report_sim2sim import render_sim2sim_result
from dmpc_jax.deploy.sim2sim import fall_flags, load_trajectory, run_success, walk_window


def main(out: Path) -> None:
    summary = json.loads((out / "results.json").read_text())
    walk_s = float(summary["config"]["walk_s"])
    for r in summary["runs"]:
        traj = load_trajectory(out, r["seed"])
        i0, end = walk_window(r["sim"], r["events"], r["walked_s"], len(traj))
        r["fell"], r["fell_after_stop"] = fall_flags(traj, i0, end, r["faulted"])
        r["success"] = run_success(r["fell"], r["runner"]["mode"], r["walked_s"], walk_s)
    summary["successes"] = sum(r["success"] for r in summary["runs"])
    summary["rescored_with"] = "experiments/sim2sim/rescore.py (deploy.sim2sim.fall_flags)"
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "README.md").write_text(render_sim2sim_result(summary))
    print(json.dumps({"successes": summary["successes"], "repeats": summary["repeats"]}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} <sim2sim page directory with results.json>")
    main(Path(sys.argv[1]))
