"""The speed page: strict success and achieved forward speed of the planner and the demonstrator
against the commanded speed, from the v_<speed>/results.json that run.sh wrote.

    .venv/bin/python experiments/diagnosis/speed/plot.py
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    rows = []
    for d in sorted(HERE.glob("v_*"), key=lambda p: float(p.name[2:])):
        r = json.loads((d / "results.json").read_text())
        rows.append((float(d.name[2:]), r["controllers"]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    table = []
    for name, label in (
        ("task", "planner (DDIM-5, N = 1)"),
        ("demonstrator", "demonstrator (PPO)"),
    ):
        v = [s for s, _ in rows]
        succ = [c[name]["success"]["strict"] for _, c in rows]
        ax1.errorbar(v, [100 * s["rate"] for s in succ], fmt="o-", label=label, capsize=3,
                     yerr=[[100 * (s["rate"] - s["ci95"][0]) for s in succ],
                           [100 * (s["ci95"][1] - s["rate"]) for s in succ]])  # fmt: skip
        ax2.plot(v, [c[name]["mean_forward_vel"] for _, c in rows], "o-", label=label)
    ax2.plot([rows[0][0], rows[-1][0]], [rows[0][0], rows[-1][0]], "k:", lw=1, label="command")
    ax1.set(xlabel="commanded forward speed (m/s)", ylabel="strict success (%)", ylim=(0, 105))
    ax2.set(xlabel="commanded forward speed (m/s)", ylabel="achieved forward speed (m/s)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "speed.png", dpi=110)
    for v, c in rows:
        p, d = c["task"], c["demonstrator"]
        s, ci = p["success"]["strict"], p["success"]["strict"]["ci95"]
        med = p["falls"]["strict"]["median_time_s"]
        med = float("nan") if med is None else med
        table.append(
            f"| {v:g} | {100 * s['rate']:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] | "
            f"{p['mean_forward_vel']:.2f} | {med:.1f} | "
            f"{100 * d['success']['strict']['rate']:.1f}% | {d['mean_forward_vel']:.2f} |"
        )
    (HERE / "table.md").write_text(
        "| command (m/s) | planner strict success | planner forward speed (m/s) | planner median "
        "fall (s) | demonstrator strict success | demonstrator forward speed (m/s) |\n"
        "|---:|---:|---:|---:|---:|---:|\n" + "\n".join(table) + "\n"
    )
    print((HERE / "table.md").read_text())


if __name__ == "__main__":
    main()
