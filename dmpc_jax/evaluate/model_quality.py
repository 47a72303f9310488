"""``dmpc eval-diffusion``: model quality of a pretrained planner on held-out demonstrator windows.

For held-out envs (the same split as pretraining), take windows of H steps, plan unguided from
their first observation (N = 1, no constraints) and compare with what the demonstrator did:
first-action error (the action the planner would execute) and one-step state-prediction error
(the planned s_1 against the observed s_1). Writes ``results.json`` and a README table.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.data.dataset import WindowSampler, load_dataset
from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.paths import DEFAULT_PRETRAINED
from dmpc_jax.planner.constraints import no_constraints
from dmpc_jax.planner.rewards import default_task
from dmpc_jax.planner.sampler import SamplerConfig


@dataclasses.dataclass(frozen=True)
class DiffusionEvalConfig:
    """Attributes:
    run_dir: pretraining run (config.json, scaler.json, ckpt/).
    windows: held-out windows to plan from.
    batch: windows planned per jitted call.
    method: sampler ``ddpm`` or ``ddim``.
    ddim_steps: DDIM steps when method is ddim.
    seed: PRNG seed.
    out_dir: where README.md and results.json go.
    """

    run_dir: str = DEFAULT_PRETRAINED
    windows: int = 512
    batch: int = 64
    method: str = "ddpm"
    ddim_steps: int = 5
    seed: int = 0
    out_dir: str = "experiments/diffusion"


def evaluate_planner(cfg: DiffusionEvalConfig, *, write: bool = True) -> dict:
    from dmpc_jax.diffusion.train import run_pretrain_config, split_envs
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
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "README.md").write_text(
            "\n".join(
                [
                    "# Diffusion model quality on held-out demonstrator windows",
                    "",
                    f"Command: `dmpc eval-diffusion --cfg.run-dir {cfg.run_dir} --cfg.windows {cfg.windows} "
                    f"--cfg.method {cfg.method}`. Unguided plans (N = 1, no constraints) from the first "
                    f"observation of {result['windows']} windows of {result['held_out_envs']} held-out envs "
                    f"of `{pcfg.dataset}`.",
                    "",
                    "| metric | value |",
                    "|---|---:|",
                    f"| first-action RMSE (action units) | {result['first_action_rmse']:.4f} |",
                    f"| first-action RMSE / action std | {result['first_action_rmse_over_action_std']:.3f} |",
                    f"| one-step joint position RMSE (rad) | {result['one_step_joint_pos_rmse_rad']:.4f} |",
                    f"| one-step joint velocity RMSE (rad/s) | {result['one_step_joint_vel_rmse_rad_s']:.3f} |",
                    "",
                    "![learning curve](learning_curve.png)",
                    "",
                    "Numbers: `results.json` beside this page.",
                    "",
                ]
            )  # fmt: skip
        )
        plot_learning_curve(run / "metrics.jsonl", out / "learning_curve.png")
        write_model_card(run, pcfg, result, planner.source.rsplit(":", 1)[1])
    return result


def plot_learning_curve(metrics: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    steps = np.array([m["step"] for m in log])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for ax, (title, keys) in zip(
        axes,
        (("denoiser x0 loss", ("loss/denoiser", "eval/denoiser")),
         ("first-action MSE (diffusion space)", ("loss/a0_mse", "eval/a0_mse")),
         ("R_nn loss", ("loss/value", "eval/value"))),
        strict=True,
    ):  # fmt: skip
        for k in keys:
            ax.plot(steps, [m.get(k, np.nan) for m in log], label=k, lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_model_card(run: Path, pcfg, result: dict, digest: str) -> None:
    """MODEL_CARD.md in the run directory: how it was trained (its own logs) and how it does."""
    import os
    import platform

    from dmpc_jax.diffusion import model as M
    from dmpc_jax.diffusion.unet import TemporalUNet, ValueNet, count_params

    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    step = int(digest.split("@")[0])
    at = next((m for m in log if m["step"] == step), log[-1])
    from flax import nnx

    d, dx = pcfg.model, M.TRANSITION_DIM
    n_unet = count_params(
        nnx.eval_shape(lambda: TemporalUNet(dx, d.unet, nnx.Rngs(0), M.ACTION_DIM))
    )
    n_val = count_params(nnx.eval_shape(lambda: ValueNet(dx, d.horizon, d.unet, nnx.Rngs(0))))
    lines = [
        f"# Model card: trajectory diffusion planner `{run.name}`",
        "",
        f"- Produced by: `make pretrain PRESET={run.name}` (`dmpc pretrain --preset {run.name}`) on "
        f"`{pcfg.dataset}` (`make dataset PRESET={run.name}`).",
        f"- Checkpoint `planner/{step}` (EMA parameters, digest {digest}): step {step} of "
        f"{pcfg.num_steps}, batch {pcfg.batch_size}, Adam {pcfg.learning_rate:g}, clip "
        f"{pcfg.grad_clip:g}, EMA {pcfg.ema_decay}; {at['time/wall_s'] / 3600:.2f} h of training "
        f"wall time on {platform.machine()} with {os.cpu_count()} CPU cores (JAX {jax.__version__}).",
        f"- Model: H = {d.horizon}, K = {d.num_steps} (cosine), temporal U-Net dim {d.unet.dim} "
        f"mults {d.unet.dim_mults} ({n_unet / 1e6:.2f} M parameters, predicts x0), R_nn dim "
        f"{d.unet.value_dim} ({n_val / 1e6:.2f} M); `{d.scaling}` diffusion-space scaling "
        "(`scaler.json`). Full config: `config.json`.",
        f"- Losses at that step: denoiser {at['loss/denoiser']:.4f} (held out {at.get('eval/denoiser', float('nan')):.4f}), "
        f"R_nn {at['loss/value']:.5f} (held out {at.get('eval/value', float('nan')):.5f}).",
        "- Shipped: the EMA parameters (`planner/`). The full training state (`ckpt/`: parameters, "
        "EMA, Adam moments, key) stays on the machine that trained it (4x the size); "
        "`ARGS=--resume` continues a run only where `ckpt/` exists.",
        "",
        "Held-out quality (`dmpc eval-diffusion`, unguided plans, N = 1):",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| first-action RMSE / action std | {result['first_action_rmse_over_action_std']:.3f} |",
        f"| one-step joint position RMSE (rad) | {result['one_step_joint_pos_rmse_rad']:.4f} |",
        f"| one-step joint velocity RMSE (rad/s) | {result['one_step_joint_vel_rmse_rad_s']:.3f} |",
        "",
        "Learning curve: `experiments/diffusion/`; closed-loop results: `experiments/tasks/`.",
        "",
    ]
    (run / "MODEL_CARD.md").write_text("\n".join(lines))
