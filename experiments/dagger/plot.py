"""Learning curve of a `dmpc dagger` run: strict success on the harness (with Wilson 95%
intervals), the planner's falls in its own rollouts, and the denoiser's first-action loss.

    .venv/bin/python experiments/dagger/plot.py checkpoints/dagger/cpu experiments/dagger

writes <out>/learning_curve.png and <out>/curve.json (the plotted numbers).
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dmpc_jax.scenario.outcomes import wilson_interval  # noqa: E402


def main(run_dir: str, out: str) -> None:
    run_dir, out = Path(run_dir), Path(out)
    log = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    cfg = json.loads((run_dir / "config.json").read_text())
    n = cfg["eval_episodes"]
    ev = [m for m in log if "eval/success_rate" in m]
    curve = {
        "eval": [
            {
                "iteration": m["iteration"],
                "env_steps": m["env_steps"],
                "success": m["eval/success_rate"],
                "ci95": list(wilson_interval(round(m["eval/success_rate"] * n), n)),
                "tracking_err": m["eval/tracking_err"],
            }
            for m in ev
        ],  # fmt: skip
        "rollout": [
            {
                k: m[k]
                for k in (
                    "iteration",
                    "rollout/planner_falls_per_env_min",
                    "rollout/branch_falls_per_env_min",
                    "loss/a0_mse",
                    "buffer/pieces",
                    "time/wall_s",
                )
                if k in m
            }
            for m in log
            if "rollout/planner_falls_per_env_min" in m
        ],  # fmt: skip
        "episodes": n,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.json").write_text(json.dumps(curve, indent=1) + "\n")
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.6))
    it = [e["iteration"] for e in curve["eval"]]
    s = [100 * e["success"] for e in curve["eval"]]
    lo = [100 * (e["success"] - e["ci95"][0]) for e in curve["eval"]]
    hi = [100 * (e["ci95"][1] - e["success"]) for e in curve["eval"]]
    ax[0].errorbar(it, s, yerr=[lo, hi], fmt="o-", capsize=3)
    ax[0].set_ylim(0, 100)
    ax[0].set_title(f"walk_1.0 strict success, {n} episodes (95% CI)")
    ro = curve["rollout"]
    ax[1].plot([r["iteration"] for r in ro], [r["rollout/planner_falls_per_env_min"] for r in ro])
    ax[1].set_title("planner falls per env-minute (own rollouts)")
    ax[2].plot([r["iteration"] for r in ro if "loss/a0_mse" in r],
               [r["loss/a0_mse"] for r in ro if "loss/a0_mse" in r])  # fmt: skip
    ax[2].set_title("first-action loss (training batches)")
    for a in ax:
        a.set_xlabel("iteration")
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
