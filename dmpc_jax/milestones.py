"""Start-up milestones for measurements (``experiments/compile_cache/measure.py``).

With ``DMPC_MILESTONES=<file>`` set, ``mark(name)`` appends one JSON line ``{"name", "t",
"pid"}`` (``t``: wall clock, s) the first time each name is marked in a process. Without the
variable it does nothing. Marked: ``first_step``, the first controller action the robot runner
executes (``dmpc sim2sim``, ``dmpc deploy``), or the moment the first jitted rollout
(``envs.rollout``: ``make demo``, ``dmpc eval``) starts to run, through ``marking``. Not from
inside a jitted rollout: a host callback there keeps JAX from writing the executable to the
persistent compilation cache, so the measurement would change what it measures (a second
``make demo`` recompiled its rollout)."""

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


def marking(fn, name: str = "first_step"):
    """``fn`` (a jitted function) itself, unless ``DMPC_MILESTONES`` is set; then a stand-in that
    compiles each argument signature ahead of time (``lower().compile()``: the same persistent
    cache as a jit call) and marks ``name`` just before the first compiled call runs, so the time
    to the first step is measured without a host callback in the rollout. Called while another
    function is traced (the evaluation harness jits a rollout of marked segments), it is ``fn``
    traced inline and marks nothing."""
    if not os.environ.get(ENV_VAR):
        return fn
    import jax
    import numpy as np

    compiled = {}

    def call(*args, **kwargs):
        leaves, tree = jax.tree.flatten((args, kwargs))
        if any(isinstance(x, jax.core.Tracer) for x in leaves):  # inside another jitted fn
            return fn(*args, **kwargs)  # traced into it: that one compiles and marks
        sig = (tree, tuple((np.shape(x), np.result_type(x), type(x)) for x in leaves))
        if sig not in compiled:
            compiled[sig] = fn.lower(*args, **kwargs).compile()
        mark(name)
        return compiled[sig](*args, **kwargs)

    return call


def read(path: str | os.PathLike, name: str = "first_step") -> float | None:
    """The earliest time ``name`` was marked in the file, by any process (None if never)."""
    if not os.path.exists(path):
        return None
    times = [r["t"] for r in map(json.loads, open(path).read().splitlines()) if r["name"] == name]
    return min(times, default=None)
