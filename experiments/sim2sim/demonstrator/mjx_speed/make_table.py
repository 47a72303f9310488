"""The page of ``run.sh``: the demonstrator's forward speed in MJX with each of the evaluation
env's disturbances off (each ``<demonstrator>_<set>_<task>/results.json``, written by ``dmpc
eval``), beside its speed on the robot path of both simulators (the sim2sim rows'
``results.json``: the mean over runs of each run's forward speed, body frame).

Usage: .venv/bin/python experiments/sim2sim/demonstrator/mjx_speed/make_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIM2SIM = HERE.parent
SETS = {
    "default": "the evaluation env (DR, observation noise, 5-45 ms latency, pushes)",
    "no_latency": "latency 0 (`noise.latency_s=[0,0]`)",
    "no_obs_noise": "observation noise 0, latency kept",
    "no_noise": "noise and latency off (`noise.enabled=false`)",
    "no_dr": "domain randomisation off (nominal robot)",
    "calm": "nominal robot, no noise, no latency, no pushes",
}
TASKS = {"walk_0.5": 0.5, "walk_1.0": 1.0}


def mjx_row(demo: str, name: str) -> str | None:
    cells = []
    for task, v in TASKS.items():
        path = HERE / f"{demo}_{name}_{task}" / "results.json"
        if not path.exists():
            return None
        c = json.loads(path.read_text())["controllers"]["demonstrator"]
        vel = c["mean_forward_vel"]
        cells += [f"{vel:.3f} ({100 * (vel / v - 1):+.0f}%)",
                  f"{100 * c['success']['strict']['rate']:.0f}% of {c['episodes']}"]  # fmt: skip
    return f"| MJX, our model: {SETS[name]} | " + " | ".join(cells) + " |"


def robot_row(demo: str, sim: str) -> str | None:
    cells = []
    for v in TASKS.values():
        path = SIM2SIM / demo / f"{sim}_{v}" / "results.json"
        if not path.exists():
            return None
        res = json.loads(path.read_text())
        speeds = [r["mean_forward_speed_m_per_s"] for r in res["runs"]
                  if r.get("mean_forward_speed_m_per_s") is not None]  # fmt: skip
        vel = sum(speeds) / len(speeds)
        cells += [f"{vel:.3f} ({100 * (vel / v - 1):+.0f}%)",
                  f"{res['successes']} of {res['repeats']} runs walked 20 s"]  # fmt: skip
    label = {"ours": "our model (native MuJoCo)", "unitree": "Unitree's simulator"}[sim]
    return f"| robot path (`make sim2sim`), {label} | " + " | ".join(cells) + " |"


def main(demo: str = "cpu_pd") -> None:
    rows = [mjx_row(demo, n) for n in SETS] + [robot_row(demo, s) for s in ("ours", "unitree")]
    lines = [
        f"# Why the demonstrator walks fast on the robot path (`{demo}`)",
        "",
        'Part of "One robot, two simulators" (attribution of the demonstrator\'s tracking). On '
        "the robot path the demonstrator walks 12-17% faster than its command on both simulators "
        "([`../cpu_pd/`](../cpu_pd/ours_0.5/README.md)), where the MJX evaluation gives a few "
        "percent. The robot path differs from the evaluation env in what it leaves out: a nominal "
        "robot, no observation noise, a few ms of latency (the evaluation draws 5-45 ms, the "
        "training range), no pushes. Here each is left out in MJX on our model, one at a time; "
        "20 s episodes, seed 0 (the same keys in every MJX row), speed in the body frame over the "
        "episode (`mean_forward_vel`).",
        "",
        "Produced by:",
        "",
        "```",
        f"bash experiments/sim2sim/demonstrator/mjx_speed/run.sh 32 {demo}",
        ".venv/bin/python experiments/sim2sim/demonstrator/mjx_speed/make_table.py",
        "```",
        "",
        "The robot-path rows are the sim2sim pages' (`DEMO=cpu_pd bash "
        "experiments/sim2sim/run_rows.sh 20 <unitree checkout> demo_ours_0.5 demo_ours_1.0 "
        "demo_unitree_0.5 demo_unitree_1.0`), the mean over runs of each run's forward speed.",
        "",
        "| where | 0.5 m/s: forward vel (m/s) | strict / runs | 1.0 m/s: forward vel (m/s) | "
        "strict / runs |",
        "|---|---:|---:|---:|---:|",
        *[r for r in rows if r],
    ]
    notes = HERE / "notes.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    (HERE / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
