"""Execution-mode and latency/noise ladders of the planner on the same keys (issue "The planner
walks", diagnosis parts b and c).

    .venv/bin/python experiments/diagnosis/ladders.py [--episodes 64] [--planner checkpoints/rwr/cpu]
        [--out experiments/diagnosis/ladders] [--only b1 c2 ...]

Each rung is one ``dmpc eval --cfg.task walk_1.0 --cfg.controllers task --cfg.rules strict`` with
the rung's settings and the same seed (same episode keys), written to ``<out>/<rung>/``; a rung
whose results.json exists is skipped, so a stopped run continues where it stopped. The page
``<out>/README.md`` and ``<out>/results.json`` gather the rungs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# (id, label, dmpc eval arguments)
RUNGS = [
    (
        "b1",
        "sync, replan every step (E = 1, row 0 only)",
        ["--cfg.mode", "sync", "--cfg.execute", "1"],
    ),
    ("b2", "sync, E = 11", ["--cfg.mode", "sync"]),
    ("b3", "async E = 11 / D = 4 (shipped default)", []),
    ("b4", "async E = 11 / D = 4, in-flight actions inpainted", ["--cfg.inpaint-committed"]),
    ("c1", "no latency (latency_s = [0, 0])", ["--cfg.env-set", "noise.latency_s=[0,0]"]),
    (
        "c2",
        "latency, last-action slot undelayed",
        ["--cfg.env-set", "noise.delay_last_action=false"],
    ),
    ("c3", "observation noise and latency off", ["--cfg.env-set", "noise.enabled=false"]),
    ("c4", "pushes off", ["--cfg.env-set", "push.enabled=false"]),
    ("c5", "domain randomisation off", ["--cfg.env-set", "randomization.enabled=false"]),
    (
        "c6",
        "calm: noise, latency, pushes and DR all off",
        [
            "--cfg.env-set",
            "noise.enabled=false",
            "push.enabled=false",
            "randomization.enabled=false",
        ],
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--planner", default="checkpoints/rwr/cpu")
    ap.add_argument("--out", default="experiments/diagnosis/ladders")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    out = Path(args.out)
    # the costliest rung (a plan every step) last, so the others land first
    order = sorted(RUNGS, key=lambda r: r[0] == "b1")
    dmpc = str(Path(sys.executable).parent / "dmpc")
    for rid, label, extra in order:
        if args.only and rid not in args.only:
            continue
        rdir = out / rid
        if (rdir / "results.json").exists():
            continue
        cmd = [
            dmpc, "eval", "--cfg.task", "walk_1.0", "--cfg.controllers", "task",
            "--cfg.rules", "strict", "--cfg.episodes", str(args.episodes),
            "--cfg.seed", str(args.seed), "--cfg.planner-run", args.planner,
            "--cfg.no-video", "--cfg.latency-calls", "2", "--cfg.out-dir", str(rdir), *extra,
        ]  # fmt: skip
        print(f"[{rid}] {label}: {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd, check=True)
    write_page(out, args)


def write_page(out: Path, args) -> None:
    rows, table = {}, []
    for rid, label, extra in RUNGS:
        f = out / rid / "results.json"
        if not f.exists():
            continue
        r = json.loads(f.read_text())
        c = r["controllers"]["task"]
        s = c["success"]["strict"]
        falls = c["falls"]["strict"]
        rows[rid] = {
            "label": label,
            "args": extra,
            "strict": s,
            "falls_by_cause": falls["by_cause"],
            "median_fall_s": falls.get("median_time_s"),
            "tracking_err_m_per_s": c["tracking_err_m_per_s"],
        }
        lo, hi = s["ci95"]
        causes = ", ".join(f"{k} {v}" for k, v in falls["by_cause"].items() if v)
        med = falls.get("median_time_s")
        table.append(
            f"| {rid} | {label} | {100 * s['rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] | "
            f"{falls['count']} ({causes or '-'}) | {'-' if med is None else f'{med:.1f}'} | "
            f"{c['tracking_err_m_per_s']:.3f} |"
        )
    (out / "results.json").write_text(
        json.dumps(
            {"planner": args.planner, "episodes": args.episodes, "seed": args.seed, "rungs": rows},
            indent=2,
        )
        + "\n"
    )
    cmd = "`.venv/bin/python experiments/diagnosis/ladders.py"
    cmd += f" --episodes {args.episodes} --planner {args.planner} --out {out}`"
    lines = [
        "# Execution-mode and latency/noise ladders (walk_1.0, strict rule)",
        "",
        f"Command: {cmd} (each rung: `dmpc eval --cfg.task walk_1.0 --cfg.controllers task "
        f"--cfg.rules strict --cfg.episodes {args.episodes} --cfg.seed {args.seed}` plus the "
        "rung's arguments, in `<rung>/`). Same episode keys on every rung; 20 s episodes; unless a "
        "rung says otherwise pushes, DR, observation noise and latency are on. Success with its "
        "Wilson 95% interval.",
        "",
        "| rung | setting | strict success [95% CI] | falls (by cause) | median fall, s | tracking err, m/s |",
        "|---|---|---:|---|---:|---:|",
        *table,
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
