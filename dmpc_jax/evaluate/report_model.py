"""The pretrained planner's page (``experiments/diffusion``: held-out quality table, learning
curve) and the run's MODEL_CARD.md."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from dmpc_jax.diffusion import model as M
from dmpc_jax.diffusion.unet import TemporalUNet, ValueNet, count_params
from dmpc_jax.report.logger import read_jsonl


def write_results(cfg, result: dict, pcfg, digest: str) -> None:
    """``results.json``, the page and the learning curve in ``cfg.out_dir``; the model card in
    the run directory."""
    run = Path(cfg.run_dir)
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
    write_model_card(run, pcfg, result, digest)


def plot_learning_curve(metrics: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = read_jsonl(metrics)
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
    log = read_jsonl(run / "metrics.jsonl")
    step = int(digest.split("@")[0])
    at = next((m for m in log if m["step"] == step), log[-1])
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
