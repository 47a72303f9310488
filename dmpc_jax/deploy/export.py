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
from dmpc_jax.planner.sampler import PlanCache, SamplerConfig, make_cached_plan_fn, make_plan_fn
from dmpc_jax.robot import go2


def build_exportable(nets, params, dcfg, scaler, scfg: SamplerConfig, robot: dict):
    """A jitted ``fn(s_now, task_dict, constraints_dict, key_u32) -> dict`` with weights baked in;
    with ``scfg.cache_after`` it takes a last argument ``cache`` (dict ``x`` [N, H, Dx],
    ``command`` [3], ``age`` int32 []: ``PlanCache``) and returns the next one under ``cache``."""
    plan = make_plan_fn(nets, dcfg, scfg, schedule_for(dcfg), scaler, **robot)

    def args(s_now, task, constraints, key):
        key = jax.random.wrap_key_data(key, impl="threefry2x32")
        return params, s_now, TaskParams(**task), Constraints(**constraints), key

    def result(out):
        return {"action": out.action, "obs": out.obs, "reward": out.reward, "best": out.best}

    if scfg.cache_after:
        cached = make_cached_plan_fn(plan, scfg, scaler)

        @jax.jit
        def fn_cached(s_now, task, constraints, key, cache):
            out, new = cached(*args(s_now, task, constraints, key), PlanCache(**cache))
            return {**result(out), "cache": {"x": new.x, "command": new.command, "age": new.age}}

        return fn_cached

    @jax.jit
    def fn(s_now, task, constraints, key):
        return result(plan(*args(s_now, task, constraints, key)))

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
    empty = PlanCache.empty(scfg.num_candidates, h) if scfg.cache_after else None
    if empty is not None:
        args += ({k: spec(np.shape(v), v.dtype) for k, v in vars(empty).items()},)
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
        "cache_fields": (
            None if empty is None else {k: list(np.shape(v)) for k, v in vars(empty).items()}
        ),
        "sampler": dataclasses.asdict(scfg),
        "sampler_variant": scfg.variant(dcfg.num_steps),
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
