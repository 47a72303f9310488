"""The page of the PD-delay runs (run.sh: each ``<demonstrator>_delay<d>_<task>/results.json``,
written by ``dmpc eval``): success, forward speed, energy and the peak joint speed of each
demonstrator on Unitree's parameters with the PD torque computed from the joint state ``d``
physics steps (5 ms each) old.

Usage: .venv/bin/python experiments/sim2sim/pd_delay/make_table.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = {"walk_0.5": 0.5, "walk_1.0": 1.0}


def main() -> None:
    rows = []
    runs = sorted(HERE.glob("*_delay*_walk_*/results.json"))
    for path in runs:
        demo, delay, task = re.fullmatch(
            r"(.+)_delay(\d+)_(walk_[\d.]+)", path.parent.name
        ).groups()
        c = json.loads(path.read_text())["controllers"]["demonstrator"]
        s = c["success"]["strict"]
        rows.append((demo, task, int(delay), (
            f"| {demo} | {task} | {delay} ({5 * int(delay)} ms) | {100 * s['rate']:.1f}% | "
            f"{c['mean_forward_vel']:.3f} | {c['energy_J_per_m']:.0f} | "
            f"{c['peak_joint_speed_median']:.1f} | {c['peak_joint_speed_max']:.1f} | "
            f"{100 * c['over_joint_speed_bound']:.1f}% | {c['episodes']} |"
        )))  # fmt: skip
    lines = [
        "# The PD torque from a delayed joint state: what Unitree's Python bridge does",
        "",
        'Part of "One robot, two simulators" (deliverable 3, attribution). On Unitree\'s own '
        "simulator the demonstrator ends 8 of 20 runs at 0.5 m/s and 16 of 20 at 1.0 m/s on the "
        "runner's 30 rad/s joint-speed bound ([`../demonstrator/cpu_damping/`]"
        "(../demonstrator/cpu_damping/unitree_0.5/README.md)), while on the same parameters in "
        "MJX it never passes 15 rad/s. The one difference the parameter table does not swap in: "
        "Unitree's bridge computes the PD torque kp (q* - q) - kd qdot from its joint sensors "
        "when a LowCmd arrives and holds it until the next, and MuJoCo's sensors after `mj_step` "
        "hold the state from that step's start, so the torque lags the joints by one 5 ms step "
        "or more; our model's position actuators evaluate the PD inside every step. "
        "`EnvConfig.pd_delay` makes the actuators torque motors driven by the PD of the joint "
        "state `d` steps old (d = 0: the position actuator, tested).",
        "",
        "Every row: every difference of Unitree's go2.xml at once (`experiments/sim2sim/"
        "unitree_set.sh`: damping 0.1, friction 0.4, 100 solver iterations, elliptic cone, "
        "impratio 100, 5 ms step, foot condim 6) plus `pd_delay=[d,d]`; 20 s episodes with pushes, "
        "randomisation and observation noise, seed 0 (the same keys in every row). Peak joint "
        "speed: each episode's largest |qdot| over its physics steps before a fall; 'past 30': "
        "the share of episodes the runner would have ended in damping.",
        "",
        "Produced by:",
        "",
        "```",
        "bash experiments/sim2sim/pd_delay/run.sh 32 <demonstrators>",
        ".venv/bin/python experiments/sim2sim/pd_delay/make_table.py",
        "```",
        "",
        "| demonstrator | task | PD delay (steps) | strict | forward vel (m/s) | energy (J/m) | "
        "peak \\|qdot\\| median (rad/s) | peak max (rad/s) | past 30 rad/s | episodes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[r[-1] for r in sorted(rows, key=lambda r: r[:3])],
    ]
    notes = HERE / "notes.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    (HERE / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
