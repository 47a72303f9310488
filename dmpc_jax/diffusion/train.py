"""``dmpc pretrain``: train the denoiser and R_nn on the offline dataset (METHOD §2).

Data-parallel with ``jax.sharding``: the batch is split over a 1-D ``data`` mesh of every device
(of every process, when started with ``--distributed``: ``dmpc_jax.distributed``), parameters are
replicated, and XLA inserts the gradient all-reduce (one device runs the same code). Every process
draws the same global batch from the same seed and places only its own devices' slices, so
1 process x 2 devices and 2 processes x 1 device run the same program on the same numbers. Each jitted call runs ``steps_per_call`` optimizer steps in a ``lax.scan``
over batches sampled on the host. A run directory holds ``config.json``, ``scaler.json``,
``robot.json`` (the dataset env's default pose, gains and action scale: the run loads without its
dataset), ``metrics.jsonl``, TensorBoard events and orbax checkpoints of params, EMA params, optimizer
state, step and key in ``ckpt/`` (``--resume`` continues from the newest one), and beside them
the EMA parameters alone in ``planner/``: all the planner needs, a quarter of the size; that is
what gets shipped.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm import tqdm

from dmpc_jax import distributed as dist
from dmpc_jax.checkpointing import (
    checkpoint_manager,
    restore_state,
    save_state,
)
from dmpc_jax.config import prepare_run
from dmpc_jax.data.dataset import WindowSampler, load_dataset
from dmpc_jax.diffusion import model as M
from dmpc_jax.diffusion.artifact import robot_constants, save_planner_params, save_robot_constants
from dmpc_jax.diffusion.config import (
    EXTENDABLE,
    PretrainConfig,
    initial_state,
    lr_factor_at,
    lr_schedule,
    make_optimizer,
)
from dmpc_jax.report.logger import RunLogger


def split_envs(n_envs: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train envs, held-out envs): whole envs are held out, so no window leaks across."""
    perm = np.random.default_rng(seed).permutation(n_envs)
    n_hold = int(round(n_envs * fraction)) if fraction > 0 else 0
    n_hold = min(max(n_hold, 1 if fraction > 0 else 0), n_envs - 1)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def batch_to_tau(scaler, batch):
    """Host windows -> (tau [.., H, Dx] diffusion space, value target [..])."""
    tau = M.to_diffusion(scaler, jnp.asarray(batch["action"]), jnp.asarray(batch["obs"]))
    return tau, jnp.asarray(batch["reward"]).mean(-1)


def make_train_step(nets, cfg: PretrainConfig, optimizer, mesh: Mesh):
    sched, weights = M.schedule_for(cfg.model), M.loss_weights(cfg.model)

    def loss_fn(params, tau, target, key):
        k1, k2 = jax.random.split(key)
        l_d, m_d = M.diffusion_loss(nets, params, sched, weights, tau, k1)
        l_v, m_v = M.value_loss(nets, params, sched, tau, target, k2)
        return l_d + l_v, {**m_d, **m_v}

    def one(carry, batch, schedule):
        params, ema, opt_state, step, key = carry
        key, k = jax.random.split(key)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch["tau"], batch["target"], k
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # the schedule scales Adam's step outside the optimizer, so the optimizer state (and a
        # checkpoint of it) has the same structure with or without it
        lr = lr_factor_at(schedule, step)
        updates = jax.tree.map(lambda u: u * lr, updates)
        params = optax.apply_updates(params, updates)
        decay = jnp.where(step >= cfg.ema_start, cfg.ema_decay, 0.0)
        ema = M.ema_update(ema, params, decay)
        metrics["train/grad_norm"] = optax.global_norm(grads)
        metrics["train/lr"] = cfg.learning_rate * lr
        return (params, ema, opt_state, step + 1, key), metrics

    replicated = dist.replicated(mesh)
    data = dist.split(mesh, axis=1)  # [S, B, ...]: split the batch

    @jax.jit
    def train_call(state, batches, schedule):
        """``steps_per_call`` steps; ``schedule``: ``lr_schedule(cfg)`` (a run-time input)."""
        batches = jax.lax.with_sharding_constraint(batches, data)
        carry, metrics = jax.lax.scan(functools.partial(one, schedule=schedule), state, batches)
        return carry, jax.tree.map(jnp.mean, metrics)

    return train_call, replicated, data


def make_eval(nets, cfg: PretrainConfig):
    sched, weights = M.schedule_for(cfg.model), M.loss_weights(cfg.model)

    @jax.jit
    def evaluate(params, tau, target, key):
        k1, k2 = jax.random.split(key)
        l_d, m = M.diffusion_loss(nets, params, sched, weights, tau, k1)
        _, m_v = M.value_loss(nets, params, sched, tau, target, k2)
        return {f"eval/{k.split('/')[-1]}": v for k, v in {**m, **m_v}.items()}

    return evaluate


def _compiled(cfg: PretrainConfig, n_devices: int):
    """Networks, optimizer and jitted step/eval of a config, built once per process (a resumed
    or repeated run in the same process reuses the compiled functions, also when the resume
    extends or anneals it: the fields a resume may change are not part of the program)."""
    # what a resume may change (EXTENDABLE) at one value: the compiled step takes the schedule
    # as an input, and checkpoints are the host loop's
    same = {"num_steps": cfg.steps_per_call, "checkpoint_every": cfg.steps_per_call,
            "lr_decay_from": None}  # fmt: skip
    assert set(same) == set(EXTENDABLE)
    return _compiled_for(dataclasses.replace(cfg, **same), n_devices)


@functools.lru_cache(maxsize=4)
def _compiled_for(cfg: PretrainConfig, n_devices: int):
    mesh = dist.global_mesh(n_devices)
    nets = M.network_defs(cfg.model)
    optimizer = make_optimizer(cfg)
    train_call, replicated, data_sharding = make_train_step(nets, cfg, optimizer, mesh)
    return nets, optimizer, train_call, replicated, data_sharding, make_eval(nets, cfg)


def pretrain(
    cfg: PretrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    max_calls: int | None = None,
    progress: bool = True,
):
    """Train (or continue) a pretraining run; returns (nets, state dict)."""
    ds = load_dataset(Path(cfg.dataset))
    ckpt_dir = Path(run_dir) / "ckpt"
    if resume and ckpt_dir.is_dir():  # checked before prepare_run rewrites config.json
        done = checkpoint_manager(run_dir).latest_step()
        if done is not None and done > cfg.num_steps:
            raise ValueError(
                f"cannot shorten {run_dir} to {cfg.num_steps} steps: its newest checkpoint is "
                f"at step {done}"
            )
    main = dist.is_main()
    scaler = M.make_scaler(cfg.model, ds.meta["stats"])
    if main:  # files come from one process; the others wait for them below
        run_dir = prepare_run(
            Path(run_dir).parent, Path(run_dir).name, cfg, resume=resume, overwrite=overwrite,
            extendable=EXTENDABLE,
        )  # fmt: skip
        (run_dir / "scaler.json").write_text(
            json.dumps({k: v.tolist() for k, v in scaler.items()}) + "\n"
        )
        (run_dir / "dataset.json").write_text(
            json.dumps({"path": str(ds.path), "transitions": ds.meta.get("transitions"),
                        "schema_version": ds.meta["schema_version"]}) + "\n"
        )  # fmt: skip
        if not (run_dir / "robot.json").exists():  # the run stands without its dataset from now on
            save_robot_constants(run_dir, robot_constants(run_dir))
    dist.barrier("pretrain/prepare_run")
    run_dir = Path(run_dir)

    train_envs, hold_envs = split_envs(ds.n_envs, cfg.holdout_fraction, cfg.seed)
    sampler = WindowSampler(ds, cfg.model.horizon, envs=train_envs)
    holdout = WindowSampler(ds, cfg.model.horizon, envs=hold_envs) if len(hold_envs) else None

    if cfg.batch_size % jax.device_count():
        raise ValueError(
            f"batch_size {cfg.batch_size} must divide over {jax.device_count()} devices"
        )
    nets, optimizer, train_call, replicated, data_sharding, evaluate = _compiled(
        cfg, jax.device_count()
    )
    _, params = M.init_networks(cfg.model, jax.random.PRNGKey(cfg.seed))
    state = dist.to_global(initial_state(cfg, params, optimizer), replicated)
    mngr = checkpoint_manager(run_dir)
    if resume and mngr.latest_step() is None and (run_dir / "planner").exists():
        raise FileNotFoundError(
            f"cannot resume {run_dir}: it has planner parameters but no training state in ckpt/ "
            "(a shipped run carries only planner/); pass --overwrite to train it again"
        )
    if resume and mngr.latest_step() is not None:
        state = restore_state(mngr, state)
    planner_mngr = checkpoint_manager(run_dir, 1, "planner")
    start = int(dist.to_host(state["step"]))
    logger = RunLogger(run_dir, start, key="step", main=main)
    state = dist.to_global(state, replicated)
    carry = (state["params"], state["ema"], state["opt_state"], state["step"], state["key"])
    schedule = dist.to_global(lr_schedule(cfg), replicated)

    rng = np.random.default_rng([cfg.seed, start])
    n_calls = (cfg.num_steps - start) // cfg.steps_per_call
    if max_calls is not None:
        n_calls = min(n_calls, max_calls)
    bar = tqdm(
        total=cfg.num_steps, initial=start, unit="step", disable=not (progress and main),
        desc="pretrain",
    )  # fmt: skip
    wall0, prev_wall = time.perf_counter(), logger.prev_wall_s
    for _ in range(n_calls):
        t0 = time.perf_counter()
        host = sampler.sample(rng, cfg.steps_per_call * cfg.batch_size)
        host = {
            k: v.reshape((cfg.steps_per_call, cfg.batch_size) + v.shape[1:])
            for k, v in host.items()
        }
        tau, target = batch_to_tau(scaler, host)
        batches = dist.to_global({"tau": tau, "target": target}, data_sharding)
        carry, metrics = train_call(carry, batches, schedule)
        step = int(dist.to_host(carry[3]))
        metrics = {k: float(v) for k, v in dist.to_host(metrics).items()}
        if holdout is not None:
            hb = holdout.sample(np.random.default_rng(step), cfg.batch_size)
            held = dist.to_global((*batch_to_tau(scaler, hb), jax.random.PRNGKey(step)), replicated)
            metrics.update(
                {k: float(v) for k, v in dist.to_host(evaluate(carry[1], *held)).items()}
            )
        metrics.update({"step": step, "time/call_s": time.perf_counter() - t0,
                        "time/wall_s": prev_wall + time.perf_counter() - wall0})  # fmt: skip
        logger.log(metrics, step)
        bar.update(cfg.steps_per_call)
        bar.set_postfix(loss=f"{metrics['loss/denoiser']:.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.num_steps:
            save_state(mngr, step, _state_dict(carry))
            save_planner_params(planner_mngr, step, carry[1])
    bar.close()
    step = int(dist.to_host(carry[3]))
    if step and planner_mngr.latest_step() != step:
        save_planner_params(planner_mngr, step, carry[1])  # a run finished before planner/ existed
    logger.close()
    return nets, _state_dict(carry)


def _state_dict(carry) -> dict:
    return dict(zip(("params", "ema", "opt_state", "step", "key"), carry, strict=True))
