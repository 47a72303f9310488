"""The finetuning updates (the weighted denoiser loss and the R_nn regression, scanned over a
stack of batches) and the run's checkpoints (training state, replay buffer, planner
parameters, the rollout's env state)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec
from tqdm import tqdm

from dmpc_jax import distributed as dist
from dmpc_jax.checkpointing import checkpoint_manager, restore_state, save_state
from dmpc_jax.diffusion import model as M
from dmpc_jax.diffusion.artifact import save_planner_params
from dmpc_jax.diffusion.config import make_optimizer
from dmpc_jax.finetune.rwr import LAYOUT, ReplayBuffer
from dmpc_jax.finetune.selection import select_pieces, select_top


def make_update(nets, dcfg: M.DiffusionConfig, scaler: dict, optimizer, which: str):
    """Jitted ``update(params, opt_state, batches, key) -> (params, opt_state, metrics)`` over a
    stack of batches [S, B, ...] (obs, action, reward, weight) for one network: ``denoiser``
    (the weighted x0 loss) or ``value`` (R_nn regression on the window's mean reward).
    ``batches["lr_scale"]`` [S], where given, multiplies each step's update (Adam's step is
    linear in its rate, so this is the rate times the scale; the moments are unchanged)."""
    sched, lw = M.schedule_for(dcfg), M.loss_weights(dcfg)
    scaler = {k: jnp.asarray(v) for k, v in scaler.items()}

    def loss_fn(sub, other, batch, key):
        params = {which: sub, **other}
        tau = M.to_diffusion(scaler, batch["action"], batch["obs"])
        if which == "denoiser":
            return M.diffusion_loss(nets, params, sched, lw, tau, key, batch["weight"])
        return M.value_loss(nets, params, sched, tau, batch["reward"].mean(-1), key)

    @jax.jit
    def update(params, opt_state, batches, key):
        other = {k: v for k, v in params.items() if k != which}

        def one(carry, inputs):
            sub, opt_state = carry
            batch, k = inputs
            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(sub, other, batch, k)
            updates, opt_state = optimizer.update(grads, opt_state, sub)
            if "lr_scale" in batch:  # the step's share of the rate (an annealed update)
                updates = jax.tree.map(lambda u: u * batch["lr_scale"], updates)
            metrics[f"train/{which}_grad_norm"] = optax.global_norm(grads)
            return (optax.apply_updates(sub, updates), opt_state), metrics

        n = jax.tree.leaves(batches)[0].shape[0]
        (sub, opt_state), metrics = jax.lax.scan(
            one, (params[which], opt_state), (batches, jax.random.split(key, n))
        )
        return {**params, which: sub}, opt_state, jax.tree.map(jnp.mean, metrics)

    return update


def finetune_optimizer(cfg):
    """The denoiser's optimizer: global-norm clip, then Adam at ``cfg.learning_rate``, reached by
    a linear warm-up from 0 over ``cfg.lr_warmup_steps`` steps when that is set."""
    if not cfg.lr_warmup_steps:
        return make_optimizer(cfg)
    return make_optimizer(cfg, optax.linear_schedule(0.0, cfg.learning_rate, cfg.lr_warmup_steps))


def offline_windows(
    pretrained: str | Path, dataset: str | Path, horizon: int, drop_falls: bool = False
):
    """The offline dataset's ``WindowSampler``: the windows an update mixes in beside the
    buffer's. The pretraining run's own data: over its training envs (its own split); a
    concatenation (``dmpc dataset-concat``) that holds it: every env but the rows of its
    held-out envs (each cut into ``cut`` rows); any other dataset (e.g. the demonstrator's
    recoveries from the planner's states): all its envs.
    ``drop_falls``: none of an episode that ends in a fall."""
    from dmpc_jax.data.dataset import WindowSampler, load_dataset, source_rows
    from dmpc_jax.diffusion.artifact import run_pretrain_config
    from dmpc_jax.diffusion.train import split_envs

    pcfg = run_pretrain_config(Path(pretrained))
    ds = load_dataset(Path(dataset))
    envs = None
    if Path(dataset).resolve() == Path(pcfg.dataset).resolve():
        envs, _ = split_envs(ds.n_envs, pcfg.holdout_fraction, pcfg.seed)
    elif (rows := source_rows(ds, Path(pcfg.dataset))) is not None:  # a concatenation holding it
        _, held = split_envs(len(rows), pcfg.holdout_fraction, pcfg.seed)
        envs = np.setdiff1d(np.arange(ds.n_envs), rows[held])
    return WindowSampler(ds, horizon, envs=envs, drop_falls=drop_falls)


def offline_rows(cfg) -> int:
    """Rows of each batch drawn from the offline dataset (``cfg.offline_fraction``)."""
    return int(round(cfg.offline_fraction * cfg.batch_size))


def train_network(
    update, params, opt_state, buf, rng, key, cfg, pieces, weights, n_steps, horizon,
    sharding: NamedSharding | None = None, batch_weights=None, after_call=None, offline=None,
    progress: str | None = None, anneal: bool = False, starts: str = "any",
):  # fmt: skip
    """``n_steps`` optimizer steps on windows of ``pieces`` in calls of ``steps_per_call``;
    ``weights``: per piece of ``pieces`` (None: 1), or ``batch_weights(piece [S, B]) -> [S, B]``
    computes them from each stack of batches' buffer piece indices (the per-minibatch softmax);
    ``sharding`` lays each stack of batches [S, B, ...] out over the mesh (B split).
    ``offline`` (a ``WindowSampler``): the last ``offline_rows(cfg)`` rows of *every* batch are
    its windows, weight 1; the buffer's windows fill the rest. ``progress``: a progress bar of
    that name over the steps (None: none). ``anneal``: step k of the ``n_steps`` runs at
    ``1 - k / n_steps`` of the rate (``lr_scale``). ``starts``: which buffer windows
    (``ReplayBuffer.windows``: ``any`` or ``replan``)."""
    metrics = {}
    bar = tqdm(total=n_steps, desc=progress, unit="step", leave=False, disable=progress is None)
    s_call = cfg.steps_per_call
    n_off = offline_rows(cfg) if offline is not None else 0
    n_buf = cfg.batch_size - n_off
    for i in range(n_steps // s_call):
        win = buf.windows(rng, pieces, weights, s_call * n_buf, horizon, starts)
        batches = {k: v.reshape((s_call, n_buf) + v.shape[1:]) for k, v in win.items()}
        piece = batches.pop("piece")
        if batch_weights is not None:
            batches["weight"] = batch_weights(piece)
        if n_off:
            off = offline.sample(rng, s_call * n_off)
            for k in ("obs", "action", "reward"):
                more = off[k].reshape((s_call, n_off) + off[k].shape[1:])
                batches[k] = np.concatenate([batches[k], more.astype(batches[k].dtype)], axis=1)
            ones = np.ones((s_call, n_off), batches["weight"].dtype)
            batches["weight"] = np.concatenate([batches["weight"], ones], axis=1)
        if sharding is not None:
            batches = dist.to_global(batches, sharding)
        if anneal:  # [S]: replicated over the mesh, not split as the batches are
            k0 = i * s_call
            scale = (1.0 - np.arange(k0, k0 + s_call) / n_steps).astype(np.float32)
            if sharding is not None:
                scale = dist.to_global(scale, NamedSharding(sharding.mesh, PartitionSpec()))
            batches["lr_scale"] = scale
        k = np.asarray(jax.random.fold_in(key, i))  # host key: the same on every process
        params, opt_state, m = update(params, opt_state, batches, k)
        if after_call is not None:  # e.g. an EMA that follows every call's parameters
            after_call(params)
        metrics = {k: float(v) for k, v in dist.to_host(m).items()}
        bar.update(s_call)
        named = [k for k in ("loss/denoiser", "loss/value") if k in metrics]  # not a0_mse
        loss = metrics[named[0]] if named else float("nan")
        bar.set_postfix(loss=f"{loss:.4f}")
    bar.close()
    return params, opt_state, metrics


def eligible(cfg, buf) -> np.ndarray | None:
    """The pieces the denoiser may train on: all (None), or those that did not end in a fall
    (``cfg.fall_pieces`` drop)."""
    return ~buf.fell if cfg.fall_pieces == "drop" else None


def select_for_update(cfg, buf, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(keep, top): the pieces one denoiser update trains on (``select_pieces`` at the config's
    quantile, cap and selection, ``eligible`` pieces only), and the whole top quantile of the
    buffer with the falls in it (what ``rwr/top_fell_fraction`` measures)."""
    keep = select_pieces(buf.score, buf.group, cfg.top_quantile, cfg.max_pieces, cfg.selection,
                         rng, buf.group_sizes(), eligible(cfg, buf))  # fmt: skip
    top = select_top(buf.score, buf.group, cfg.top_quantile, len(buf) * buf.n_groups,
                     buf.group_sizes())  # fmt: skip
    return keep, top


def update_start(cfg, params: dict, opt_denoiser, ema: dict, initial: tuple, acting=None) -> tuple:
    """(params, opt_denoiser) a denoiser update trains from, with ``ema`` (``{"den": ...}`` or
    empty) set to match: as they are (``cfg.update_from`` current), or ``initial`` = (the
    pretrained denoiser, its fresh optimizer state) with the EMA reset to that denoiser
    (pretrained), or ``acting`` (the denoiser the planner acted with since the last update:
    the EMA mixed with ``cfg.anchor``'s pretrained share) with the same fresh optimizer state
    and the EMA reset to it (acting)."""
    if cfg.update_from == "current":
        return params, opt_denoiser
    den0, opt0 = initial
    if cfg.update_from == "acting":
        if acting is None:
            raise ValueError("update_from acting needs the acting denoiser")
        den0 = acting
    if ema:
        ema["den"] = den0
    return {**params, "denoiser": den0}, opt0


def initial_state(cfg, params: dict) -> dict:
    """A finetuning run's training state at iteration 0, from the pretrained ``params``: the
    layout its checkpoints hold (``ema_denoiser`` only with ``cfg.ema_decay``)."""
    state = {
        "params": params,
        "opt_denoiser": finetune_optimizer(cfg).init(params["denoiser"]),
        "opt_value": make_optimizer(cfg).init(params["value"]),
        "iteration": jnp.zeros((), jnp.int32),
    }
    if cfg.ema_decay:  # the planner's denoiser: an EMA of the trained one
        state["ema_denoiser"] = params["denoiser"]
    return state


def anchored(pretrained: dict, denoiser: dict, anchor: float) -> dict:
    """``anchor * pretrained + (1 - anchor) * denoiser``, leaf by leaf (``cfg.anchor``)."""
    return jax.tree.map(lambda p, d: anchor * p + (1 - anchor) * d, pretrained, denoiser)


def update_steps(cfg, buf, pieces: np.ndarray, horizon: int) -> int:
    """Denoiser steps of one update: ``cfg.update_epochs`` epochs over the windows of ``pieces``
    (rounded up to whole calls of ``steps_per_call``; batches that mix in offline windows hold
    fewer of them, so more steps), or ``cfg.denoiser_steps`` when that is 0. The windows are
    those ``cfg.window_starts`` lets the update draw."""
    if cfg.update_epochs <= 0:
        return cfg.denoiser_steps
    n_windows = buf.n_windows(pieces, horizon, getattr(cfg, "window_starts", "any"))
    steps = cfg.update_epochs * n_windows / (cfg.batch_size - offline_rows(cfg))
    return max(int(np.ceil(steps / cfg.steps_per_call)), 1) * cfg.steps_per_call


def save_checkpoint(
    run_dir: Path, state: dict, buf: ReplayBuffer, planner_key: str = "params",
    kept: np.ndarray | None = None, planner: dict | None = None,
) -> None:  # fmt: skip
    """The training state (ckpt/), the replay buffer (buffer.npz, written first: a checkpoint
    step never exists without the buffer it was saved with) and the planner's parameters
    (``state[planner_key]`` into planner/, what ``load_planner`` and the demo read). ``kept``:
    buffer indices also written to kept.npz, the small part of the buffer (the pieces the
    denoiser trains on) that a run moved to another machine resumes from."""
    it = int(dist.to_host(state["iteration"]))
    if dist.is_main():
        buf.save(Path(run_dir) / "buffer.npz")
        if kept is not None:
            buf.subset(kept, count_rest=True).save(Path(run_dir) / "kept.npz")
    mngr = checkpoint_manager(run_dir)
    save_state(mngr, it, state, force=True)
    planner = state[planner_key] if planner is None else planner
    save_planner_params(checkpoint_manager(run_dir, 1, "planner"), it, planner)


BEST_FILES = ("config.json", "pretrain_config.json", "scaler.json", "robot.json")


def keep_best_planner(run_dir: Path, params, iteration: int, row: dict, rule: str) -> bool:
    """Keep ``params`` as ``run_dir/best/`` (a planner run of its own: the run's config, scaler
    and robot files, ``planner/``, and ``best.json`` with the iteration and the row's
    ``eval/*`` rates) when ``row[f"eval/{rule}"]`` beats the kept one's (ties keep the earlier);
    returns whether it did."""
    best = Path(run_dir) / "best"
    info, rate = best / "best.json", float(row[f"eval/{rule}"])
    if info.exists() and json.loads(info.read_text())["rate"] >= rate:
        return False
    best.mkdir(exist_ok=True)
    for name in BEST_FILES:
        shutil.copyfile(Path(run_dir) / name, best / name)
    save_planner_params(checkpoint_manager(best, 1, "planner"), iteration, params)
    rates = {k: float(v) for k, v in row.items() if k.startswith("eval/")}
    info.write_text(
        json.dumps({"iteration": iteration, "rule": rule, "rate": rate, **rates}) + "\n"
    )
    return True


def restore_checkpoint(run_dir: Path, template: dict, buf: ReplayBuffer):
    """(state, buffer) of the newest checkpoint; ``(template, buf)`` unchanged if there is none.
    Without buffer.npz (a run moved to another machine) the buffer restarts from kept.npz, and
    fresh rollouts refill the rest."""
    mngr = checkpoint_manager(run_dir)
    if mngr.latest_step() is None:
        return template, buf
    state = restore_state(mngr, template)
    full, kept = Path(run_dir) / "buffer.npz", Path(run_dir) / "kept.npz"
    loaded = ReplayBuffer.load(full if full.exists() or not kept.exists() else kept)
    if loaded.layout() != buf.layout():
        raise ValueError(
            f"replay buffer in {run_dir} has {'/'.join(LAYOUT)} {loaded.layout()}, the config "
            f"wants {buf.layout()}"
        )
    return state, loaded


ROLLOUT_FILE = "rollout.npz"


def save_rollout(run_dir: Path, iteration: int, carry) -> None:
    """The rollout's carry (every env's state, its plan chunk, guidance scale) at ``iteration``,
    as host arrays in ``rollout.npz``: a resumed run steps on from the same env states, so it
    follows the curve of a run that was never stopped. Every process calls it (a gather)."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(dist.to_host(carry))]
    if dist.is_main():
        path = Path(run_dir) / ROLLOUT_FILE
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp, iteration=np.int64(iteration), **{f"leaf{i}": x for i, x in enumerate(leaves)}
        )
        os.replace(tmp, path)  # never a half-written file under the real name


def restore_rollout(run_dir: Path, iteration: int, template):
    """``(carry, None)`` from ``rollout.npz`` laid out like ``template`` (a fresh carry from the
    rollout's start), or ``(template, why)`` where the file is missing, from another
    iteration (the checkpoint is newer) or of another layout (a changed env or n_envs)."""
    path = Path(run_dir) / ROLLOUT_FILE
    if not path.exists():
        return template, f"no {ROLLOUT_FILE}"
    want = jax.tree.leaves(template)
    with np.load(path) as z:
        if int(z["iteration"]) != iteration:
            return (
                template,
                f"{ROLLOUT_FILE} is of iteration {int(z['iteration'])}, not {iteration}",
            )
        got = [z[f"leaf{i}"] for i in range(len(z.files) - 1)]
    if [(a.shape, a.dtype) for a in got] != [(w.shape, w.dtype) for w in want]:
        return (
            template,
            f"{ROLLOUT_FILE} holds another env layout (env, n_envs, or a sync against an async chunk)",
        )
    placed = [dist.to_global(a, w.sharding) for a, w in zip(got, want, strict=True)]
    return jax.tree.unflatten(jax.tree.structure(template), placed), None
