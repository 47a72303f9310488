"""The finetuning updates (the weighted denoiser loss and the R_nn regression, scanned over a
stack of batches) and the run's checkpoints (training state, replay buffer, planner
parameters)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding

from dmpc_jax import distributed as dist
from dmpc_jax.checkpointing import checkpoint_manager, restore_state
from dmpc_jax.diffusion import model as M
from dmpc_jax.diffusion.artifact import save_planner_params
from dmpc_jax.finetune.rwr import ReplayBuffer


def make_update(nets, dcfg: M.DiffusionConfig, scaler: dict, optimizer, which: str):
    """Jitted ``update(params, opt_state, batches, key) -> (params, opt_state, metrics)`` over a
    stack of batches [S, B, ...] (obs, action, reward, weight) for one network: ``denoiser``
    (the weighted x0 loss) or ``value`` (R_nn regression on the window's mean reward)."""
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
            metrics[f"train/{which}_grad_norm"] = optax.global_norm(grads)
            return (optax.apply_updates(sub, updates), opt_state), metrics

        n = jax.tree.leaves(batches)[0].shape[0]
        (sub, opt_state), metrics = jax.lax.scan(
            one, (params[which], opt_state), (batches, jax.random.split(key, n))
        )
        return {**params, which: sub}, opt_state, jax.tree.map(jnp.mean, metrics)

    return update


def train_network(
    update, params, opt_state, buf, rng, key, cfg, pieces, weights, n_steps, horizon,
    sharding: NamedSharding | None = None,
):  # fmt: skip
    """``n_steps`` optimizer steps on windows of ``pieces`` in calls of ``steps_per_call``;
    ``sharding`` lays each stack of batches [S, B, ...] out over the mesh (B split)."""
    metrics = {}
    for i in range(n_steps // cfg.steps_per_call):
        win = buf.windows(rng, pieces, weights, cfg.steps_per_call * cfg.batch_size, horizon)
        batches = {
            k: v.reshape((cfg.steps_per_call, cfg.batch_size) + v.shape[1:]) for k, v in win.items()
        }
        if sharding is not None:
            batches = dist.to_global(batches, sharding)
        k = np.asarray(jax.random.fold_in(key, i))  # host key: the same on every process
        params, opt_state, m = update(params, opt_state, batches, k)
        metrics = {k: float(v) for k, v in dist.to_host(m).items()}
    return params, opt_state, metrics


def save_checkpoint(
    run_dir: Path, state: dict, buf: ReplayBuffer, planner_key: str = "params"
) -> None:
    """The training state (ckpt/), the replay buffer (buffer.npz, written first: a checkpoint
    step never exists without the buffer it was saved with) and the planner's parameters
    (``state[planner_key]`` into planner/, what ``load_planner`` and the demo read)."""
    it = int(dist.to_host(state["iteration"]))
    if dist.is_main():
        buf.save(Path(run_dir) / "buffer.npz")
    mngr = checkpoint_manager(run_dir)
    mngr.save(it, args=ocp.args.StandardSave(state), force=True)
    mngr.wait_until_finished()
    save_planner_params(checkpoint_manager(run_dir, 1, "planner"), it, state[planner_key])


def restore_checkpoint(run_dir: Path, template: dict, buf: ReplayBuffer):
    """(state, buffer) of the newest checkpoint; ``(template, buf)`` unchanged if there is none."""
    mngr = checkpoint_manager(run_dir)
    if mngr.latest_step() is None:
        return template, buf
    state = restore_state(mngr, template)
    loaded = ReplayBuffer.load(Path(run_dir) / "buffer.npz")
    have, want = (
        (loaded.capacity, loaded.max_len, loaded.keep),
        (buf.capacity, buf.max_len, buf.keep),
    )
    if have != want:
        raise ValueError(
            f"replay buffer in {run_dir} has capacity/piece length/pruning {have}, the config "
            f"wants {want}"
        )
    return state, loaded
