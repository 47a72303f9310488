"""Rows of experiments/finetune/pd_chain.md from the `dmpc eval` results under this folder.

Usage: .venv/bin/python experiments/finetune/pd_chain/table.py
"""

import json
from pathlib import Path

import numpy as np

from dmpc_jax.scenario.outcomes import paired

HERE = Path(__file__).parent


def row(d: Path) -> str:
    res = json.loads((d / "results.json").read_text())["controllers"]["task"]
    cells = []
    for rule in ("strict", "paper", "box"):
        s = res.get("success", {}).get(rule)
        cells.append(
            f"{100 * s['rate']:.1f}% [{100 * s['ci95'][0]:.1f}, {100 * s['ci95'][1]:.1f}] "
            f"({s['successes']}/{s['episodes']})"
            if s
            else "-"
        )
    falls = res.get("falls", {}).get("strict", {})
    return (
        f"| `{d.name}` | {' | '.join(cells)} | {res['mean_forward_vel']:.3f} | "
        f"{res['tracking_err_m_per_s']:.3f} | {falls.get('count', '-')} |"
    )


def strict_successes(d: Path) -> np.ndarray:
    """Per-episode strict success [B] from the fall events of a `dmpc eval` run."""
    res = json.loads((d / "results.json").read_text())["controllers"]["task"]
    ok = np.ones(res["episodes"], bool)
    for ev in res["falls"]["strict"].get("events", []):
        ok[ev["episode"]] = False
    return ok


if __name__ == "__main__":
    print(
        "| run | strict | paper | box | forward vel (m/s) | \\|v - v_cmd\\| (m/s) | strict falls |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for d in sorted(p for p in HERE.iterdir() if (p / "results.json").exists()):
        print(row(d))
    print()
    new = "cpu_pd_standardize_recovery"
    for ref in ("r2_s0", "cpu_standardize_recovery_6k"):
        for task in ("walk_0.5", "walk_1.0"):
            a, b = HERE / f"unitree_{ref}_{task}", HERE / f"unitree_{new}_{task}"
            if (a / "results.json").exists() and (b / "results.json").exists():
                c = paired(strict_successes(a), strict_successes(b))
                print(
                    f"{new} vs {ref}, {task}, strict: won {c['won']} lost {c['lost']} "
                    f"p={c['p_value']:.2g}"
                )
