"""Checkpoints and metric logs shared by the training stages (orbax, JSONL)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp


def checkpoint_manager(
    run_dir: Path, max_to_keep: int = 2, subdir: str = "ckpt"
) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        Path(run_dir).absolute() / subdir,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
    )


# Orbax's default OCDBT data file is up to 2 GB; a finetuning state (parameters, EMA, Adam) is
# ~65 MB and is committed at milestones, so its data files are kept under the repository's 30 MiB
# per-file limit. Restoring reads either layout.
DATA_FILE_BYTES = 16 << 20


def save_state(mngr: ocp.CheckpointManager, step: int, state, force: bool = False) -> None:
    """Save the pytree ``state`` at ``step`` (data files of at most ``DATA_FILE_BYTES``) and wait
    for it; ``restore_state`` reads it back."""
    args = ocp.args.PyTreeSave(state, ocdbt_target_data_file_size=DATA_FILE_BYTES)
    mngr.save(step, args=args, force=force)
    mngr.wait_until_finished()


def _key(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def check_shapes(item_dir: Path, template) -> None:
    """Compare the array shapes recorded in a saved item with ``template`` before reading any
    data (a checkpoint of another model config fails here with the first differing array, and
    no array reads are left pending). Skipped when the metadata cannot be read or shares no
    array path with the template: the restore itself then reports the problem."""
    import logging

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # "metadata file does not exist" is expected for items
    try:
        meta = ocp.StandardCheckpointer().metadata(Path(item_dir).absolute())
    except Exception:  # noqa: BLE001 (a corrupt item: the restore raises the clear error)
        return
    finally:
        absl.setLevel(level)
    saved = {
        _key(p): tuple(leaf.shape)
        for p, leaf in jax.tree_util.tree_leaves_with_path(getattr(meta, "item_metadata", meta))
        if hasattr(leaf, "shape")
    }
    for p, leaf in jax.tree_util.tree_leaves_with_path(template):
        k = _key(p)
        if k in saved and saved[k] != tuple(np.shape(leaf)):
            raise RuntimeError(
                f"checkpoint {item_dir} is from another config: {k} has shape {saved[k]} there, "
                f"{tuple(np.shape(leaf))} expected"
            )


def restore_state(mngr: ocp.CheckpointManager, template, step: int | None = None):
    """The training state saved at ``step`` (newest if None), shaped like ``template``."""
    step = mngr.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {mngr.directory}")
    item = Path(mngr.directory) / str(step) / "default"
    if item.is_dir():
        check_shapes(item, template)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    # a manager of its own: ``mngr`` may save next (``save_state``, another handler), and a
    # manager keeps the first handler it used for an item
    reader = ocp.CheckpointManager(mngr.directory)
    try:
        return reader.restore(step, args=ocp.args.StandardRestore(abstract))
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
