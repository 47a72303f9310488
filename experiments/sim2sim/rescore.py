"""Re-score a sim2sim page from its results.json and trajectories with the current fall
rule (``deploy.sim2sim.fall_flags``) and re-render it; no run is repeated. Give the flags of the
``dmpc sim2sim`` command that made the page (it renders the command line from them).

    .venv/bin/python experiments/sim2sim/rescore.py --cfg.out-dir experiments/sim2sim/walk_1.0 \\
        --cfg.command 1.0 0 0 --cfg.repeats 20 --cfg.walk-s 20 --cfg.auto-margin
"""

import json
from pathlib import Path

import tyro

from dmpc_jax.deploy import report_sim2sim
from dmpc_jax.deploy.sim2sim import (
    Sim2SimConfig,
    fall_flags,
    load_trajectory,
    run_success,
    walk_window,
)


def main(cfg: Sim2SimConfig) -> None:
    out = Path(cfg.out_dir)
    summary = json.loads((out / "results.json").read_text())
    for r in summary["runs"]:
        traj = load_trajectory(out, r["seed"])
        i0, end = walk_window(r["sim"], r["events"], r["walked_s"], len(traj))
        r["fell"], r["fell_after_stop"] = fall_flags(traj, i0, end, r["faulted"])
        r["success"] = run_success(r["fell"], r["runner"]["mode"], r["walked_s"], cfg.walk_s)
    summary["successes"] = sum(r["success"] for r in summary["runs"])
    summary["rescored_with"] = "experiments/sim2sim/rescore.py (deploy.sim2sim.fall_flags)"
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    report_sim2sim.write_sim2sim_page(cfg, summary, out)
    print(json.dumps({"successes": summary["successes"], "repeats": summary["repeats"]}))


if __name__ == "__main__":
    tyro.cli(main)
