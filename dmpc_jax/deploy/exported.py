"""Load an exported planner: needs only jax and numpy (no flax, optax, brax or training code).

An artifact directory holds ``planner.jax`` (``jax.export`` serialization of the whole plan step:
scaling, guided sampler, projections, ranking, with the network weights inside) and ``meta.json``
(dimensions, control period, joint order, gains, default pose, schema version, input layout and
the hash of the source checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

EXPORT_SCHEMA_VERSION = 2  # 2: an early-step cache as input and output (``cache_fields``)
READABLE_SCHEMAS = (1, 2)  # 1 is 2 without a cache


class ExportError(ValueError):
    """An artifact that is missing, corrupt or of another schema."""


def read_artifact(path: Path, blob_name: str, how: str):
    """(meta, deserialized ``jax.export`` module, size in bytes) of an artifact directory
    (``meta.json`` + ``blob_name``): a missing file, a blob that does not match its sha256 or one
    that does not deserialize is an ``ExportError`` that says so (``how``: the command that makes
    the artifact)."""
    from jax import export  # the only heavy import

    meta_path, blob_path = path / "meta.json", path / blob_name
    for f in (meta_path, blob_path):
        if not f.exists():
            raise ExportError(f"exported artifact {path} lacks {f.name}; run `{how}`")
    meta = json.loads(meta_path.read_text())
    blob = blob_path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != meta.get("artifact_sha256"):
        raise ExportError(
            f"{blob_path} does not match meta.json (sha256 {digest[:12]}...): corrupt or replaced"
        )
    try:
        return meta, export.deserialize(bytearray(blob)), len(blob)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"{blob_path} could not be deserialized: {e}") from e


class ExportedPlanner:
    """``planner(s_now, task, constraints, key) -> dict`` with numpy-compatible inputs.

    Inputs (env units): s_now [49] observation; task: dict of arrays (``meta['task_fields']``);
    constraints: dict ``lower`` [H, 61], ``upper`` [H, 61], ``rate`` [61]; key: uint32 [2].
    Output dict: ``action`` [H, 12], ``obs`` [H, 49], ``reward`` [N], ``best`` [].
    A planner exported with early-step caching (``meta['cache_fields']``) also takes ``cache``
    (``empty_cache()`` on the first call and after a reset or task change) and returns the next
    one under ``cache``; it refreshes by itself when the command moves (``planner.sampler``).
    """

    def __init__(self, path: Path):
        t0 = time.perf_counter()
        self.meta, self._exported, self.size_bytes = read_artifact(
            Path(path), "planner.jax", "make export"
        )
        if self.meta.get("schema_version") not in READABLE_SCHEMAS:
            raise ExportError(
                f"{path}/meta.json: schema_version {self.meta.get('schema_version')!r}, this "
                f"loader reads {READABLE_SCHEMAS}"
            )
        self.load_s = time.perf_counter() - t0

    @property
    def cached(self) -> bool:
        return bool(self.meta.get("cache_fields"))

    def empty_cache(self) -> dict:
        """The cache of a fresh start: the next plan is a full one."""
        f = self.meta["cache_fields"]
        return {
            "x": np.zeros(f["x"], np.float32),
            "command": np.zeros(f["command"], np.float32),
            "age": np.full(f["age"], -1, np.int32),
        }

    def __call__(
        self, s_now, task: dict, constraints: dict, key, cache: dict | None = None
    ) -> dict:
        args = (
            np.asarray(s_now, np.float32),
            {k: np.asarray(v, np.float32) for k, v in task.items()},
            {k: np.asarray(v, np.float32) for k, v in constraints.items()},
            np.asarray(key, np.uint32),
        )
        if self.cached:
            args += (self.empty_cache() if cache is None else cache,)
        elif cache is not None:
            raise ExportError("this exported planner has no cache (exported without cache_after)")
        return self._exported.call(*args)

    def default_task(self) -> dict:
        return {k: np.asarray(v, np.float32) for k, v in self.meta["default_task"].items()}

    def no_constraints(self) -> dict:
        h, dx = self.meta["horizon"], self.meta["transition_dim"]
        return {
            "lower": np.full((h, dx), -np.inf, np.float32),
            "upper": np.full((h, dx), np.inf, np.float32),
            "rate": np.full((dx,), np.inf, np.float32),
        }

    def task_inputs(self, spec) -> tuple[dict, dict]:
        """(task, constraints) dicts of numpy arrays for a ``planner.task.TaskSpec``: rewards,
        guidance and bounds as ``dmpc eval`` builds them, with this artifact's robot constants."""
        from dmpc_jax.planner.task import task_arrays

        task, cons, _ = task_arrays(spec, self.meta["horizon"],
                                    q_default=np.asarray(self.meta["q_default"], np.float32),
                                    action_scale=self.meta["action_scale"])  # fmt: skip
        as_np = lambda d: {k: np.asarray(v, np.float32) for k, v in vars(d).items()}  # noqa: E731
        return as_np(task), as_np(cons)

    def task_list(self, specs, command, guidance: float) -> list[tuple[dict, dict]] | None:
        """``plan_fn``'s task inputs for ``specs`` (TaskSpecs; None: the learned reward alone at
        ``guidance`` and ``command``); None when no spec is given (``plan_fn``'s default)."""
        if all(s is None for s in specs):
            return None
        from dmpc_jax.planner.task import TaskSpec

        nominal = TaskSpec(name="nominal", command=tuple(command), guidance_scale=guidance)
        return [self.task_inputs(nominal if s is None else s) for s in specs]

    def plan_fn(self, seed: int, guidance: float | None = None, tasks=None):
        """``plan(obs, seq, task=0) -> actions [H, 12]`` for the robot loop (``deploy.runner``),
        key (seed, seq). ``tasks``: a list of (task, constraints) inputs (``task_inputs``) that
        ``task`` indexes; default: the default task (learned reward; ``guidance`` replaces its
        scale) without constraints. A cached planner's cache lives in this closure: ``seq`` 0
        (the first plan of a run, and the warm-up call) and a change of task start from an empty
        cache, i.e. a full plan."""
        if tasks is None:
            task = self.default_task()
            if guidance is not None:
                task["guidance_scale"] = np.asarray(guidance, np.float32)
            tasks = [(task, self.no_constraints())]
        memory = {"cache": None, "task": 0}

        def plan(obs, seq, task=0):
            key = np.array([seed, seq], np.uint32)
            inputs = tasks[task]
            if not self.cached:
                return np.asarray(self(obs, *inputs, key)["action"])
            fresh = seq == 0 or task != memory["task"]
            out = self(obs, *inputs, key, None if fresh else memory["cache"])
            memory.update(cache=out["cache"], task=task)
            return np.asarray(out["action"])

        return plan
