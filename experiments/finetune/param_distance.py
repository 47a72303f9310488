"""How far a finetuning run's planner has moved from the pretrained denoiser, checkpoint by
checkpoint: the L2 norm (over every denoiser parameter) of EMA - pretrained, raw - pretrained,
acting - pretrained (the EMA with the run's ``anchor`` share, what the planner acts with) and
acting - the previous listed checkpoint's acting.

With ``update_from acting`` and an anchor share a, each update starts from
a * pretrained + (1 - a) * EMA and the next acting planner mixes the same share in again, so
acting - pretrained follows x_k = (1 - a) (x_(k-1) + delta_k): it stays below (1 - a) / a times
one update's move however many updates run (1.5 at a = 0.4).

Usage: .venv/bin/python experiments/finetune/param_distance.py RUN_DIR[:CKPT_ROOT]:STEP ...
(CKPT_ROOT: a directory whose ``ckpt/<STEP>`` holds the checkpoint, when it is not the run's own)
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

with contextlib.redirect_stdout(io.StringIO()):  # mjx's "Failed to import warp", as dmpc's CLI
    import mujoco.mjx  # noqa: F401

import jax
import optax

from dmpc_jax.checkpointing import checkpoint_manager, restore_state
from dmpc_jax.config import load_json
from dmpc_jax.finetune.config import FinetuneConfig
from dmpc_jax.finetune.update import anchored, initial_state
from dmpc_jax.planner.load import load_planner


def distance(a, b) -> float:
    """L2 norm of ``a - b`` over every leaf."""
    return float(optax.global_norm(jax.tree.map(lambda x, y: x - y, a, b)))


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    prev, cache = None, {}
    for arg in argv:
        parts = arg.split(":")
        run, root, step = (
            Path(parts[0]),
            Path(parts[1] if len(parts) == 3 else parts[0]),
            int(parts[-1]),
        )
        cfg = load_json(FinetuneConfig, run / "config.json")
        if cfg.pretrained not in cache:
            cache[cfg.pretrained] = load_planner(cfg.pretrained).params
        params = cache[cfg.pretrained]
        state = restore_state(checkpoint_manager(root), initial_state(cfg, params), step)
        pre, raw = params["denoiser"], state["params"]["denoiser"]
        ema = state.get("ema_denoiser", raw)
        act = anchored(pre, ema, cfg.anchor) if cfg.anchor else ema
        moved = f"{distance(act, prev):.3f}" if prev is not None else "-"
        print(f"{run.name}:{step}  |pre| {optax.global_norm(pre):.2f}  "
              f"ema-pre {distance(ema, pre):.3f}  raw-pre {distance(raw, pre):.3f}  "
              f"acting-pre {distance(act, pre):.3f}  "
              f"acting-previous {moved}", flush=True)  # fmt: skip
        prev = act


if __name__ == "__main__":
    main(sys.argv[1:])
