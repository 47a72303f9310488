"""Checkpoints and metric logs shared by the training stages (orbax, JSONL)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp


def checkpoint_manager(
    run_dir: Path, max_to_keep: int = 2, subdir: str = "ckpt"
) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        Path(run_dir).absolute() / subdir,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
    )


def restore_state(mngr: ocp.CheckpointManager, template, step: int | None = None):
    """The training state saved at ``step`` (newest if None), shaped like ``template``."""
    step = mngr.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {mngr.directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    try:
        return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # orbax raises several types for truncated/corrupt files
        raise RuntimeError(
            f"checkpoint {mngr.directory}/{step} could not be restored ({type(e).__name__}: {e}); "
            "it may be truncated or from another config"
        ) from e


def truncate_metrics(path: Path, upto: int, key: str = "epoch") -> None:
    """Drop log lines written after the checkpoint we resume from (``line[key] > upto``)."""
    if not path.exists():
        return
    keep = [
        line for line in path.read_text().splitlines() if line and json.loads(line)[key] <= upto
    ]
    path.write_text("".join(line + "\n" for line in keep))


def previous_wall_time(path: Path) -> float:
    if not path.exists() or not path.read_text().strip():
        return 0.0
    return float(json.loads(path.read_text().splitlines()[-1])["time/wall_s"])
