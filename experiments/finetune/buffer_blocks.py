"""What the planner's own rollouts offer the next update: a run's replay buffer (``buffer.npz``)
split into blocks of the iterations its pieces were collected in, and for each block the pieces'
mean score (mean per-step reward), the score's 98.5th percentile (the kept set is the top 1.5%
per group), the share that ends in a fall, and the share of the block in the kept set; then the
whole buffer by the tilt of each piece's first steps (how far the base leans from upright when
the piece starts: the states a recovery starts from), with the same columns; then, per block,
the share of pieces that end in a fall in each speed class of the commands (the run's
``speed_edges``; the fastest class is the nearest to the 1.0 m/s evaluation).

Usage: .venv/bin/python experiments/finetune/buffer_blocks.py RUN_DIR [--blocks 0 80 120 ...]
  e.g. ... checkpoints/rwr/cpu_paper_replan_actuator_anchor_s1 --blocks 0 80 120 160 200 240

The buffer holds the best pieces only once it is full (100 k in ``cpu_paper``); below that it
holds every piece of at least the minimum length, so the blocks are the rollouts themselves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dmpc_jax.envs.obs import OBS_SLICES
from dmpc_jax.finetune.rwr import ReplayBuffer
from dmpc_jax.finetune.selection import select_top

TILT_EDGES = (0.15, 0.2, 0.25, 0.3, 0.4)  # |gravity_xy| in the body frame: sin of the lean
START_STEPS = 5  # the steps of a piece's start whose largest tilt classes it


def start_tilt(buf: ReplayBuffer, steps: int = START_STEPS) -> np.ndarray:
    """[P] the largest lean (|gravity_xy| in the body frame) over each piece's first steps."""
    g = buf.obs[:, :steps, OBS_SLICES["gravity"]]
    return np.hypot(g[..., 0], g[..., 1]).max(1)


def line(name: str, m: np.ndarray, buf: ReplayBuffer, kept: np.ndarray) -> str:
    if not m.any():
        return f"| {name} | 0 | | | | |"
    return (
        f"| {name} | {m.sum()} | {buf.score[m].mean():.4f} | {np.quantile(buf.score[m], 0.985):.4f}"
        f" | {buf.fell[m].mean():.3f} | {kept[m].mean():.4f} |"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--blocks", type=int, nargs="+", default=[0, 80, 120, 160, 200, 240])
    args = ap.parse_args(argv)
    buf = ReplayBuffer.load(args.run / "buffer.npz")
    cfg = json.loads((args.run / "config.json").read_text())
    top = select_top(buf.score, buf.group, cfg["top_quantile"], len(buf) * buf.n_groups,
                     buf.group_sizes())  # fmt: skip
    kept = np.zeros(len(buf), bool)
    kept[top] = True
    print(f"{args.run}: {len(buf)} pieces, top {cfg['top_quantile']:.1%} per group: {kept.sum()}")
    blocks = [(f"{lo + 1}-{hi}", (buf.added > lo) & (buf.added <= hi))
              for lo, hi in zip(args.blocks[:-1], args.blocks[1:], strict=True)]  # fmt: skip
    head = "| {} | pieces | mean score | score p98.5 | ends in a fall | in the top set |"
    print(head.format("iterations"))
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in blocks:
        print(line(name, m, buf, kept))
    print()
    edges = buf.speed_edges
    if edges:
        names = [f"< {edges[0]:g}", *(f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:], strict=False)),
                 f"> {edges[-1]:g}"]  # fmt: skip
        print("| iterations | " + " | ".join(f"falls, {n} m/s" for n in names) + " |")
        print("|---|" + "---:|" * len(names))
        speed = buf.group % len(names)  # command_group's speed class
        for name, m in blocks:
            if m.any():
                cells = [f"{buf.fell[m & (speed == c)].mean():.3f}" for c in range(len(names))]
                print(f"| {name} | " + " | ".join(cells) + " |")
        print()
    print(head.format(f"lean over the first {START_STEPS} steps"))
    print("|---|---:|---:|---:|---:|---:|")
    tilt = start_tilt(buf)
    cls = np.digitize(tilt, TILT_EDGES)
    bounds = (0.0, *TILT_EDGES, np.inf)
    for i in range(len(TILT_EDGES) + 1):
        print(line(f"{bounds[i]:.2f}-{bounds[i + 1]:.2f}", cls == i, buf, kept))


if __name__ == "__main__":
    main()
