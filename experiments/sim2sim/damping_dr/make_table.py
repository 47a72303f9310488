"""The page of the widened joint-damping randomisation from the runs of run.sh (each
``<demonstrator>_<variant>_<task>/results.json``, written by ``dmpc eval``): forward speed,
its ratio to the command, tracking error and success of each demonstrator on our model and on
Unitree's parameters, and the speed gap between the two models.

Usage: .venv/bin/python experiments/sim2sim/damping_dr/make_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = {"walk_0.5": 0.5, "walk_1.0": 1.0}
DEMOS = {
    "cpu": "the shipped demonstrator (`checkpoints/demonstrator/cpu`: damping 2.0 x U(0.8, 1.2))",
    "cpu_damping": "trained on from it with the damping 2.0 x U(0.05, 1.2) = [0.1, 2.4] N m s/rad "
    "(`checkpoints/demonstrator/cpu_damping`, command in its `commands.txt`)",
    "cpu_pd": "trained on from cpu_damping with the PD torque from a 0-2 step old joint state "
    "and a joint-speed cost ([`../pd_delay/`](../pd_delay/README.md); "
    "`checkpoints/demonstrator/cpu_pd`, command in its `commands.txt`)",
}
VARIANTS = {
    "ours": "our model, damping 2.0 x U(0.8, 1.2) (as the shipped demonstrator trained)",
    "unitree": "every difference of Unitree's go2.xml at once (damping 0.1, friction 0.4, "
    "100 solver iterations, elliptic cone, impratio 100, 5 ms step, foot condim 6)",
}


def load(demo: str, variant: str, task: str) -> dict | None:
    path = HERE / f"{demo}_{variant}_{task}" / "results.json"
    return json.loads(path.read_text())["controllers"]["demonstrator"] if path.exists() else None


def main() -> None:
    rows, gaps = [], []
    for demo in DEMOS:
        for task, cmd in TASKS.items():
            speed = {}
            for variant in VARIANTS:
                c = load(demo, variant, task)
                if c is None:
                    continue
                v = c["mean_forward_vel"]
                speed[variant] = v
                s = c["success"]
                rows.append(
                    f"| {demo} | {variant} | {task} | {v:.3f} | {100 * (v / cmd - 1):+.1f}% | "
                    f"{c['tracking_err_m_per_s']:.3f} | "
                    + " | ".join(f"{100 * s[r]['rate']:.1f}%" for r in ("strict", "paper", "box"))
                    + f" | {c['episodes']} |"
                )
            if len(speed) == 2:
                gaps.append(f"| {demo} | {task} | {speed['unitree'] / speed['ours'] - 1:+.1%} |")
    lines = [
        "# The demonstrator with the joint damping randomised over both models",
        "",
        'Deliverable 4 of "One robot, two simulators" (decision: '
        "[`../attribution/`](../attribution/README.md), notes). Same keys (seed 0) for every row: "
        "20 s episodes with pushes, domain randomisation and observation noise/latency; forward "
        "speed and tracking error over the steps before a fall.",
        "",
        "Produced by:",
        "",
        "```",
        "bash experiments/sim2sim/damping_dr/run.sh 64",
        ".venv/bin/python experiments/sim2sim/damping_dr/make_table.py",
        "```",
        "",
        "| demonstrator | what it is |",
        "|---|---|",
        *[f"| {d} | {t} |" for d, t in DEMOS.items()],
        "",
        "| model | what it is |",
        "|---|---|",
        *[f"| {v} | {t} |" for v, t in VARIANTS.items()],
        "",
        "| demonstrator | model | task | forward vel (m/s) | vs command | \\|v - v_cmd\\| (m/s) | "
        "strict | paper | box | episodes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Speed on Unitree's parameters against ours (same demonstrator, same command):",
        "",
        "| demonstrator | task | unitree / ours - 1 |",
        "|---|---|---:|",
        *gaps,
    ]
    notes = HERE / "notes.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    (HERE / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
