"""What one denoiser update did to the planner's own rollouts: the per-step means of the rollout
metrics (reward, each reward term, forward speed, tracking error, falls) over the iterations
before and after an update, mean +- standard error over iterations, for several runs side by
side. The rollout metrics are logged at every iteration (``rollout/*`` in ``metrics.jsonl``).

Usage: .venv/bin/python experiments/finetune/terms.py [--before A-B] [--after C-D]
          [--control RUN_DIR] RUN_DIR...
  e.g. ... --before 11-80 --after 81-120 checkpoints/rwr/cpu_paper_noise03_speed_s1
  (defaults: before 11-80, after 81-120: the first update of a cpu_paper run is at iteration 80)

``--control``: a run on the same seed whose rollouts are the arms' up to their update and that
never updates its denoiser (``--cfg.denoiser-every`` past the end): each arm's "after" is then
also given as its difference to the control, paired by iteration (both draw the same keys per
iteration), mean +- standard error: what the update did, net of how the rollouts drift anyway.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SHOWN = ("rollout/reward_per_step", "rollout/term/tracking_lin_vel", "rollout/term/tracking_ang_vel",
         "penalties", "rollout/forward_vel", "rollout/lin_vel_err", "rollout/falls_per_env_min")  # fmt: skip
PENALTY_SKIP = ("tracking_lin_vel", "tracking_ang_vel", "alive")


def span(text: str) -> tuple[int, int]:
    lo, hi = (int(x) for x in text.split("-"))
    if lo > hi:
        raise argparse.ArgumentTypeError(f"empty iteration range {text}")
    return lo, hi


def rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} not found: not a finetuning run")
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if "rollout/reward_per_step" in r:  # the last line of an iteration wins (a resumed run)
            out[r["iteration"]] = r
    return [out[k] for k in sorted(out)]


def value(r: dict, name: str) -> float:
    if name == "penalties":  # every term but the tracking rewards and the alive bonus
        terms = [v for k, v in r.items() if k.startswith("rollout/term/")
                 and k.split("/")[-1] not in PENALTY_SKIP]  # fmt: skip
        return float(sum(terms)) if terms else float("nan")
    return float(r.get(name, float("nan")))


def summary(rs: list[dict], lo: int, hi: int, name: str) -> str:
    x = np.array([value(r, name) for r in rs if lo <= r["iteration"] <= hi])
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return "-"
    se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    d = decimals(name)
    return f"{x.mean():.{d}f} ± {se:.{d}f} ({len(x)})"


def decimals(name: str) -> int:
    return 5 if name == "penalties" else 4


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=span, default=(11, 80))
    ap.add_argument("--after", type=span, default=(81, 120))
    ap.add_argument("--control", type=Path, default=None)
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args(argv)
    (b0, b1), (a0, a1) = args.before, args.after
    ctrl = {r["iteration"]: r for r in rows(args.control)} if args.control else None
    extra = f" minus {args.control.name}, paired |" if ctrl else ""
    print(f"| run | quantity | iterations {b0}-{b1} | iterations {a0}-{a1} |{extra}")
    print("|---|---|---|---|" + ("---|" if ctrl else ""))
    for run in args.runs:
        rs = rows(run)
        for name in SHOWN:
            label = name.removeprefix("rollout/")
            cells = [summary(rs, b0, b1, name), summary(rs, a0, a1, name)]
            if ctrl:
                cells.append(paired(rs, ctrl, a0, a1, name))
            print(f"| {run.name} | {label} | " + " | ".join(cells) + " |")


def paired(rs: list[dict], ctrl: dict, lo: int, hi: int, name: str) -> str:
    """The run minus the control, iteration by iteration over lo..hi: mean +- standard error."""
    d = np.array([value(r, name) - value(ctrl[r["iteration"]], name) for r in rs
                  if lo <= r["iteration"] <= hi and r["iteration"] in ctrl])  # fmt: skip
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return "-"
    dec = decimals(name)
    return f"{d.mean():+.{dec}f} ± {d.std(ddof=1) / np.sqrt(len(d)):.{dec}f} ({len(d)})"


if __name__ == "__main__":
    main()
