"""The pages of ``dmpc eval`` and ``dmpc eval-suite``: each task's README (table, verdict,
falls, plot, video) and the suite summary ``experiments/tasks/README.md``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dmpc_jax.report.markdown import falls_section, format_falls, format_rate


def write_summary(results: list[dict], cfg, tasks) -> None:
    """``experiments/tasks/README.md``: one row per task of the suite."""
    out = Path("experiments/tasks")
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Test-time tasks: one trained planner, new rewards and bounds, no retraining",
        "",
        f"Command: `make eval-suite PLANNER={cfg.planner_run}` (`dmpc eval-suite --cfg.planner-run {cfg.planner_run} "
        f"--cfg.episodes {cfg.episodes} "
        f"--cfg.episode-s {cfg.episode_s:g} --cfg.num-candidates {cfg.num_candidates} "
        f"--tasks {' '.join(tasks)}`). {cfg.episodes} episodes of {cfg.episode_s:g} s per "
        "controller, pushes, domain randomisation, sensor noise and latency on; the same keys for "
        "every controller. Success with Wilson 95% intervals under three rules on the same keys "
        "(`strict`: ours, no base/knee contact, feet-only model; `paper`: the authors' roll > 1.0 / "
        "pitch > 1.6 limits on the full-contact model; `box`: the authors' count, which also "
        "scores leaving a 3.3 m box as a success). Analytic task rewards guide "
        + ("the clean estimate x0_hat" if cfg.analytic_on_x0 else "the noisy sample x_k")
        + f" (E = {cfg.execute}, D = {cfg.margin}, N = {cfg.num_candidates}). "
        "Nominal: the planner at the task's command with learned-reward "
        "guidance only. Verdict: the measured quantity moved as intended against the nominal "
        "planner by the issue's margin (hard bounds: zero violations in executed actions and "
        "executed planned states), with strict success >= 90%.",
        "",
        "| task | what | task success: strict / paper / box | strict success (nominal / unguided / PPO) | task falls (strict) | measure | task | nominal | verdict |",
        "|---|---|---|---:|---|---|---:|---:|---|",
    ]
    for r in results:
        c, m, v = r["controllers"], r["measure"], r["verdict"]
        rules = c.get("task", {}).get("success", {})
        task_succ = "<br>".join(f"{k}: {format_rate(x)}" for k, x in rules.items())
        succ = " / ".join(
            f"{100 * c[k]['success_rate']:.0f}%" if k in c else "-"
            for k in ("nominal", "unguided", "demonstrator")
        )
        falls = format_falls(c["task"]["falls"]["strict"]) if "task" in c else "-"
        val = {k: f"{c[k][m]:.3f}" if k in c and m in c[k] else "-" for k in ("task", "nominal")}
        desc = r["description"].replace("|", "\\|")
        if m == "constraint_violations" and v.get("checked"):
            moved = ["bounds held (planned and executed)" if v["moved"] else "**bounds violated**"]
        else:
            moved = [] if v.get("moved") is None else ["moved" if v["moved"] else "**not moved**"]
        ok = "-" if not v.get("checked") else ", ".join(
            moved
            + ["success ok" if v["success_ok"] else "**success < 90%**"]
        )  # fmt: skip
        lines.append(
            f"| [{r['task']}]({r['task']}/README.md) | {desc} | {task_succ or '-'} | {succ} | "
            f"{falls} | `{m}` | "
            f"{val['task']} | {val['nominal']} | {ok} |"
        )
    lines += ["", "Each task's page has the full table (success under every rule for every "
              "controller, energy, height, joint RMS, latency), the falls of every controller by "
              "cause with their time and attitude, a time-series plot and a video.", ""]  # fmt: skip
    (out / "README.md").write_text("\n".join(lines))


COLUMNS = (
    ("tracking_err_m_per_s", "\\|v - v_cmd\\| (m/s)", lambda v: f"{v:.3f}"),
    ("mean_forward_vel", "forward vel (m/s)", lambda v: f"{v:.2f}"),
    ("energy_J_per_m", "energy (J/m)", lambda v: f"{v:.1f}"),
    ("base_height_m", "base height (m)", lambda v: f"{v:.3f}"),
    ("joint_vel_rms", "qdot RMS (rad/s)", lambda v: f"{v:.2f}"),
    ("joint_acc_rms", "qddot RMS (rad/s²)", lambda v: f"{v:.0f}"),
    ("rear_lift_err_rad", "rear-leg lift err (rad)", lambda v: f"{v:.3f}"),
    ("action_violations", "bound violations: executed actions", lambda v: f"{v}"),
    ("planned_state_violations", "bound violations: executed planned states", lambda v: f"{v}"),
)


def write_results(cfg, result: dict, traces: dict, env, out: Path) -> None:
    """``results.json``, README.md, the time-series plot and (``cfg.video``) the task video."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(traces, env.cfg.ctrl_dt, out / "timeseries.png")
    if cfg.video and "task" in traces:
        from dmpc_jax.evaluate.video import render_qpos, save_video

        frames = render_qpos(env.mj_model, np.asarray(traces["task"]["qpos"])[:500:2, 0])
        save_video(frames, out / "task.mp4", fps=25)
    (out / "README.md").write_text(render_task_page(result))


def is_task_result(result: dict) -> bool:
    """A ``dmpc eval`` results.json of the current format (success under every rule)."""
    return {"task", "controllers", "verdict", "config", "spec"} <= set(result) and all(
        isinstance(row, dict) and "success" in row for row in result["controllers"].values()
    )


def render_task_page(result: dict) -> str:
    """A task's README.md from its results.json alone."""
    from dmpc_jax.config import from_dict
    from dmpc_jax.evaluate.planner_eval import EvalConfig

    cfg = from_dict(EvalConfig, result["config"])
    ctrl = result["controllers"]
    lines = [
        f"# Task `{result['task']}`",
        "",
        f"Command: `{cfg.command_line()}` (planner `{cfg.planner_run}`, demonstrator "
        f"`{cfg.demonstrator_run}`).",
        "",
        f"{cfg.episodes} episodes of {cfg.episode_s:g} s per controller, command "
        f"{tuple(result['spec']['command'])}, pushes {result['env']['pushes_m_per_s']} m/s every "
        f"{result['env']['push_interval_s']} s, domain randomisation and observation noise/latency "
        "on; every controller sees the same keys"
        + (f" (env overrides: {', '.join(cfg.env_set)})" if cfg.env_set else "")
        + f". Planner: {cfg.mode} receding horizon E = {cfg.execute}"
        + (f", D = {cfg.margin}" if cfg.mode == "async" else "")
        + (", in-flight actions inpainted" if cfg.inpaint_committed else "")
        + f", N = {cfg.num_candidates}, {cfg.method}; analytic rewards guide "
        + ("x0_hat." if cfg.analytic_on_x0 else "x_k."),
        "",
        "Success [Wilson 95% interval] under each rule, same keys: `strict` (ours: no base or "
        "knee contact, no roll/pitch limit, feet-only model), `paper` (the authors' limits: roll "
        "> 1.0 or pitch > 1.6 rad only, full-contact model), `box` (the authors' count: `paper`, "
        "and an episode that leaves a 3.3 m box before failing is a success). Every other column "
        "comes from the strict rollout.",
        "",
        "| controller | "
        + " | ".join(f"success: {r}" for r in cfg.rules)
        + " | "
        + " | ".join(c[1] for c in COLUMNS)
        + " | plan latency (ms, 1 robot) |",
        "|---|" + "---:|" * (len(cfg.rules) + len(COLUMNS) + 1),
    ]
    for name, row in ctrl.items():
        lat = row.get("plan_latency_ms")
        rules = [format_rate(row["success"][r]) for r in cfg.rules]
        cells = [f(row[k]) if k in row else "-" for k, _, f in COLUMNS]
        lat_s = f"{lat['median']:.1f} (p90 {lat['p90']:.1f})" if lat else "-"
        lines.append(f"| {name} | " + " | ".join(rules + cells) + f" | {lat_s} |")
    v = result["verdict"]
    lines += ["", f"Measured quantity: `{result['measure']}`; "]
    if v.get("checked") and v["moved"] is not None:
        lines[-1] += (
            f"moved as intended: **{'yes' if v['moved'] else 'no'}**"
            + (f" (change vs nominal {v['change']:+.4f})" if "change" in v else "")
            + (
                f" (relative change {100 * v['relative_change']:+.1f}%)"
                if "relative_change" in v
                else ""
            )
            + f"; strict success >= 90%: **{'yes' if v['success_ok'] else 'no'}**."
        )
    elif v.get("checked"):
        lines[-1] += f"strict success >= 90%: **{'yes' if v['success_ok'] else 'no'}**."
    for name, row in ctrl.items():
        for field, frac in row.get("measured_over_frac", {}).items():
            lines += ["", f"{name}: the task bounds planned `{field}`; the robot's measured "
                      f"`{field}` lay outside the bound in {100 * frac:.1f}% of joint-steps on the "
                      "bounded joints (the projection bounds the plan, not the physics)."]  # fmt: skip
    lines += [
        "",
        "Energy (one definition on every page): mechanical work sum |tau . qdot| dt over the "
        "forward distance walked, pooled over every episode's steps before its fall. Bound "
        "violations: executed (step, joint) actions outside the task's action bounds, and executed "
        "plan rows whose planned q / qdot lies outside a state bound (row 0's state is the "
        "measured one, inpainted); steps before a fall.",
        "",
        *falls_section(ctrl),
        "![time series](timeseries.png)",
        "",
        "Video: `task.mp4` (first episode of the task controller, 10 s). Numbers: `results.json`.",
        "",
    ]
    return "\n".join(lines)


def _plot(traces: dict, dt: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    for name, tr in traces.items():
        alive = ~np.asarray(tr["done_any"])
        t = np.arange(alive.shape[0]) * dt
        for ax, series in zip(
            axes,
            (np.asarray(tr["state/forward_vel"]), np.asarray(tr["qpos"])[..., 2],
             np.asarray(tr["state/mech_power"])),
            strict=True,
        ):  # fmt: skip
            mean = (series * alive).sum(1) / np.maximum(alive.sum(1), 1)
            ax.plot(t, mean, label=name, lw=1)
        axes[0].plot(t, alive.mean(1), ls=":", lw=0.8, color="gray") if name == "task" else None
    for ax, title in zip(
        axes, ("forward velocity (m/s)", "base height (m)", "mechanical power (W)"), strict=True
    ):
        ax.set_title(title + ", mean over standing envs")
        ax.set_xlabel("t (s)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
