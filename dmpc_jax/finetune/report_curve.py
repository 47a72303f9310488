"""The learning-curve page of a finetuning run (``dmpc finetune-curve``): success under the box,
paper and strict rules against env steps with 95% intervals, beside R_nn's fit, the RWR weights'
effective sample size, the kept fraction, falls per env-minute and where the wall time goes; the
slope of each rule's curve and the env steps it projects to its target. ``curve_results`` reads
the run directory (metrics.jsonl, eval_episodes.jsonl) into results.json; ``write_curve_page``
renders README.md and curve.png from results.json alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dmpc_jax.finetune.config import load_config
from dmpc_jax.report.logger import read_jsonl
from dmpc_jax.scenario import outcomes

RULES = ("box", "paper", "strict")
TARGETS = {"box": 0.988, "paper": 0.97, "strict": 0.90}  # the finetuning issue's acceptance
SERIES = {  # per-iteration metric -> the page's name for it
    "rollout/reward_per_step": "reward_per_step",
    "rollout/falls_per_env_min": "falls_per_env_min",
    "loss/value": "rnn_loss",
    "loss/a0_mse": "kept_a0_mse",
    "rwr/kept_fraction": "kept_fraction",
    "rwr/ess_batch_fraction": "ess_batch_fraction",
    "rwr/ess_mean": "ess_mean",
    "rwr/ess_return": "ess_return",
    "rwr/kept": "kept",
}
TIMES = {"rollouts": "time/rollout_s", "R_nn refits": "time/value_s",
         "denoiser updates": "time/update_s", "evaluation": "eval/wall_s"}  # fmt: skip


def fit_slope(steps: np.ndarray, rates: np.ndarray) -> dict:
    """Least-squares line of success rate against env steps: slope per million env steps,
    intercept; None where fewer than two points."""
    if len(steps) < 2:
        return {"per_million": None, "intercept": None}
    a, b = np.polyfit(np.asarray(steps, float) / 1e6, np.asarray(rates, float), 1)
    return {"per_million": float(a), "intercept": float(b)}


def projected_steps(fit: dict, target: float) -> float | None:
    """Env steps at which the fitted line reaches ``target``; None if it never rises."""
    if not fit["per_million"] or fit["per_million"] <= 0:
        return None
    return float(1e6 * (target - fit["intercept"]) / fit["per_million"])


def curve_results(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    log = read_jsonl(run_dir / "metrics.jsonl")
    per_iter = cfg.n_envs * cfg.steps_per_iter
    points = []
    for m in log:
        if "eval/success_rate" not in m:
            continue
        p = {"iteration": m["iteration"], "env_steps": m["iteration"] * per_iter}
        for rule in RULES:
            if f"eval/{rule}" in m:
                p[rule] = [m[f"eval/{rule}"], m[f"eval/{rule}_lo"], m[f"eval/{rule}_hi"]]
        p["tracking_err"] = m.get("eval/tracking_err")
        points.append(p)
    # each point against the starting planner on the same keys, episode by episode
    episodes = {r["iteration"]: r for r in read_jsonl(run_dir / "eval_episodes.jsonl")} if (
        run_dir / "eval_episodes.jsonl").exists() else {}  # fmt: skip
    first = episodes.get(points[0]["iteration"]) if points else None
    for p in points:
        now = episodes.get(p["iteration"])
        if first is not None and now is not None and p is not points[0]:
            p["vs_start"] = {r: outcomes.paired(first[r], now[r]) for r in RULES
                             if r in first and r in now}  # fmt: skip
    series = {"env_steps": [m["iteration"] * per_iter for m in log if m["iteration"] > 0]}
    for key, name in SERIES.items():
        series[name] = [m.get(key) for m in log if m["iteration"] > 0]
    times = {name: float(sum(m.get(key, 0.0) for m in log)) for name, key in TIMES.items()}
    done = max((m["iteration"] for m in log), default=0)
    fits = {}
    for rule in RULES:
        pts = [(p["env_steps"], p[rule][0]) for p in points if rule in p]
        fit = fit_slope(*map(np.asarray, zip(*pts, strict=True))) if pts else fit_slope([], [])
        fit["projected_env_steps"] = projected_steps(fit, TARGETS[rule])
        fits[rule] = fit
    return {
        "run": str(run_dir),
        "config": json.loads((run_dir / "config.json").read_text()),
        "env_steps": done * per_iter,
        "env_steps_target": cfg.iterations * per_iter,
        "episodes_per_point": cfg.eval_episodes,
        "points": points,
        "series": series,
        "time_s": times,
        "env_steps_per_s_rollouts": done * per_iter / times["rollouts"]
        if times["rollouts"]
        else None,
        "targets": TARGETS,
        "fits": fits,
    }


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def plot_curve(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    for rule in RULES:
        pts = [(p["env_steps"] / 1e6, *p[rule]) for p in res["points"] if rule in p]
        if pts:
            x, y, lo, hi = map(np.asarray, zip(*pts, strict=True))
            axes[0].errorbar(x, y, yerr=[y - lo, hi - y], fmt="o-", capsize=3, label=rule)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_title(f"success, {res['episodes_per_point']} episodes (95% CI)")
    axes[0].legend(fontsize=8)
    s = res["series"]
    x = np.asarray(s["env_steps"], float) / 1e6
    axes[1].plot(x, s["falls_per_env_min"])
    axes[1].set_title("falls per env-minute (rollouts)")

    def dots(ax, name, label):
        pts = [(a, b) for a, b in zip(x, s[name], strict=True) if b is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", ms=3, label=label)

    dots(axes[2], "rnn_loss", "R_nn loss")
    dots(axes[2], "kept_a0_mse", "first-action MSE (kept)")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=8)
    axes[2].set_title("fits")
    dots(axes[3], "ess_batch_fraction", "ESS / batch")
    dots(axes[3], "kept_fraction", "kept fraction")
    axes[3].set_ylim(0, 1.05)
    axes[3].legend(fontsize=8)
    axes[3].set_title("RWR weights")
    for ax in axes:
        ax.set_xlabel("env steps (M)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_curve_page(res: dict, out: Path, command: str) -> None:
    """README.md and curve.png of ``out`` from ``res`` (``curve_results``), which is also written
    as results.json with the ``command`` that made it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = {**res, "command": command}
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    plot_curve(res, out / "curve.png")
    (out / "README.md").write_text(render_curve_page(res))


def is_curve_result(res: dict) -> bool:
    return {"points", "fits", "series", "time_s", "command"} <= set(res)


def render_curve_page(res: dict) -> str:
    """The learning-curve README.md from its results.json alone."""
    command = res["command"]
    lines = [
        f"# Learning curve: `{res['run']}`",
        "",
        f"Made by `{command}` from the run's metrics.jsonl (numbers: results.json). "
        f"{res['env_steps'] / 1e6:.2f} M of {res['env_steps_target'] / 1e6:.1f} M env steps. "
        f"Success on `{res['config']['eval_task']}` (20 s, pushes, DR, noise, latency), "
        f"{res['episodes_per_point']} episodes on the same keys at every point, planned as "
        "`dmpc eval` plans (N = 1, DDPM-10).",
        "",
        "![curve](curve.png)",
        "",
        "| env steps (M) | box | paper | strict | \\|v - v_cmd\\| (m/s) | strict vs start: won / lost (p) |",
        "|---:|---|---|---|---:|---|",
    ]
    for p in res["points"]:
        cells = [
            f"{_pct(p[r][0])} [{100 * p[r][1]:.1f}, {100 * p[r][2]:.1f}]" if r in p else "-"
            for r in RULES
        ]
        err = p.get("tracking_err")
        vs = p.get("vs_start", {}).get("strict")
        vs = "-" if vs is None else f"{vs['won']} / {vs['lost']} ({vs['p_value']:.2g})"
        lines.append(f"| {p['env_steps'] / 1e6:.2f} | " + " | ".join(cells)
                     + f" | {'-' if err is None else f'{err:.3f}'} | {vs} |")  # fmt: skip
    lines += ["", "| rule | target | slope (points per M env steps) | projected env steps |",
              "|---|---:|---:|---:|"]  # fmt: skip
    for rule in RULES:
        f = res["fits"][rule]
        slope = "-" if f["per_million"] is None else f"{100 * f['per_million']:+.2f}"
        proj = f["projected_env_steps"]
        when = ("-" if f["per_million"] is None else "never (flat or falling)") if proj is None \
            else f"{proj / 1e6:.1f} M"  # fmt: skip
        lines.append(f"| {rule} | {_pct(res['targets'][rule])} | {slope} | {when} |")
    t = res["time_s"]
    total = sum(t.values()) or 1.0
    rate = res["env_steps_per_s_rollouts"]
    lines += ["", "Where the wall time went (2 CPU cores):", "",
              "| part | s | share |", "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {k} | {v:.0f} | {100 * v / total:.0f}% |" for k, v in t.items()]
    lines += ["", f"Rollouts: {'-' if rate is None else f'{rate:.0f}'} env steps/s with the planner "
              "in the loop."]  # fmt: skip
    return "\n".join(lines) + "\n"
