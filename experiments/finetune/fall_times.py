"""When the evaluation's episodes fail: the fall times of evaluation points (``Evaluator``'s
``fall_s`` and ``box_exit_s`` in ``eval_episodes.jsonl``, recorded since session 25), and, from a
run's replay buffer, whether the start from standing ever reaches the kept set.

For each ``DIR[:ITERATION]`` (a run or an ``eval_params.py`` variant directory; the last point
when no iteration is given): success under each rule, strict falls per time bin, the falls
before and after 5 s (the earliest push), and the box failures (falls before the base leaves
the 3.3 m box) with their median time.

``--buffer RUN``: the buffer's start pieces (the first piece of an episode: its first step's
previous action is exactly zero, as after a reset), their share, mean score against the others,
and how many of them the top 1.5% per group keeps (the run's own groups); for a run with
start-up groups (``startup_steps``), the same for its start-up and later pieces, with their
falls per 1000 steps; for one with nose-down groups (``pitch_split``), for its nose-down and level
pieces.

``--dr TRACE``: the early falls (before 5 s) per tercile of the evaluation episodes' motor
strength, friction, added mass and forward centre of mass, read from a ``startup_trace.py``
``trace.npz`` of the same keys (``startup/``).

Usage: .venv/bin/python experiments/finetune/fall_times.py DIR[:IT]... [--buffer RUN_DIR]
           [--dr TRACE_NPZ]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from dmpc_jax.envs.obs import OBS_SLICES
from dmpc_jax.finetune.rwr import ReplayBuffer
from dmpc_jax.finetune.selection import select_top

BINS = (0, 2, 3, 4, 5, 8, 12, 16, 20)


def _times(x: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in x], np.float64)


def point(spec: str, dr: dict | None = None) -> None:
    path, _, it = spec.partition(":")
    rows = [json.loads(s) for s in (Path(path) / "eval_episodes.jsonl").read_text().splitlines()]
    rows = [r for r in rows if not it or r["iteration"] == int(it)]
    if not rows or "fall_s" not in rows[-1]:
        raise SystemExit(f"{spec}: no evaluation point with fall times")
    r = rows[-1]
    strict, paper, exits = (_times(x) for x in (r["fall_s"]["strict"], r["fall_s"]["paper"],
                                                r["box_exit_s"]))  # fmt: skip
    fell = strict[~np.isnan(strict)]
    hist, _ = np.histogram(fell, bins=BINS)
    box_fail = ~np.isnan(paper) & (np.isnan(exits) | (exits >= paper))
    rates = " / ".join(f"{100 * np.mean(r[k]):.1f}" for k in ("strict", "paper", "box"))
    bins = ", ".join(f"{a}-{b} s {n}" for a, b, n in zip(BINS, BINS[1:], hist, strict=False))
    print(f"{spec} (iteration {r['iteration']}): {rates}% strict / paper / box; strict falls "
          f"{len(fell)}: before 5 s {int((fell < 5).sum())}, after {int((fell >= 5).sum())} "
          f"({bins}); box failures {int(box_fail.sum())}, median fall "
          f"{np.median(paper[box_fail]):.2f} s; median box exit {np.nanmedian(exits):.2f} s")  # fmt: skip
    if dr is not None:  # the early falls per tercile of each randomised parameter
        early = np.nan_to_num(strict, nan=np.inf) < 5
        terciles = []
        for k in ("motor_strength", "friction", "added_mass", "com_x"):
            which = np.digitize(dr[k], np.quantile(dr[k], [1 / 3, 2 / 3]))
            terciles.append(
                f"{k} " + " / ".join(str(int(early[which == i].sum())) for i in range(3))
            )
        print("  early falls per tercile (low / mid / high): " + "; ".join(terciles))


def buffer(run: str) -> None:
    buf = ReplayBuffer.load(Path(run) / "buffer.npz")
    cfg = json.loads((Path(run) / "config.json").read_text())
    prev = OBS_SLICES["last_action"]
    start = np.abs(buf.obs[:, 0, prev]).max(-1) == 0.0
    top = select_top(buf.score, buf.group, cfg["top_quantile"], 10**9, buf.group_sizes())
    print(f"{run}: {len(buf)} pieces, {int(start.sum())} start pieces ({100 * start.mean():.1f}%), "
          f"mean score {buf.score[start].mean():.4f} against {buf.score[~start].mean():.4f}; "
          f"kept {len(top)}, of them start pieces {int(start[top].sum())}")  # fmt: skip
    up, down = buf.flags()
    sets = []
    if buf.startup_steps:  # the run's start-up groups: pieces starting in the first N steps
        sets += [(f"first {buf.startup_steps} steps", up), ("later", ~up)]
    if buf.pitch_split:  # its nose-down groups: pieces starting pitched past the split
        sets += [(f"nose-down > {buf.pitch_split} rad", down), ("level", ~down)]
    for name, m in sets:
        falls = 1000 * buf.fell[m].sum() / max(buf.length[m].sum(), 1)
        print(f"  {name}: {int(m.sum())} pieces, mean score {buf.score[m].mean():.4f}, "
              f"{falls:.2f} falls per 1000 steps, kept {int(m[top].sum())}")  # fmt: skip


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    if "--buffer" in argv:
        i = argv.index("--buffer")
        buffer(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    dr = None
    if "--dr" in argv:
        i = argv.index("--dr")
        with np.load(argv[i + 1]) as z:
            dr = {k[3:]: z[k] for k in z.files if k.startswith("dr/")}
        argv = argv[:i] + argv[i + 2 :]
    for spec in argv:
        point(spec, dr)


if __name__ == "__main__":
    main(sys.argv[1:])
