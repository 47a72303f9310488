"""The attribution page of "One robot, two simulators" from the runs of run.sh (each
``<variant>_<task>/results.json``, written by ``dmpc eval``): forward speed, tracking error and
success of the planner and the demonstrator per variant, and the variants ranked by how far each
moves the planner's forward speed from ours.

Usage: .venv/bin/python experiments/sim2sim/attribution/make_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = ("walk_0.5", "walk_1.0")
VARIANTS = {
    "ours": "our MJX env as trained and evaluated (damping 2.0 x U(0.8, 1.2), friction U(0.4, "
    "1.25), 1 solver iteration, pyramidal cone, impratio 1, 4 ms step, foot condim 3)",
    "damping": "joint damping 0.1 N m s/rad (Unitree's) instead of 2.0",
    "friction": "floor and foot friction 0.4 (Unitree's) instead of U(0.4, 1.25)",
    "solver": "100 solver iterations, elliptic cone, impratio 100 (Unitree's)",
    "timestep": "5 ms physics step (Unitree's) instead of 4 ms",
    "condim": "foot contact dimensionality 6 (both sim2sim models) instead of 3",
    "unitree": "all of the above at once",
}
CONTROLLERS = (("task", "planner"), ("demonstrator", "demonstrator"))


def load(variant: str, task: str) -> dict | None:
    path = HERE / f"{variant}_{task}" / "results.json"
    return json.loads(path.read_text()) if path.exists() else None


def pct(ctrl: dict, rule: str) -> str:
    s = ctrl["success"].get(rule) if isinstance(ctrl.get("success"), dict) else None
    if s is None:
        return "-"
    return f"{100 * s['rate']:.1f}%"


def main() -> None:
    rows, speeds, stricts, commands = [], {}, {}, {}
    for variant in VARIANTS:
        for task in TASKS:
            r = load(variant, task)
            if r is None:
                continue
            commands.setdefault("set", r["config"].get("env_set", []))
            for key, name in CONTROLLERS:
                c = r["controllers"][key]
                speeds[(variant, task, name)] = c["mean_forward_vel"]
                stricts[(variant, task, name)] = c["success"]["strict"]["rate"]
                rows.append(
                    f"| {variant} | {task} | {name} | {c['mean_forward_vel']:.3f} | "
                    f"{c['tracking_err_m_per_s']:.3f} | {pct(c, 'strict')} | {pct(c, 'paper')} | "
                    f"{pct(c, 'box')} | {c['episodes']} |"
                )
    lines = [
        "# Attribution: which model difference moves the walk",
        "",
        'Deliverable 3 of "One robot, two simulators". Each difference between our Go2 model '
        "and Unitree's `go2.xml` (parameter table: [`../models/`](../models/README.md)) is "
        "swapped into our MJX env one at a time (`dmpc eval --cfg.env-set ...`), then all at "
        "once. The planner (`checkpoints/rwr/cpu`, DDPM-10, N = 1) and the PPO demonstrator see "
        "the same keys (seed 0) in every variant: 20 s episodes with pushes, domain randomisation "
        "and observation noise/latency as in every task page. Forward speed and tracking error "
        "are the strict rollout's, over the steps before a fall.",
        "",
        "Produced by:",
        "",
        "```",
        "bash experiments/sim2sim/attribution/run.sh 64",
        ".venv/bin/python experiments/sim2sim/attribution/make_table.py",
        "```",
        "",
        "| variant | what changes |",
        "|---|---|",
        *[f"| {v} | {d} |" for v, d in VARIANTS.items()],
        "",
        "| variant | task | controller | forward vel (m/s) | \\|v - v_cmd\\| (m/s) | strict | "
        "paper | box | episodes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "## Ranked by the planner's forward speed",
        "",
        "Change of the mean forward speed against `ours` on the same keys, m/s (planner / "
        "demonstrator), largest planner change first.",
        "",
        "| variant | walk_0.5: planner | walk_0.5: demonstrator | walk_1.0: planner | "
        "walk_1.0: demonstrator |",
        "|---|---:|---:|---:|---:|",
    ]
    ranked = []
    for variant in VARIANTS:
        if variant == "ours":
            continue
        cells, effect = [], 0.0
        for task in TASKS:
            for name in ("planner", "demonstrator"):
                a, b = speeds.get((variant, task, name)), speeds.get(("ours", task, name))
                if a is None or b is None:
                    cells.append("-")
                    continue
                cells.append(f"{a - b:+.3f}")
                if name == "planner":
                    effect = max(effect, abs(a - b))
        if any(c != "-" for c in cells):
            ranked.append((effect, f"| {variant} | " + " | ".join(cells) + " |"))
    lines += [row for _, row in sorted(ranked, key=lambda x: -x[0])]
    lines += [
        "",
        "Change of strict success against `ours` on the same keys, points (planner / "
        "demonstrator):",
        "",
        "| variant | walk_0.5: planner | walk_0.5: demonstrator | walk_1.0: planner | "
        "walk_1.0: demonstrator |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        if variant == "ours":
            continue
        cells = []
        for task in TASKS:
            for name in ("planner", "demonstrator"):
                a, b = stricts.get((variant, task, name)), stricts.get(("ours", task, name))
                cells.append("-" if a is None or b is None else f"{100 * (a - b):+.1f}")
        if any(c != "-" for c in cells):
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    notes = HERE / "notes.md"  # the reading of the numbers, written by hand
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    (HERE / "README.md").write_text("\n".join(lines) + "\n")
    print((HERE / "README.md").read_text())


if __name__ == "__main__":
    main()
