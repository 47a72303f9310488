"""``dmpc export``: serialize the whole plan step with ``jax.export`` for cpu and cuda.

The exported function takes plain dicts of arrays (no framework classes), so
``dmpc_jax.deploy.exported.ExportedPlanner`` loads it with jax and numpy alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import export

from dmpc_jax.deploy.exported import EXPORT_SCHEMA_VERSION
from dmpc_jax.diffusion.model import ACTION_DIM, OBS_DIM, TRANSITION_DIM, schedule_for
from dmpc_jax.planner.constraints import Constraints
from dmpc_jax.planner.rewards import REWARD_NAMES, TaskParams, default_task
from dmpc_jax.planner.sampler import SamplerConfig, make_plan_fn
from dmpc_jax.robot import go2


def build_exportable(nets, params, dcfg, scaler, scfg: SamplerConfig, robot: dict):
    """A jitted ``fn(s_now, task_dict, constraints_dict, key_u32) -> dict`` with weights baked in."""
    plan = make_plan_fn(nets, dcfg, scfg, schedule_for(dcfg), scaler, **robot)

    @jax.jit
    def fn(s_now, task, constraints, key):
        out = plan(
            params, s_now, TaskParams(**task), Constraints(**constraints),
            jax.random.wrap_key_data(key, impl="threefry2x32"),
        )  # fmt: skip
        return {"action": out.action, "obs": out.obs, "reward": out.reward, "best": out.best}

    return fn


def export_planner(nets, params, dcfg, scaler, scfg: SamplerConfig, robot: dict, out_dir: Path,
                   *, source: str = "", platforms=("cpu", "cuda")) -> dict:  # fmt: skip
    """Serialize to ``out_dir/planner.jax`` + ``meta.json``; returns the meta."""
    fn = build_exportable(nets, params, dcfg, scaler, scfg, robot)
    task = jax.tree.map(lambda x: np.asarray(x), dataclasses.asdict(default_task()))
    h = dcfg.horizon
    spec = lambda shape, dt=jnp.float32: jax.ShapeDtypeStruct(shape, dt)  # noqa: E731
    args = (
        spec((OBS_DIM,)),
        {k: spec(np.shape(v)) for k, v in task.items()},
        {
            "lower": spec((h, TRANSITION_DIM)),
            "upper": spec((h, TRANSITION_DIM)),
            "rate": spec((TRANSITION_DIM,)),
        },
        spec((2,), jnp.uint32),
    )
    exp = export.export(fn, platforms=platforms)(*args)
    blob = bytes(exp.serialize())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "planner.jax").write_bytes(blob)
    meta = {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "platforms": list(platforms),
        "artifact_sha256": hashlib.sha256(blob).hexdigest(),
        "source_checkpoint": source,
        "horizon": h,
        "transition_dim": TRANSITION_DIM,
        "action_dim": ACTION_DIM,
        "obs_dim": OBS_DIM,
        "num_candidates": scfg.num_candidates,
        "sampler": dataclasses.asdict(scfg),
        "ctrl_dt": 0.02,
        "joint_order": list(go2.JOINT_NAMES),
        "sdk_motor_order": list(go2.sdk_motor_order()),
        "kp": robot["kp"],
        "kd": robot["kd"],
        "action_scale": robot["action_scale"],
        "q_default": np.asarray(robot["q_default"]).tolist(),
        "reward_names": list(REWARD_NAMES),
        "task_fields": {k: list(np.shape(v)) for k, v in task.items()},
        "default_task": {k: np.asarray(v).tolist() for k, v in task.items()},
        "artifact_bytes": len(blob),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
