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

EXPORT_SCHEMA_VERSION = 1


class ExportError(ValueError):
    """An artifact that is missing, corrupt or of another schema."""


class ExportedPlanner:
    """``planner(s_now, task, constraints, key) -> dict`` with numpy-compatible inputs.

    Inputs (env units): s_now [49] observation; task: dict of arrays (``meta['task_fields']``);
    constraints: dict ``lower`` [H, 61], ``upper`` [H, 61], ``rate`` [61]; key: uint32 [2].
    Output dict: ``action`` [H, 12], ``obs`` [H, 49], ``reward`` [N], ``best`` [].
    """

    def __init__(self, path: Path):
        import jax  # noqa: F401  (the only heavy import)
        from jax import export

        path = Path(path)
        meta_path, blob_path = path / "meta.json", path / "planner.jax"
        for f in (meta_path, blob_path):
            if not f.exists():
                raise ExportError(f"exported planner {path} lacks {f.name}; run `make export`")
        t0 = time.perf_counter()
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("schema_version") != EXPORT_SCHEMA_VERSION:
            raise ExportError(
                f"{meta_path}: schema_version {self.meta.get('schema_version')!r}, this loader reads "
                f"{EXPORT_SCHEMA_VERSION}"
            )
        blob = blob_path.read_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != self.meta["artifact_sha256"]:
            raise ExportError(
                f"{blob_path} does not match meta.json (sha256 {digest[:12]}...): corrupt or replaced"
            )
        try:
            self._exported = export.deserialize(bytearray(blob))
        except Exception as e:  # noqa: BLE001
            raise ExportError(f"{blob_path} could not be deserialized: {e}") from e
        self.load_s = time.perf_counter() - t0
        self.size_bytes = len(blob)

    def __call__(self, s_now, task: dict, constraints: dict, key) -> dict:
        return self._exported.call(
            np.asarray(s_now, np.float32),
            {k: np.asarray(v, np.float32) for k, v in task.items()},
            {k: np.asarray(v, np.float32) for k, v in constraints.items()},
            np.asarray(key, np.uint32),
        )

    def default_task(self) -> dict:
        return {k: np.asarray(v, np.float32) for k, v in self.meta["default_task"].items()}

    def no_constraints(self) -> dict:
        h, dx = self.meta["horizon"], self.meta["transition_dim"]
        return {
            "lower": np.full((h, dx), -np.inf, np.float32),
            "upper": np.full((h, dx), np.inf, np.float32),
            "rate": np.full((dx,), np.inf, np.float32),
        }

    def plan_fn(self, seed: int, guidance: float | None = None):
        """``plan(obs, seq) -> actions [H, 12]`` for the robot loop (``deploy.runner``): the
        default task (learned reward; ``guidance`` replaces its scale), no constraints, key
        (seed, seq)."""
        task = self.default_task()
        if guidance is not None:
            task["guidance_scale"] = np.asarray(guidance, np.float32)
        cons = self.no_constraints()

        def plan(obs, seq):
            return np.asarray(self(obs, task, cons, np.array([seed, seq], np.uint32))["action"])

        return plan
