"""Start-up milestones for measurements (``experiments/compile_cache/measure.py``).

With ``DMPC_MILESTONES=<file>`` set, ``mark(name)`` appends one JSON line ``{"name", "t",
"pid"}`` (``t``: wall clock, s) the first time each name is marked in a process. Without the
variable it does nothing. Marked: ``first_step``, the first controller action the robot runner
executes (``dmpc sim2sim``, ``dmpc deploy``). Not inside jitted rollouts: a host callback there
keeps JAX from writing the executable to the persistent compilation cache, so the measurement
would change what it measures (a second ``make demo`` recompiled its rollout)."""

from __future__ import annotations

import json
import os
import time

ENV_VAR = "DMPC_MILESTONES"
_marked: set[str] = set()


def mark(name: str) -> None:
    path = os.environ.get(ENV_VAR)
    if not path or name in _marked:
        return
    _marked.add(name)
    with open(path, "a") as f:
        f.write(json.dumps({"name": name, "t": time.time(), "pid": os.getpid()}) + "\n")


def read(path: str | os.PathLike, name: str = "first_step") -> float | None:
    """The earliest time ``name`` was marked in the file, by any process (None if never)."""
    if not os.path.exists(path):
        return None
    times = [r["t"] for r in map(json.loads, open(path).read().splitlines()) if r["name"] == name]
    return min(times, default=None)
