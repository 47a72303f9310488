"""The sim2sim pages: the walking runs (``dmpc sim2sim``) and the fault table
(``dmpc sim2sim-faults``). No JAX: the simulated robot's process imports ``sim2sim``."""

from __future__ import annotations

from pathlib import Path


def _num(v, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"  # "-": not recorded by the run's version


def _switch_cell(r: dict) -> str:
    sw = r.get("switch")
    if not sw:
        return "- |"
    b, a = sw["before"], sw["after"]
    return (
        f"{b['forward_speed_m_per_s']:.2f}, {_num(b.get('energy_J_per_m'), 0)} / "
        f"{a['forward_speed_m_per_s']:.2f}, {_num(a.get('energy_J_per_m'), 0)} | "
    )


def _switch_summary(summary: dict, cfg) -> list[str]:
    """Median speed and energy before and after the switch over the runs that walked past it."""
    import numpy as np

    sw = [r["switch"] for r in summary["runs"] if r.get("switch")]
    if not sw:
        return ["", f"No run walked past the switch at {cfg.switch_at:g} s."]

    def med(part, key):
        v = [s[part].get(key) for s in sw if s[part].get(key) is not None]
        return float(np.median(v)) if v else float("nan")

    return [
        "",
        f"The switch to `{cfg.switch_to}` at {cfg.switch_at:g} s of walking, over the {len(sw)} "
        "runs that walked past it (median; energy: the motors' mechanical work over the forward "
        f"distance): speed {med('before', 'forward_speed_m_per_s'):.2f} -> "
        f"{med('after', 'forward_speed_m_per_s'):.2f} m/s, energy "
        f"{med('before', 'energy_J_per_m'):.0f} -> {med('after', 'energy_J_per_m'):.0f} J/m.",
    ]


def _fell(r: dict) -> str:
    if r["fell"]:
        return "**yes**"
    return "after the stop" if r.get("fell_after_stop") else "no"


def _planner_text(cfg, summary: dict) -> str:
    return (
        f"the exported planner (`{summary['source_checkpoint']}`, N = {cfg.num_candidates}, "
        f"{cfg.sampler}) in its own {'process' if cfg.planner_process else 'thread'}"
        + (f" pinned by --cfg.planner-cpus {cfg.planner_cpus}" if cfg.planner_process else "")
        + ", E = 11 / D = 4 unless the start-up check raised D (auto-margin), publishing "
        "rt/lowcmd at 500 Hz. Before each run the plan is timed against its budget "
        "(`deploy/budget.py`): "
        + "; ".join(
            f"seed {r['seed']}: p50 {r['start_budget']['p50_ms']:.1f} / p99 "
            f"{r['start_budget']['p99_ms']:.1f} ms, D = {r['start_budget']['margin']}"
            for r in summary["runs"][:3]
        )
        + ("; ..." if len(summary["runs"]) > 3 else "")
        + "."
    )


def _demonstrator_text(summary: dict) -> str:
    return (
        f"the exported PPO demonstrator (`{summary['source_checkpoint']}`, "
        "`dmpc export-demonstrator`), called in the loop at every 50 Hz policy step, its action "
        "checked as a plan row, publishing rt/lowcmd at 500 Hz."
    )


def write_sim2sim_page(cfg, summary: dict, out: Path) -> None:
    """experiments/sim2sim/README.md: a row per run (``dmpc sim2sim``)."""
    (Path(out) / "README.md").write_text(render_sim2sim_page(cfg, summary))


def is_sim2sim_result(result: dict) -> bool:
    """A ``dmpc sim2sim`` results.json (its config and a record per run)."""
    cfg = result.get("config")
    return isinstance(cfg, dict) and {"walk_s", "sim", "repeats"} <= cfg.keys() and "runs" in result


def render_sim2sim_result(result: dict) -> str:
    """The page of a sim2sim results.json from that file alone (``dmpc check-pages``)."""
    import dataclasses
    from types import SimpleNamespace

    from dmpc_jax.deploy.sim2sim import Sim2SimConfig

    # the recorded fields over the defaults, unvalidated: rendering needs no unitree_mujoco checkout
    cfg = {
        f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(Sim2SimConfig)
    }
    return render_sim2sim_page(SimpleNamespace(**{**cfg, **result["config"]}), result)


def render_sim2sim_page(cfg, summary: dict) -> str:
    """The sim2sim page's text: a row per run."""
    nan = float("nan")
    peer = cfg.sim == "unitree"
    demo = getattr(cfg, "controller", "planner") == "demonstrator"
    switch = bool(cfg.switch_to)
    rows = []
    for r in summary["runs"]:
        st = r["runner"]
        lat, per = st.get("plan_latency_ms", {}), st.get("lowcmd_period_ms", {})
        rows.append(
            f"| {r['seed']} | {r['walked_s']:.2f} s | {_fell(r)} | "
            f"{'; '.join(st['faults']) or 'none'} | {r.get('path_length_m', 0):.2f} m | "
            f"{r.get('mean_forward_speed_m_per_s', 0):.2f} / "
            f"{r.get('mean_lateral_speed_m_per_s', 0):.2f} | "
            f"{r.get('mean_yaw_rate_rad_per_s', 0):.2f} | {_num(r.get('energy_J_per_m'), 0)} | "
            + (_switch_cell(r) if switch else "")
            + f"{_num(r.get('start_rise_m'), 3)} / {_num(r.get('start_tilt_rad'), 2)} | "
            f"{lat.get('p50', nan):.1f} / {lat.get('p99', nan):.1f} | "
            f"{per.get('p50', nan):.2f} / {per.get('p99', nan):.2f} | "
            f"{r['sim']['lowcmd_received']} ({r['sim']['lowcmd_bad_crc']}) | "
            f"{r['sim']['late_ticks']} / {r['sim']['ticks']} |"
        )
    n, ok = summary["repeats"], summary["successes"]
    lines = [
        "# sim2sim: the deploy runner drives "
        + ("Unitree's own MuJoCo Go2 (unitree_mujoco)" if peer else "a native-MuJoCo Go2")
        + " over DDS",
        "",
        f"Command: `make sim2sim` (`dmpc sim2sim --cfg.planner-run {cfg.planner_run} "
        f"--cfg.repeats {cfg.repeats} --cfg.seed {cfg.seed} --cfg.walk-s {cfg.walk_s:g} "
        f"--cfg.command {' '.join(f'{c:g}' for c in cfg.command)} --cfg.sampler {cfg.sampler} "
        f"--cfg.planner-cpus {cfg.planner_cpus}"
        + (f" --cfg.task {cfg.task}" if cfg.task else "")
        + (
            f" --cfg.switch-to {cfg.switch_to} --cfg.switch-at {cfg.switch_at:g}"
            if cfg.switch_to
            else ""
        )  # fmt: skip
        + (f" --cfg.blend-s {cfg.blend_s:g}" if cfg.blend_s else "")
        + (" --cfg.sim unitree --cfg.unitree-mujoco <checkout>" if peer else "")
        + (" --cfg.controller demonstrator" if cfg.controller == "demonstrator" else "")
        + f"{' --cfg.auto-margin' if cfg.auto_margin else ''}`). Processes on one machine, DDS "
        f"on `{cfg.interface}` (domain {cfg.domain}): "
        + (
            "Unitree's Go2 model and Python bridge from their unitree_mujoco "
            f"(`{summary['runs'][0]['sim'].get('physics_dt', 0) * 1e3 if summary['runs'] else 0:g}"
            " ms` physics, their setting; tau computed at each LowCmd and held until the next; "
            "run headless on a flat floor with our firmware stamps, tick and CRC, on its "
            "rt/lowstate: `dmpc_jax/deploy/unitree_peer.py`; a fresh process per run, starting "
            "lying down) publishes rt/lowstate at every physics step"
            if peer
            else "the simulated Go2 (native MuJoCo, full "
            f"collision geometry, {1e3 * cfg.physics_dt:g} ms physics, motor PD on the LowCmd "
            "fields, CRC checked, a fresh process per run, starting lying down) publishes "
            "rt/lowstate at 500 Hz"
        )
        + "; the runner (`dmpc_jax/deploy/runner.py`) reads it, stands the robot up (2 s), and "
        f"walks it for {cfg.walk_s:g} s at the command {tuple(cfg.command)} with "
        + (_demonstrator_text(summary) if demo else _planner_text(cfg, summary)),
        "",
        f"**{ok} of {n} runs walked {cfg.walk_s:g} s without falling or a fault.**",
        "",
        "Fell: the base below 0.15 m or roll/pitch beyond 1 rad while walking; before and after "
        "the walk only roll/pitch beyond 1 rad (sitting down in damping is no fall). A run ends "
        "as `dmpc deploy` ends one, with damping (runs made before that existed just stopped "
        "sending); a fall after a walk that ended by time is marked `after the stop` and does "
        "not fail the walk, a fall after a fault is the fault's.",
        "",
        "| seed | walked | fell | faults (-> damping) | path | forward / lateral speed, body "
        "frame (m/s) | yaw rate (rad/s, command 0) | energy (J/m) | "
        + (
            f"before / after the switch to {cfg.switch_to}: speed (m/s), energy (J/m) | "
            if switch
            else ""
        )
        + "start: base rise in 0.5 s (m) / max tilt in 1 s (rad) | plan latency p50 / p99 (ms, budget 80) | "
        "LowCmd period p50 / p99 (ms, target 2) | LowCmd received (bad CRC) | "
        + (
            "robot ticks caught up (stepped late, to keep real time) / ticks |"
            if summary["runs"][0]["sim"].get("pacing") == "real time"
            else ("robot physics steps late > 1 step |" if peer else "robot ticks late > 2 ms |")
        ),
        "|---:|---:|---|---|---:|---:|---:|---:|"
        + ("---|" if switch else "")
        + "---:|---:|---:|---:|---:|",
        *rows,
        *(_switch_summary(summary, cfg) if switch else []),
        "",
        f"Artifact: {summary['artifact_bytes'] / 1e6:.1f} MB, loaded in "
        f"{summary['artifact_load_s']:.2f} s; the first call (XLA compile) takes "
        f"{summary['runs'][0]['planner_warmup_s']:.1f} s and is made before the loop starts.",
        "The yaw drift: the observation has no heading, so a zero yaw-rate command is tracked "
        "through the gyro only.",
        "",
        "Machine: the 2-core CPU development machine (the planner and the simulator share it). "
        "Numbers: `results.json`; base trajectories (50 Hz): `trajectory_<seed>.json.gz`.",
        "",
    ]
    return "\n".join(lines)


def write_faults_page(cfg, summary: dict) -> None:
    """The fault table ``cfg.out`` (``dmpc sim2sim-faults``)."""

    def ms(v):
        return "-" if v is None else f"{v:.1f}"

    lines = [
        "# sim2sim: faults injected over real DDS",
        "",
        f"Command: `make sim2sim-faults` (`dmpc sim2sim-faults --cfg.fault-at-s {cfg.fault_at_s:g} "
        f"--cfg.after-s {cfg.after_s:g}{' --cfg.sim.auto-margin' if cfg.sim.auto_margin else ''}`). "
        "The runner walks the simulated Go2 (native MuJoCo, its "
        f"own process, DDS on `{cfg.sim.interface}`) at {tuple(cfg.sim.command)} with the exported "
        f"planner (`{summary['source_checkpoint']}`) in its own process; {cfg.fault_at_s:g} s "
        f"after walking starts one fault is injected and the run goes on {cfg.after_s:g} s. "
        "Detection: after the injection, by the runner (both processes log `time.monotonic`); "
        "damping received: after the detection, at the simulator (one tick = 2 ms). Commands "
        "out of range / over torque: every LowCmd the simulator received in the run, against "
        "the joint limits and (PD torque before the motors' clamp) the torque limits.",
        "",
        "| fault | detected as | detection (ms) | damping received (ms) | LowCmds out of joint "
        "range | LowCmds over torque (max ratio) | robot at the end | earlier faults |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in summary["rows"]:
        end = "**fell**" if r["fell"] else ("sat down" if r["sat_down"] else "standing")
        end += f" (z {r['end_base_height_m']:.2f} m, tilt {r['end_tilt_rad']:.2f} rad)"
        lines.append(
            f"| {r['fault']} | {r['detected'] or '**not detected**'} | {ms(r['detection_ms'])} | "
            f"{ms(r['damping_received_ms'])} | {r['lowcmd_out_of_joint_range']} | "
            f"{r['lowcmd_over_torque']} ({r['lowcmd_max_torque_ratio']:.2f}) | {end} | "
            f"{'; '.join(r['faults_before_injection']) or 'none'} |"
        )
    lines += ["", f"Numbers: `{Path(cfg.out).with_suffix('.json').name}` beside this page.", ""]
    Path(cfg.out).write_text("\n".join(lines))
