"""The page of ``dmpc eval-sweep``: a row per receding-horizon variant, the survival plot and
the falls."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dmpc_jax.report.markdown import falls_section, format_falls, format_rate
from dmpc_jax.scenario import outcomes


def rows_by_label(result: dict):
    """(label, row) of every variant and of the demonstrator."""
    yield from ((r["label"], r) for r in result["variants"])
    if "demonstrator" in result:
        yield "demonstrator (PPO)", result["demonstrator"]


def plot_survival(curves: dict, dt: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, c in curves.items():
        ax.plot(outcomes.fall_time_s(np.arange(len(c)), dt), 100 * c, label=label)  # after step t
    ax.set_xlabel("time (s)")
    ax.set_ylabel("robots still up (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency(row: dict) -> str:
    lat = row.get("plan_latency_ms")
    if not lat:
        return "-"
    s = f"{lat['median']:.1f}"
    return s + (f" (refresh {lat['refresh_median']:.1f})" if "refresh_median" in lat else "")


def write_page(result: dict, out: Path, command: str) -> None:
    """README.md of a sweep (``result`` carries its ``command``, results.json is written by the
    caller)."""
    (out / "README.md").write_text(render_sweep_page({**result, "command": command}))


def is_sweep_result(result: dict) -> bool:
    return {"task", "config", "variants", "command"} <= set(result)


def render_sweep_page(result: dict) -> str:
    """A sweep's README.md from its results.json alone."""
    cfg, command = result["config"], result["command"]
    lines = [
        "# Receding-horizon settings in closed loop",
        "",
        f"Command: `{command}`",
        "",
        f"Planner `{cfg['planner_run']}`, task `{result['task']}`, {cfg['episodes']} episodes of "
        f"{cfg['episode_s']:g} s per row, pushes, domain randomisation, sensor noise and latency on, "
        f"the same keys (seed {cfg['seed']}) for every row. E: actions executed per plan; D: "
        "actions of the old chunk still to run when the next plan starts (its latency budget); "
        "warm: reverse steps skipped by starting from the previous plan; N: candidates; "
        "sampler: `ddim<S>` S strided DDIM steps, `cache<R>` the last R of K steps from an "
        "early-step cache refreshed on reset and on a command change > 0.5 (diffusion scale), "
        "DDPM (all K steps) when absent. Plan latency: one robot, one plan call, median over "
        f"{cfg.get('latency_calls', 0)} calls on this machine (with a cache: from a fresh cache; "
        "a refresh costs a full plan). "
        "Success [Wilson 95% interval] under the `strict` rule (ours: no base/knee contact, "
        "feet-only model), the `paper` rule (the authors' roll > 1.0 / pitch > 1.6 rad only, "
        "full-contact model) and the authors' `box` count (leaving a 3.3 m box before failing "
        "is a success); falls by cause from the strict rollout. Energy: work over forward "
        "distance pooled over every episode's steps before its fall (as on every page).",
        "",
        "| variant | plans every | "
        + " | ".join(f"success: {r}" for r in cfg["rules"])
        + " | falls (strict) | \\|v - v_cmd\\| (m/s) | forward vel (m/s) | energy (J/m) "
        "| plan p50 (ms) |",
        "|---|---:|" + "---:|" * len(cfg["rules"]) + "---|---:|---:|---:|---:|",
    ]
    rows = [(label, r.get("plans_every", 1), r) for label, r in rows_by_label(result)]
    for label, every, r in rows:
        succ = " | ".join(format_rate(r["success"][k]) for k in cfg["rules"])
        lines.append(
            f"| {label} | {every} | {succ} | {format_falls(r['falls']['strict'])} | "
            f"{r['tracking_err_m_per_s']:.3f} | {r['mean_forward_vel']:.2f} | "
            f"{r['energy_J_per_m']:.0f} | {_latency(r)} |"
        )
    lines += ["", "![survival](survival.png)", ""]
    lines += falls_section(dict(rows_by_label(result)))
    return "\n".join(lines)
