"""The finetuning page (``experiments/finetune``): success before/after, the learning curve,
independent evaluations and earlier attempts, and the run's MODEL_CARD.md."""

from __future__ import annotations

import json
from pathlib import Path

from dmpc_jax.config import to_dict
from dmpc_jax.diffusion.artifact import checkpoint_digest
from dmpc_jax.finetune.config import FinetuneConfig, load_config
from dmpc_jax.report.logger import read_jsonl


def _timeline(cfg) -> str:
    """The rollouts' replanning timeline in words."""
    d = cfg.margin
    if not d:
        return f"synchronous replanning every E = {cfg.execute} steps"
    return (f"replanning every {cfg.execute - d} steps on the robot's timeline (a plan enters at "
            f"row D = {d}, E = {cfg.execute})")  # fmt: skip


def plot_learning_curve(metrics_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics_path.exists():
        return
    log = read_jsonl(metrics_path)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    ev = [(m["iteration"], m["eval/success_rate"]) for m in log if "eval/success_rate" in m]
    if ev:
        axes[0].plot(*zip(*ev, strict=True), "o-")
    axes[0].set_title("success at the eval task (harness)")
    axes[0].set_ylim(-0.02, 1.02)
    ro = [m for m in log if "rollout/reward_per_step" in m]
    its = [m["iteration"] for m in ro]
    axes[1].plot(its, [m["rollout/reward_per_step"] for m in ro], label="rollouts")
    axes[1].plot(its, [m["buffer/mean_score"] for m in ro], label="buffer")
    kept = [(m["iteration"], m["rwr/kept_mean_score"]) for m in ro if "rwr/kept_mean_score" in m]
    if kept:
        axes[1].plot(*zip(*kept, strict=True), "o", label="kept for RWR")
    axes[1].legend(fontsize=8)
    axes[1].set_title("mean per-step env reward")
    axes[2].plot(its, [m["rollout/falls_per_env_min"] for m in ro])
    axes[2].set_title("falls per env-minute (rollouts)")
    ess = [(m["iteration"], m["rwr/ess"] / max(m["rwr/kept"], 1)) for m in ro if "rwr/ess" in m]
    if ess:
        axes[3].plot(*zip(*ess, strict=True), "o-")
    axes[3].set_title("ESS / kept pieces (RWR weights)")
    axes[3].set_ylim(0, 1.05)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _groups(cfg) -> str:
    """The command groups the top quantile is taken in, as the page says them."""
    out = f"{cfg.yaw_classes} yaw classes"
    if cfg.speed_edges:
        out += f" x {len(cfg.speed_edges) + 1} speed classes split at {list(cfg.speed_edges)} m/s"
    if cfg.startup_steps:
        out += (
            f", each twice: pieces starting in an episode's first {cfg.startup_steps} steps apart"
        )
    if cfg.pitch_split:
        out += f", each twice: pieces starting {cfg.pitch_split} rad or more nose-down apart"
    return out


def write_page(run_dir: Path, out: Path) -> None:
    """experiments/finetune/README.md: success before/after, the learning curve, the settings."""
    run_dir, out = Path(run_dir), Path(out)
    cfg = load_config(run_dir)
    log = read_jsonl(run_dir / "metrics.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    plot_learning_curve(run_dir / "metrics.jsonl", out / "learning_curve.png")
    evals = [m for m in log if "eval/success_rate" in m]
    last = log[-1] if log else {}
    cmds = run_dir / "commands.txt"
    cmds = [c for c in cmds.read_text().splitlines() if c.strip()] if cmds.exists() else []
    cmd = " then ".join(f"`{c}`" for c in cmds) or "`dmpc finetune`"
    lines = [
        "# Interactive finetuning (reward-weighted regression)",
        "",
        f"Command: `make finetune` ({cmd}; run `{run_dir}`, "
        f"{last.get('iteration', 0)} of {cfg.iterations} iterations, "
        f"{last.get('env_steps', 0):,} env steps, {last.get('time/wall_s', 0) / 3600:.2f} h).",
        "",
        f"Starting point: `{cfg.pretrained}`. Rollouts: {cfg.n_envs} envs x {cfg.steps_per_iter} "
        f"steps per iteration, {_timeline(cfg)}, N = 1, "
        f"learned-reward guidance scale ~ U{tuple(cfg.guidance)} per env and episode, action "
        f"noise {cfg.action_noise}, commands vx ~ U{tuple(cfg.vx)} m/s, wz ~ U{tuple(cfg.wz)} "
        f"rad/s resampled every {cfg.resample_s:g} s, the demonstrator's randomisation, pushes, "
        "observation noise and latency"
        + (f" with {', '.join(f'`{x}`' for x in cfg.env_set)}" if cfg.env_set else "")
        + ", the paper's env reward (METHOD §7). Buffer: best "
        f"{cfg.buffer_size:,} pieces by mean per-step reward. R_nn refit every "
        f"{cfg.value_every} iteration(s) ({cfg.value_steps} steps); denoiser every "
        f"{cfg.denoiser_every} iterations ({cfg.denoiser_steps} steps, batch {cfg.batch_size}) on "
        f"the top {100 * cfg.top_quantile:g}% per group ({_groups(cfg)}; at most "
        f"{cfg.max_pieces}), "
        f"softmax weights with temperature {cfg.temperature}.",
        "",
        f"Success: the evaluation harness's `{cfg.eval_task}` task (`dmpc eval`: "
        f"{cfg.eval_episodes} episodes of 20 s at the task's command, pushes on, asynchronous "
        "receding horizon E = 11, D = 4, N = 1, no action noise), same keys at every point.",
        "",
        "| iteration | env steps | success | tracking err (m/s) |",
        "|---:|---:|---:|---:|",
    ]
    for m in evals:
        lines.append(
            f"| {m['iteration']} | {m.get('env_steps', 0):,} | "
            f"{100 * m['eval/success_rate']:.1f}% | {m['eval/tracking_err']:.3f} |"
        )
    lines += ["", "![learning curve](learning_curve.png)", "",
              "Per-iteration numbers (rollout reward, falls, buffer, kept fraction, effective "
              f"sample size, losses): `{run_dir}/metrics.jsonl`.", ""]  # fmt: skip
    lines += _evals_section(out)
    lines += _attempts_section(out, cfg)
    (out / "README.md").write_text("\n".join(lines))
    write_model_card(run_dir, cfg, log, out)


def write_model_card(
    run_dir: Path, cfg: FinetuneConfig, log: list[dict], page: Path, resumable: bool = False
) -> None:
    """The run's MODEL_CARD.md; ``resumable``: the run ships what a resume on another machine
    needs (``ckpt/`` of the newest step and ``kept.npz``), and the card says how to continue."""
    evals = [m for m in log if "eval/success_rate" in m]
    last = log[-1] if log else {}
    try:
        digest = checkpoint_digest(run_dir)
    except FileNotFoundError:
        digest = "none"
    lines = [
        f"# Model card: RWR-finetuned planner `{run_dir.name}`",
        "",
        f"- Produced by: `dmpc finetune` with `config.json` from `{cfg.pretrained}` "
        f"(`pretrain_config.json`, `scaler.json`, `robot.json` copied from it).",
        f"- Checkpoint `planner/` (`<iteration>@<digest>` {digest}); the run logged "
        f"{last.get('iteration', 0)} of {cfg.iterations} iterations, "
        f"{last.get('env_steps', 0):,} env steps, "
        f"{last.get('time/wall_s', 0) / 3600:.2f} h on 2 CPU cores. "
        + (f"The denoiser is an EMA (decay {cfg.ema_decay:g} per step) of the trained one"
           if getattr(cfg, "ema_decay", 0) else "The parameters are the trained ones (no EMA)")
        + "; `load_planner` reads this directory like a pretraining run.",
        "- Success at the evaluation task "
        + (f"`{cfg.eval_task}`: {100 * evals[0]['eval/success_rate']:.1f}% before, "
           f"{100 * evals[-1]['eval/success_rate']:.1f}% at iteration {evals[-1]['iteration']}"
           if evals else "not measured")
        + f" ({cfg.eval_episodes} episodes of 20 s); learning curve and table: `{page}/`.",
        "- Shipped: `planner/`, configs, `metrics.jsonl`, `tb/`. The training state (`ckpt/`) and "
        "the replay buffer (`buffer.npz`) stay on the machine that trained it.",
        "",
    ]  # fmt: skip
    if resumable:
        name = Path(run_dir).name
        lines[-2] = (
            "- Shipped to be continued anywhere: `planner/`, configs, `metrics.jsonl`, "
            "`eval_episodes.jsonl`, `tb/`, `ckpt/` (the newest step: parameters and both Adam "
            "states), `kept.npz` (the pieces the denoiser trains on, with the rest of the "
            "buffer counted per yaw class) and `rollout.npz` (every env's state, so the rollouts "
            "step on where they stopped). `buffer.npz` (the full buffer) stays behind: fresh "
            "rollouts refill it. Continue with "
            f"`dmpc finetune --config {run_dir}/config.json --run {name} --resume` (the run's own "
            "settings; `--iterations N` extends it)."
        )
    (run_dir / "MODEL_CARD.md").write_text("\n".join(lines))


def _evals_section(out: Path) -> list[str]:
    """Independent harness evaluations kept under ``out/eval_*/`` (``dmpc eval --cfg.out-dir``)."""
    rows = []
    for d in sorted(out.glob("eval_*")):
        if not (d / "results.json").exists():
            continue
        r = json.loads((d / "results.json").read_text())
        c, t = r["config"], r["controllers"]["task"]
        rows.append(
            f"| [`{d.name}`]({d.name}/README.md) | `{c['planner_run']}` | "
            f"{c['num_candidates']} | {c['episodes']} | "
            f"{c['seed']} | {100 * t['success_rate']:.1f}% | {t['tracking_err_m_per_s']:.3f} | "
            f"{t['mean_forward_vel']:.2f} | {t['energy_J_per_m']:.0f} |"
        )
    if not rows:
        return []
    return [
        "## Independent evaluation (fresh keys)",
        "",
        "`dmpc eval --cfg.task walk_1.0 --cfg.controllers task --cfg.episodes 128 --cfg.seed 1 "
        "--cfg.planner-run <run> --cfg.num-candidates <N> --cfg.out-dir "
        "experiments/finetune/<dir>`: the same harness with keys never used during finetuning.",
        "",
        "| page | planner | N | episodes | seed | success | \\|v - v_cmd\\| (m/s) | forward vel (m/s) | "
        "energy (J/m) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def _attempts_section(out: Path, cfg: FinetuneConfig) -> list[str]:
    """Earlier runs kept under ``out/attempt*/`` (config.json + metrics.jsonl, optional NOTE.md
    shown first): their settings where they differ from this run's, and their success rates."""
    lines = []
    for d in sorted(p for p in out.glob("attempt*") if (p / "metrics.jsonl").exists()):
        acfg = load_config(d)
        log = read_jsonl(d / "metrics.jsonl")
        plot_learning_curve(d / "metrics.jsonl", d / "learning_curve.png")
        diff = {k: v for k, v in to_dict(acfg).items() if to_dict(cfg)[k] != v}
        succ = ", ".join(
            f"{m['iteration']}: {100 * m['eval/success_rate']:.1f}%"
            for m in log if "eval/success_rate" in m
        )  # fmt: skip
        if not lines:
            lines = ["## Earlier attempts", ""]
        note = (d / "NOTE.md").read_text().strip() + " " if (d / "NOTE.md").exists() else ""
        lines += [
            f"- `{d.name}/` ({log[-1]['iteration']} iterations, "
            f"{log[-1].get('env_steps', 0):,} env steps). {note}Settings that differ from the run above: "
            + ", ".join(f"`{k}` = {v}" for k, v in diff.items())
            + f". Success by iteration: {succ}. Learning curve: `{d.name}/learning_curve.png`.",
        ]
    return lines + ([""] if lines else [])
