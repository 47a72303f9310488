"""``dmpc demonstrator``: train the PPO demonstrator with progress bar, metrics, checkpoints, resume.

A run directory holds ``config.json`` (the resolved config), ``metrics.jsonl`` (one line per
epoch), TensorBoard events under ``tb/`` and orbax checkpoints under ``ckpt/`` (the whole
training state, see ``rl/ppo.py``). ``--resume`` continues from the newest checkpoint with the
step count, optimizer and normaliser intact; lines of ``metrics.jsonl`` past that checkpoint
(written after it, then lost in a kill) are dropped so the log never shows a reset or a repeat.

Data-parallel like pretraining (``dmpc_jax.distributed``): the env batch is split over a 1-D
``data`` mesh of every device of every process (``--distributed``), the training state is
replicated, and XLA partitions the epoch (env steps stay per device; the normaliser update and the
gradient means become all-reduces). Random draws do not depend on the layout (JAX's partitionable
threefry), so 1 device and many run the same numbers up to the order of the reductions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from dmpc_jax import distributed as dist
from dmpc_jax.checkpointing import (
    checkpoint_manager,
    restore_state,
    save_state,
)
from dmpc_jax.config import from_dict, prepare_run
from dmpc_jax.envs.go2_joystick import Go2Joystick
from dmpc_jax.report.logger import RunLogger
from dmpc_jax.rl.ppo import DemonstratorConfig, TrainingState, make_trainer, params_tuple


def train(
    cfg: DemonstratorConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    max_epochs: int | None = None,
    progress: bool = True,
    command: str | None = None,
):
    """Train (or continue) a demonstrator run in ``run_dir``; ``command`` (the CLI invocation) is
    appended to the run's ``commands.txt``.

    Args:
        max_epochs: stop after this many epochs *in this call* (for tests and time-boxed sessions);
            the run continues later with ``resume=True``.

    Returns:
        (make_policy, params, final TrainingState).
    """
    main = dist.is_main()
    mesh = dist.global_mesh()
    src = Path(cfg.init_from) if cfg.init_from else None
    if src is not None and not (src / "config.json").exists():
        raise FileNotFoundError(f"init_from: {src} is not a demonstrator run (no config.json)")
    if cfg.ppo.num_envs % mesh.size:
        raise ValueError(
            f"num_envs {cfg.ppo.num_envs} must divide over the {mesh.size} devices of the mesh"
        )
    if main:  # files come from one process; the others wait for them below
        prepare_run(
            Path(run_dir).parent, Path(run_dir).name, cfg, resume=resume, overwrite=overwrite
        )
        if command:
            with (Path(run_dir) / "commands.txt").open("a") as f:
                f.write(command + "\n")
    dist.barrier("demonstrator/prepare_run")
    run_dir = Path(run_dir)

    env = Go2Joystick(cfg.env)
    init, reset_envs, epoch_fn, make_policy = make_trainer(env, cfg.ppo)
    env_sharding = dist.split(mesh)  # every leaf: [num_envs, ...]
    reset_envs = jax.jit(reset_envs, out_shardings=env_sharding)
    # outputs laid out as the inputs: the second epoch reuses the first one's compilation
    rep = dist.replicated(mesh)
    epoch_fn = jax.jit(epoch_fn, out_shardings=(rep, env_sharding, rep), donate_argnums=(0, 1))
    mngr = checkpoint_manager(run_dir)
    ts = dist.to_global(init(jax.random.PRNGKey(cfg.ppo.seed)), rep)
    start_epoch = 0
    if resume and mngr.latest_step() is not None:
        start_epoch = mngr.latest_step()
        ts = restore_state(mngr, ts, start_epoch)
    elif src is not None:  # a new run that starts from another run's training state
        ts = restore_state(checkpoint_manager(src), ts)
    logger = RunLogger(run_dir, start_epoch, key="epoch", main=main)
    env_key = jax.random.fold_in(jax.random.PRNGKey(cfg.ppo.seed + 1), start_epoch)
    env_state = reset_envs(np.asarray(env_key))  # host key: the same on every process
    steps_per_epoch = cfg.ppo.env_steps_per_epoch
    end_epoch = cfg.ppo.num_epochs
    if max_epochs is not None:
        end_epoch = min(end_epoch, start_epoch + max_epochs)
    bar = tqdm(
        total=cfg.ppo.num_epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        unit="step",
        unit_scale=True,
        disable=not (progress and main),
        desc="demonstrator",
    )
    wall0, prev_wall = time.perf_counter(), logger.prev_wall_s
    for ep in range(start_epoch, end_epoch):
        t0 = time.perf_counter()
        ts, env_state, metrics = epoch_fn(ts, env_state)
        metrics = {k: float(v) for k, v in dist.to_host(metrics).items()}
        dt = time.perf_counter() - t0
        env_steps = int(dist.to_host(ts.training_steps)) * cfg.ppo.env_steps_per_training_step
        metrics.update(
            {
                "epoch": ep + 1,
                "env_steps": env_steps,
                "time/epoch_s": dt,
                "time/steps_per_s": steps_per_epoch / dt,
                "time/wall_s": prev_wall + time.perf_counter() - wall0,
            }
        )
        logger.log(metrics, env_steps)
        bar.update(steps_per_epoch)
        bar.set_postfix(
            reward=f"{metrics.get('episode/sum_reward', float('nan')):.2f}",
            len=f"{metrics.get('episode/length', float('nan')):.0f}",
        )
        if (ep + 1) % cfg.ppo.checkpoint_every_epochs == 0 or ep + 1 == end_epoch:
            save_state(mngr, ep + 1, ts)
    bar.close()
    logger.close()
    return make_policy, params_tuple(ts), ts


def load_policy(run_dir: Path, cfg: DemonstratorConfig | None = None):
    """(make_policy, params, cfg) of the newest checkpoint of a demonstrator run."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a demonstrator run (no config.json)")
    cfg = cfg or from_dict(DemonstratorConfig, json.loads((run_dir / "config.json").read_text()))
    env = Go2Joystick(cfg.env)
    init, _, _, make_policy = make_trainer(env, cfg.ppo)
    ts = restore_state(checkpoint_manager(run_dir), init(jax.random.PRNGKey(0)))
    return make_policy, params_tuple(ts), cfg


def load_batched_policy(run_dir: Path):
    """``policy(obs [B, ...], key) -> actions [B, 12]``: the deterministic demonstrator of a run's
    newest checkpoint over a batch of observations (an ``envs.rollout`` policy)."""
    make_policy, params, _ = load_policy(run_dir)
    inference = make_policy(params, deterministic=True)

    def policy(obs, key):
        return jax.vmap(lambda o: inference(o, key)[0])(obs)

    return policy


def normalizer_count(ts: TrainingState) -> int:
    """Observations folded into the running normaliser (brax stores a UInt64 pair or an array)."""
    c = ts.normalizer_params.count
    if hasattr(c, "hi"):
        return int(np.asarray(c.hi)) * 2**32 + int(np.asarray(c.lo))
    return int(np.asarray(c))
