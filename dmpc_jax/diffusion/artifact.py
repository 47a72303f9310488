"""The planner's on-disk format, written by pretraining and finetuning and read by every stage
that plans: the EMA parameters in ``planner/`` (else the training state in ``ckpt/``), the model
config (``config.json``, or ``pretrain_config.json`` in a finetuning run), the diffusion-space
scaling (``scaler.json``), the robot constants (``robot.json``, else the dataset's env) and a
content digest ``<step>@<sha256 prefix>``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from dmpc_jax.checkpointing import checkpoint_manager, restore_state, save_state
from dmpc_jax.config import from_dict, to_dict
from dmpc_jax.diffusion import model as M
from dmpc_jax.diffusion.config import PretrainConfig, initial_state, make_optimizer
from dmpc_jax.envs.config import EnvConfig
from dmpc_jax.robot import go2


def save_planner_params(mngr: ocp.CheckpointManager, step: int, ema) -> None:
    """The EMA parameters alone (``checkpoint_manager(run_dir, 1, "planner")``: newest kept)."""
    save_state(mngr, step, {"ema": ema})


def load_planner_checkpoint(run_dir: Path):
    """(nets, ema params, DiffusionConfig, scaler) of a pretraining run's newest checkpoint:
    ``planner/`` (EMA only) when present, else the full training state in ``ckpt/``."""
    run_dir = Path(run_dir)
    cfg = run_pretrain_config(run_dir)
    nets, params = M.init_networks(cfg.model, jax.random.PRNGKey(0))
    planner = checkpoint_manager(run_dir, 1, "planner")
    if planner.latest_step() is not None:
        state = restore_state(planner, {"ema": params})
    else:
        template = initial_state(cfg, params, make_optimizer(cfg))
        state = restore_state(checkpoint_manager(run_dir), template)
    scaler = {
        k: np.asarray(v, np.float32)
        for k, v in json.loads((run_dir / "scaler.json").read_text()).items()
    }
    return nets, state["ema"], cfg.model, scaler


def run_pretrain_config(run_dir: Path) -> PretrainConfig:
    """The PretrainConfig of a planner run: ``config.json`` of a pretraining run, or the
    ``pretrain_config.json`` a finetuning run copies from the run it started from."""
    run_dir = Path(run_dir)
    path = run_dir / "pretrain_config.json"
    if not path.exists():
        path = run_dir / "config.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{run_dir} is not a pretraining or finetuning run (no config.json)"
        )
    return from_dict(PretrainConfig, json.loads(path.read_text()))


def robot_constants(run_dir: Path) -> dict:
    """q_default, kp, kd, action_scale of the env that collected a run's dataset: what the
    planner's analytic rewards and the robot need. Read from the run's ``robot.json`` (written at
    the start of pretraining, copied by finetuning); a run without it reads its dataset's
    ``meta.json`` (``EnvConfig`` defaults when that dataset records no env, as a hand-made one);
    a run with neither is an error, never a silent default."""
    path = Path(run_dir) / "robot.json"
    if path.exists():
        robot = json.loads(path.read_text())
        return {k: np.asarray(v, np.float32) if k == "q_default" else float(v)
                for k, v in robot.items()}  # fmt: skip
    pcfg = run_pretrain_config(run_dir)
    meta_path = Path(pcfg.dataset) / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(
            f"{run_dir} has no robot.json and its dataset's {meta_path} is missing: the planner's "
            "robot constants (default pose, kp, kd, action scale) are unknown. Re-create the "
            "dataset (`make dataset`) or write robot.json into the run (`save_robot_constants`)"
        )
    env = json.loads(meta_path.read_text()).get("env") or to_dict(EnvConfig())
    pose = go2.default_pose(env["default_pose"])
    return {
        "q_default": np.asarray(pose, np.float32),
        "kp": float(env["kp"]),
        "kd": float(env["kd"]),
        "action_scale": float(env["action_scale"]),
    }


def save_robot_constants(run_dir: Path, robot: dict) -> None:
    """``robot.json``: the run's robot constants, so loading it never needs the dataset."""
    data = {k: np.asarray(v).tolist() for k, v in robot.items()}
    (Path(run_dir) / "robot.json").write_text(json.dumps(data) + "\n")


def checkpoint_digest(run_dir: Path) -> str:
    """``<step>@<sha256 prefix>`` of the newest planner checkpoint's files (names and bytes)."""
    subdir = "planner"
    step = checkpoint_manager(run_dir, 1, subdir).latest_step()
    if step is None:
        subdir, step = "ckpt", checkpoint_manager(run_dir).latest_step()
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir}")
    h = hashlib.sha256()
    root = Path(run_dir).absolute() / subdir / str(step)
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return f"{step}@{h.hexdigest()[:16]}"
