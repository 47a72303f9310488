"""``dmpc eval-diffusion``: model quality of a pretrained planner on held-out demonstrator windows.

For held-out envs (the same split as pretraining), take windows of H steps, plan unguided from
their first observation (N = 1, no constraints) and compare with what the demonstrator did:
first-action error (the action the planner would execute) and one-step state-prediction error
(the planned s_1 against the observed s_1). Writes ``results.json`` and its page
(``report_model``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.data.dataset import WindowSampler, load_dataset
from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.evaluate import report_model
from dmpc_jax.paths import DEFAULT_PRETRAINED
from dmpc_jax.planner.constraints import no_constraints
from dmpc_jax.planner.rewards import default_task
from dmpc_jax.planner.sampler import SamplerConfig


@dataclasses.dataclass(frozen=True)
class DiffusionEvalConfig:
    """The ``DiffusionEvalConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        run_dir: pretraining run (config.json, scaler.json, ckpt/).
        windows: held-out windows to plan from.
        batch: windows planned per jitted call.
        method: sampler ``ddpm`` or ``ddim``.
        ddim_steps: DDIM steps when method is ddim.
        seed: PRNG seed.
        out_dir: where the page and results.json go.
    """

    run_dir: str = DEFAULT_PRETRAINED
    windows: int = 512
    batch: int = 64
    method: str = "ddpm"
    ddim_steps: int = 5
    seed: int = 0
    out_dir: str = "experiments/diffusion"


def evaluate_planner(cfg: DiffusionEvalConfig, *, write: bool = True) -> dict:
    from dmpc_jax.diffusion.artifact import run_pretrain_config
    from dmpc_jax.diffusion.train import split_envs
    from dmpc_jax.planner.load import load_planner

    run = Path(cfg.run_dir)
    planner = load_planner(run)
    params, dcfg = planner.params, planner.dcfg
    pcfg = run_pretrain_config(run)
    ds = load_dataset(Path(pcfg.dataset))
    _, hold = split_envs(ds.n_envs, pcfg.holdout_fraction, pcfg.seed)
    if len(hold) == 0:
        raise ValueError(f"{run} was trained without held-out envs (holdout_fraction = 0)")
    sampler = WindowSampler(ds, dcfg.horizon, envs=hold)
    scfg = SamplerConfig(num_candidates=1, method=cfg.method, ddim_steps=cfg.ddim_steps)
    plan = planner.plan_fn(scfg)
    task, cons = default_task(nn_weight=0.0, guidance_scale=0.0), no_constraints(dcfg.horizon)
    batched = jax.jit(jax.vmap(lambda s, k: plan(params, s, task, cons, k)))
    rng = np.random.default_rng(cfg.seed)
    a0_err, s1_pos, s1_vel = [], [], []
    n_calls = -(-cfg.windows // cfg.batch)
    for i in range(n_calls):
        w = sampler.sample(rng, cfg.batch)
        keys = jax.random.split(jax.random.PRNGKey(cfg.seed + i), cfg.batch)
        out = batched(jnp.asarray(w["obs"][:, 0]), keys)
        a0_err.append(np.asarray(out.action[:, 0]) - w["action"][:, 0])
        sl_q, sl_v = obs_lib.OBS_SLICES["joint_pos"], obs_lib.OBS_SLICES["joint_vel"]
        s1_pos.append(np.asarray(out.obs[:, 1, sl_q]) - w["obs"][:, 1, sl_q])
        s1_vel.append(
            (np.asarray(out.obs[:, 1, sl_v]) - w["obs"][:, 1, sl_v]) / obs_lib.JOINT_VEL_SCALE
        )
    a0, sq, sv = (np.concatenate(x)[: cfg.windows] for x in (a0_err, s1_pos, s1_vel))
    action_std = float(np.asarray(ds.meta["stats"]["action"]["std"]).mean())
    result = {
        "run_dir": cfg.run_dir,
        "dataset": pcfg.dataset,
        "windows": int(a0.shape[0]),
        "held_out_envs": int(len(hold)),
        "sampler": dataclasses.asdict(scfg),
        "first_action_rmse": float(np.sqrt(np.mean(a0**2))),
        "first_action_rmse_over_action_std": float(np.sqrt(np.mean(a0**2)) / max(action_std, 1e-9)),
        "one_step_joint_pos_rmse_rad": float(np.sqrt(np.mean(sq**2))),
        "one_step_joint_vel_rmse_rad_s": float(np.sqrt(np.mean(sv**2))),
    }
    if write:
        report_model.write_results(cfg, result, pcfg, planner.source.rsplit(":", 1)[1])
    return result
