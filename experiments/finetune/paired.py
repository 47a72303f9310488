"""Paired counts of the finetuning arms' evaluation points against one reference point.

Each run's ``eval_episodes.jsonl`` holds, per evaluation point, every episode's outcome under
each rule on the run's fixed keys (the same keys in every arm), so two points compare episode by
episode: won (the arm succeeds where the reference failed), lost, and the sign test's p
(``dmpc_jax.scenario.outcomes.paired``).

Usage: .venv/bin/python experiments/finetune/paired.py REF_RUN_DIR[:ITERATION] RUN_DIR...
  e.g. ... checkpoints/rwr/cpu_paper_fixed1640_s1:0 checkpoints/rwr/cpu_paper_straight_s0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from dmpc_jax.scenario.outcomes import paired

RULES = ("strict", "paper", "box")


def points(run: str) -> list[dict]:
    path = Path(run) / "eval_episodes.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} not found: not a finetuning run with evaluations")
    return [json.loads(line) for line in path.read_text().splitlines()]


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    ref, _, it = argv[0].partition(":")
    it = int(it or 0)
    refs = [p for p in points(ref) if p["iteration"] == it]
    if not refs:
        raise SystemExit(f"{ref} has no evaluation at iteration {it}")
    r = refs[0]
    print(f"reference: {ref} at iteration {it}")
    for run in argv[1:]:
        for x in points(run):
            parts = []
            for rule in RULES:
                if rule in x and rule in r:
                    p = paired(np.array(r[rule]), np.array(x[rule]))
                    parts.append(f"{rule} {100 * np.mean(x[rule]):.1f}% won {p['won']} "
                                 f"lost {p['lost']} p={p['p_value']:.3f}")  # fmt: skip
            print(f"{run} it {x['iteration']}: " + " | ".join(parts))


if __name__ == "__main__":
    main(sys.argv[1:])
