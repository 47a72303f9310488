"""The PPO demonstrator on the robot path: ``export_demonstrator`` serializes its deterministic
policy (observation [49] -> action [12], the brax network with its observation normaliser and
weights baked in) with ``jax.export`` for cpu and cuda; ``ExportedPolicy`` loads it with jax and
numpy alone, no training code, and the runner calls it at every policy step
(``Runner(policy=...)``): the baseline beside the planner on the same runner and safety layer.

The artifact directory holds ``policy.jax`` and ``meta.json`` (``kind: policy``, the robot
constants of the demonstrator's env, the sha256 of the blob).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from dmpc_jax.deploy.exported import ExportError, read_artifact

POLICY_SCHEMA_VERSION = 1
OBS_DIM, ACTION_DIM = 49, 12


def export_demonstrator(run_dir: Path, out_dir: Path, *, platforms=("cpu", "cuda")) -> dict:
    """``out_dir/policy.jax`` + ``meta.json`` of a demonstrator run's newest checkpoint."""
    import jax
    import jax.numpy as jnp
    from jax import export

    from dmpc_jax.rl.train import load_policy
    from dmpc_jax.robot import go2

    make_policy, params, cfg = load_policy(Path(run_dir))
    inference = make_policy(params, deterministic=True)

    @jax.jit
    def act(obs):  # deterministic: the key is never drawn from
        return inference({"state": obs}, jax.random.PRNGKey(0))[0]

    spec = jax.ShapeDtypeStruct((OBS_DIM,), jnp.float32)
    blob = bytes(export.export(act, platforms=platforms)(spec).serialize())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "policy.jax").write_bytes(blob)
    env = cfg.env
    meta = {
        "kind": "policy",
        "schema_version": POLICY_SCHEMA_VERSION,
        "platforms": list(platforms),
        "artifact_sha256": hashlib.sha256(blob).hexdigest(),
        "artifact_bytes": len(blob),
        "source_checkpoint": str(run_dir),
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "ctrl_dt": env.ctrl_dt,
        "kp": env.kp,
        "kd": env.kd,
        "action_scale": env.action_scale,
        "q_default": np.asarray(go2.default_pose(env.default_pose)).tolist(),
        "joint_order": list(go2.JOINT_NAMES),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


class ExportedPolicy:
    """``policy(obs [49]) -> action [12]`` (numpy in, numpy out) from an ``export_demonstrator``
    directory; a missing, replaced or corrupt artifact is a clear ``ExportError``."""

    def __init__(self, path: Path):
        t0 = time.perf_counter()
        self.meta, self._exported, self.size_bytes = read_artifact(
            Path(path), "policy.jax", "dmpc export-demonstrator"
        )
        if self.meta.get("kind") != "policy" or self.meta.get("schema_version") != 1:
            raise ExportError(
                f"{path}/meta.json: kind {self.meta.get('kind')!r} schema "
                f"{self.meta.get('schema_version')!r}; expected an exported policy of schema 1"
            )
        self.load_s = time.perf_counter() - t0
        t0 = time.perf_counter()  # compile now, never in the 500 Hz loop's first policy step
        self(np.zeros(OBS_DIM, np.float32))
        self.warmup_s = time.perf_counter() - t0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self._exported.call(np.asarray(obs, np.float32)))
