"""Held-out first-action error of the pretraining runs against their steps, in units of the
dataset's action std (``eval/a0_mse`` is in diffusion space: divided by the mean action variance
for ``paper`` scaling, where actions are unscaled; already in std units for ``standardize``).

    .venv/bin/python experiments/levers/plot_curves.py
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

RUNS = {
    "shipped: paper scaling, data/cpu": ("checkpoints/diffusion/cpu", "data/cpu"),
    "paper scaling, data/cpu_recovery": (
        "checkpoints/diffusion/cpu_paper_recovery",
        "data/cpu_recovery",
    ),
    "standardize, data/cpu_recovery": (
        "checkpoints/diffusion/cpu_standardize_recovery",
        "data/cpu_recovery",
    ),
    "standardize + state conditioning, data/cpu_recovery": (
        "checkpoints/diffusion/cpu_statecond_recovery",
        "data/cpu_recovery",
    ),
}


def curve(run: str, data: str):
    rows = [json.loads(x) for x in Path(run, "metrics.jsonl").read_text().splitlines() if x]
    cfg = json.loads(Path(run, "config.json").read_text())
    if cfg["model"]["scaling"] == "standardize":
        var = 1.0
    else:
        std = np.asarray(json.loads(Path(data, "meta.json").read_text())["stats"]["action"]["std"])
        var = float(np.mean(std**2))
    step = np.array([r["step"] for r in rows])
    err = np.sqrt(np.array([r["eval/a0_mse"] for r in rows]) / var)
    lr = np.array([r.get("train/lr", cfg["learning_rate"]) for r in rows])
    return step, err, lr


def main():
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(3, 1))
    out = {}
    for label, (run, data) in RUNS.items():
        if not Path(run, "metrics.jsonl").exists() or not Path(data, "meta.json").exists():
            continue
        step, err, lr = curve(run, data)
        k = 10  # smooth over 10 log points (500 steps)
        sm = np.convolve(err, np.ones(k) / k, mode="valid")
        ax.plot(step[k - 1 :], sm, label=label)
        ax2.plot(step, lr, label=label)
        out[label] = {"steps": step.tolist()[k - 1 :: 10], "a0_err_std": sm[::10].round(4).tolist()}
    ax.set_ylabel("held-out first-action RMSE / action std\n(500-step moving mean)")
    ax.set_ylim(0.15, 0.7)
    ax.grid(alpha=0.3)
    ax.legend()
    ax2.set_ylabel("learning rate")
    ax2.set_ylim(0, 2.5e-4)
    ax2.ticklabel_format(axis="y", useOffset=False, style="sci", scilimits=(0, 0))
    ax2.set_xlabel("optimizer step (batch 256)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig("experiments/levers/a0_curves.png", dpi=110)
    Path("experiments/levers/a0_curves.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
