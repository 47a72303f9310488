"""A training run's log: ``metrics.jsonl`` (one JSON line per log point) and TensorBoard events in
``tb/``, written by the main process only. Pretraining, PPO, RWR finetuning and DAgger share it."""

from __future__ import annotations

import json
from pathlib import Path

from dmpc_jax.checkpointing import previous_wall_time, truncate_metrics


class RunLogger:
    """Opens ``run_dir``'s log for appending. On a resume the lines written after the checkpoint
    the run continues from (``row[key] > start``) are dropped first, and ``prev_wall_s`` is the
    wall time the run had already spent (its last line's ``time/wall_s``)."""

    def __init__(self, run_dir: str | Path, start: int, *, key: str, main: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.main = main
        if main:
            truncate_metrics(self.path, start, key=key)
        self.prev_wall_s = previous_wall_time(self.path)
        self._writer = None
        if main:  # imported here: tensorboardX costs ~0.8 s, and only a training run needs it
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(Path(run_dir) / "tb"))
        self._file = self.path.open("a") if main else None

    def log(self, row: dict, step: int, skip: tuple[str, ...] = ()) -> None:
        """Appends ``row`` as one JSON line; every numeric field not in ``skip`` becomes a
        TensorBoard scalar at ``step``."""
        if not self.main:
            return
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for k, v in row.items():
            if isinstance(v, int | float) and k not in skip:
                self._writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.main:
            self._file.close()
            self._writer.close()


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` (blank lines skipped)."""
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
