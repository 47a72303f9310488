"""PPO training throughput of the demonstrator with the env batch on 1 device, split over 2 devices
of one process, and over 2 processes (``make bench-ppo``; ``dmpc_jax.distributed``).

Each layout trains the same preset for ``epochs`` epochs in fresh processes (``dmpc demonstrator``,
through ``dmpc launch`` for several processes) into a scratch directory; the first epoch holds the
compilation, so the table reports the median env steps/s of the later ones, with the loss of the
first epoch beside 1x1's (same algorithm and keys; float differences grow in chaotic rollouts).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dmpc_jax.bench import report
from dmpc_jax.bench.env_throughput import parse_layout


@dataclasses.dataclass(frozen=True)
class PPOBenchConfig:
    """The ``PPOBenchConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        preset: demonstrator preset to train.
        layouts: ``PxD`` layouts (P processes x D CPU devices each).
        epochs: epochs per layout (the first one compiles; at least 2).
        out: results page (markdown) and, beside it, ``<stem>.json``.
    """

    preset: str = "cpu"
    layouts: tuple[str, ...] = ("1x1", "1x2", "2x1")
    epochs: int = 3
    out: str = "experiments/demonstrator/throughput.md"

    def __post_init__(self):
        if self.epochs < 2:
            raise ValueError("PPOBenchConfig.epochs must be >= 2 (the first one compiles)")
        for layout in self.layouts:
            parse_layout(layout)


def layout_command(layout: str, preset: str, root: Path, epochs: int) -> tuple[list[str], dict]:
    """The command and environment that train ``preset`` for ``epochs`` epochs in ``layout``."""
    p, d = parse_layout(layout)
    stage = ["demonstrator", "--preset", preset, "--root", str(root), "--run", layout,
             "--max-epochs", str(epochs)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    if p == 1:
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={d}")
        return [sys.executable, "-m", "dmpc_jax.cli", *stage], env
    launch = ["launch", "--nproc", str(p), "--devices-per-process", str(d), "--"]
    return [sys.executable, "-m", "dmpc_jax.cli", *launch, *stage], env


def summarise(layout: str, metrics: list[dict], wall_s: float) -> dict:
    later = [m["time/steps_per_s"] for m in metrics[1:]]
    return {
        "layout": layout,
        "epochs": len(metrics),
        "steps_per_s": float(np.median(later)),
        "first_epoch_s": metrics[0]["time/epoch_s"],
        "wall_s": wall_s,
        "loss_epoch1": metrics[0]["train/total_loss"],
    }


def run(cfg: PPOBenchConfig = PPOBenchConfig()) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout in cfg.layouts:
            cmd, env = layout_command(layout, cfg.preset, Path(tmp), cfg.epochs)
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stderr=subprocess.DEVNULL)
            log = Path(tmp) / layout / "metrics.jsonl"
            metrics = [json.loads(x) for x in log.read_text().splitlines()]
            rows.append(summarise(layout, metrics, time.perf_counter() - t0))
            print(json.dumps(rows[-1]), flush=True)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "preset": cfg.preset,
        "rows": rows,
    }
    report.write_ppo_page(cfg, result)
    return result
