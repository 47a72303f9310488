"""``make sim2sim``: the deploy runner walks a Go2 simulated in native MuJoCo, over real DDS.

Two processes, as on the robot: ``serve`` simulates the Go2 (full collision geometry, 1 ms physics,
no MJX) and behaves like its low-level firmware: it publishes rt/lowstate at 500 Hz and applies the
newest rt/lowcmd as motor PD torques (tau = kp (q* - q) + kd (dq* - dq) + tau_ff, clipped to the
torque limits, recomputed every physics step; commands with a bad CRC are dropped). The robot starts
lying down. ``run_sim2sim`` starts it, drives it with ``deploy.runner.Runner`` over
``DdsTransport`` and the exported planner, and writes experiments/sim2sim/ (results.json, README.md).
DDS domain and interface are configurable; loopback by default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dmpc_jax.envs.obs import roll_pitch
from dmpc_jax.paths import DEFAULT_PLANNER
from dmpc_jax.robot import go2

LIE_DOWN_POSE = np.tile([0.0, 1.36, -2.65], 4)  # model order (FL, FR, RL, RR)


@dataclasses.dataclass(frozen=True)
class Sim2SimConfig:
    """Attributes:
    exported: exported planner directory; (re)created from ``planner_run`` with
        ``num_candidates`` when absent or exported from another run or N.
    planner_run: the planner run exported when ``exported`` does not exist.
    num_candidates: N of that export.
    sampler: its sampling path (``ddpm``, ``ddim<S>``, ``cache<R>``: ``dmpc export --sampler``).
    command: velocity command while walking.
    walk_s: seconds of walking after the planner takes over.
    stand_s: stand-up interpolation.
    domain, interface: DDS domain id and network interface (``lo``: loopback).
    physics_dt: MuJoCo step of the simulated robot, s.
    out_dir: where results.json and README.md go.
    seed: planner key seed of the first run.
    repeats: runs, each with a fresh robot process and the next seed.
    budget_calls: timed plan calls before each run for the start-up budget check
        (``deploy/budget.py``): a plan p99 over D x 20 ms is refused with the numbers.
    auto_margin: instead of refusing, use the smallest D < E whose budget the p99 fits.
    budget_headroom: the measured p99 is multiplied by this before the comparison (the
        loop's own load is not in the measurement).
    planner_process: run the planner in its own process (``deploy/planner_process.py``), so the
        500 Hz loop and the state reader never wait on it; False: a thread of the runner's.
    planner_cpus: CPUs of the planner process: ``last`` (one core, the last; default), ``all``
        or a list ``2,3`` (``planner_process.planner_cpus``).
    task: the test-time task walked (a TaskSpec JSON file or a suite task name, as in
        ``dmpc eval``); empty: the learned reward alone at the nominal guidance. The velocity
        command stays ``command``.
    switch_to: a second task, planned from ``switch_at`` s of walking on (empty: none).
    switch_at: walking time of the switch, s.
    """

    exported: str = "exported/sim2sim"
    planner_run: str = DEFAULT_PLANNER
    num_candidates: int = 1
    # = planner.sampler.REALTIME_VARIANT, not imported: this module is also the simulated
    # robot's process, which must not load JAX (a full garbage collection over JAX's heap took
    # ~50 ms there and stalled its 500 Hz LowState: a stale-state stop in every run)
    sampler: str = "ddim5"
    command: tuple[float, float, float] = (0.5, 0.0, 0.0)
    walk_s: float = 10.0
    stand_s: float = 2.0
    domain: int = 0
    interface: str = "lo"
    physics_dt: float = 0.001
    out_dir: str = "experiments/sim2sim"
    seed: int = 0
    repeats: int = 3
    budget_calls: int = 20
    auto_margin: bool = False
    budget_headroom: float = 1.3
    planner_process: bool = True
    planner_cpus: str = "last"
    task: str = ""
    switch_to: str = ""
    switch_at: float = 10.0


class SimRobot:
    """Native MuJoCo Go2 with motor-side PD on the LowCmd fields (model order inside)."""

    def __init__(self, physics_dt: float = 0.001):
        import mujoco

        cfg = go2.ModelConfig(contacts="full", timestep=physics_dt, solver_iterations=20,
                              ls_iterations=10, foot_condim=3)  # fmt: skip
        self.mj = mujoco
        self.model = go2.make_model(cfg)
        self.model.actuator_gainprm[:, 0] = 0.0  # torques come from qfrc_applied
        self.model.actuator_biasprm[:, :3] = 0.0
        self.data = mujoco.MjData(self.model)
        self.data.qpos[:] = go2.home_qpos()
        self.data.qpos[7:] = LIE_DOWN_POSE
        self.data.qpos[2] = go2.standing_height(LIE_DOWN_POSE) + 0.01
        mujoco.mj_forward(self.model, self.data)
        self.tau_max = go2.torque_limits()
        self.sdk_to_model, self.model_to_sdk = go2.sdk_to_model(), go2.model_to_sdk()
        self.tick = 0

    def step(self, cmd, n_substeps: int) -> None:
        """Advance ``n_substeps`` physics steps under LowCmd ``cmd`` (SDK order; None: limp)."""
        d = self.data
        for _ in range(n_substeps):
            if cmd is None:
                tau = np.zeros(12)
            else:
                q, dq = d.qpos[7:][self.model_to_sdk], d.qvel[6:][self.model_to_sdk]
                tau_sdk = cmd.kp * (cmd.q - q) + cmd.kd * (cmd.dq - dq) + cmd.tau
                tau = tau_sdk[self.sdk_to_model]
            d.qfrc_applied[6:] = np.clip(tau, -self.tau_max, self.tau_max)
            self.mj.mj_step(self.model, d)
        self.tick += 1

    def lowstate(self):
        from dmpc_jax.deploy.transport import LowState

        d = self.data
        return LowState(
            quat_wxyz=d.qpos[3:7].copy(),
            gyro=d.qvel[3:6].copy(),  # free-joint angular velocity is in the body frame
            q=d.qpos[7:][self.model_to_sdk].copy(),
            dq=d.qvel[6:][self.model_to_sdk].copy(),
            tau_est=d.qfrc_applied[6:][self.model_to_sdk].copy(),
            tick=self.tick,
        )

    def base(self) -> dict:
        w, x, y, z = self.data.qpos[3:7]
        roll, pitch = roll_pitch(np, self.data.qpos[3:7])
        return {
            "x": float(self.data.qpos[0]), "y": float(self.data.qpos[1]),
            "z": float(self.data.qpos[2]),
            "yaw": float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))),
            "roll": float(roll),
            "pitch": float(pitch),
        }  # fmt: skip


SIM_FAULTS = ("stop", "freeze", "nan")  # injected by the simulated robot on SIGUSR1


def serve(seconds: float, out: str, domain: int = 0, interface: str = "lo",
          physics_dt: float = 0.001, rate_hz: float = 500.0, fault: str = "none") -> None:  # fmt: skip
    """The simulated robot's process: 500 Hz lowstate out, lowcmd in, until SIGTERM or
    ``seconds``; writes the base trajectory (50 Hz) and message counts to ``out`` (JSON).

    ``fault`` (``SIM_FAULTS``) starts on SIGUSR1: ``stop`` publishing rt/lowstate, republish a
    ``freeze``-frame (same tick and values), or publish ``nan`` in a joint reading; physics and
    the received LowCmds go on. Every received LowCmd is checked against the joint limits (and
    its PD torque, before the motor clamp, against the torque limits), and the first damping
    command is timed (``time.monotonic``, the clock the runner logs with)."""
    import threading

    from dmpc_jax.deploy.transport import (
        LOWCMD_TOPIC,
        LOWSTATE_TOPIC,
        init_dds,
        lowcmd_from_sdk,
        lowstate_to_sdk,
    )

    if fault not in ("none", *SIM_FAULTS):
        raise ValueError(f"unknown simulator fault {fault!r}; choose from {SIM_FAULTS}")
    sdk = init_dds(domain, interface)
    robot = SimRobot(physics_dt)
    lock = threading.Lock()
    latest = {"cmd": None, "received": 0, "bad_crc": 0, "out_of_range": 0, "over_torque": 0,
              "max_torque_ratio": 0.0, "first_damping_t": None}  # fmt: skip
    crc = sdk["CRC"]()
    lo, hi = (np.asarray(x)[robot.model_to_sdk] for x in go2.joint_limits())
    tau_max = np.asarray(robot.tau_max)[robot.model_to_sdk]
    faulted = {"t": None, "frame": None}
    signal.signal(signal.SIGUSR1, lambda *_: faulted.update(t=time.monotonic()))

    def on_cmd(msg):
        if crc.Crc(msg) != msg.crc:
            latest["bad_crc"] += 1
            return
        cmd = lowcmd_from_sdk(msg)
        with lock:
            latest["cmd"], latest["received"] = cmd, latest["received"] + 1
            if cmd.is_damping():
                if latest["first_damping_t"] is None:
                    latest["first_damping_t"] = time.monotonic()
                return
            d = robot.data
            q, dq = d.qpos[7:][robot.model_to_sdk], d.qvel[6:][robot.model_to_sdk]
            ratio = np.abs(cmd.kp * (cmd.q - q) + cmd.kd * (cmd.dq - dq) + cmd.tau) / tau_max
            latest["max_torque_ratio"] = max(latest["max_torque_ratio"], float(ratio.max()))
            latest["over_torque"] += int((ratio > 1.0 + 1e-6).any())
            latest["out_of_range"] += int(((cmd.q < lo) | (cmd.q > hi)).any())

    pub = sdk["Publisher"](LOWSTATE_TOPIC, sdk["LowState_"])
    pub.Init()
    sub = sdk["Subscriber"](LOWCMD_TOPIC, sdk["LowCmd_"])
    sub.Init(on_cmd, 10)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    dt = 1.0 / rate_hz
    n_sub = max(int(round(dt / physics_dt)), 1)
    traj, late, first_cmd_t = [], 0, None
    t0 = time.monotonic()
    k = 0
    while not stop["flag"] and time.monotonic() - t0 < seconds:
        with lock:
            cmd = latest["cmd"]
        if cmd is not None and first_cmd_t is None:
            first_cmd_t = k * dt
        robot.step(cmd, n_sub)
        st = robot.lowstate()
        if faulted["t"] is None or fault == "none":
            pub.Write(lowstate_to_sdk(sdk, st))
        elif fault == "freeze":
            faulted["frame"] = faulted["frame"] or lowstate_to_sdk(sdk, st)
            pub.Write(faulted["frame"])
        elif fault == "nan":
            st.q[4] = np.nan
            pub.Write(lowstate_to_sdk(sdk, st))
        # "stop": nothing goes out
        if k % 10 == 0:
            traj.append({"t": k * dt, **robot.base()})
        k += 1
        delay = t0 + k * dt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -dt:
            late += 1
    Path(out).write_text(json.dumps({
        "ticks": k, "late_ticks": late, "wall_s": time.monotonic() - t0,
        "lowcmd_received": latest["received"], "lowcmd_bad_crc": latest["bad_crc"],
        "lowcmd_out_of_joint_range": latest["out_of_range"],
        "lowcmd_over_torque": latest["over_torque"],
        "lowcmd_max_torque_ratio": latest["max_torque_ratio"],
        "fault": fault, "fault_t": faulted["t"],
        "first_damping_t": latest["first_damping_t"],
        "first_lowcmd_t": first_cmd_t,
        "trajectory": traj,
    }) + "\n")  # fmt: skip


def load_exported(cfg: Sim2SimConfig):
    """The exported planner of ``cfg``, (re-)exported first when absent or from another run, N
    or sampling path."""
    from dmpc_jax.deploy.exported import ExportedPlanner

    exp = Path(cfg.exported)
    meta = json.loads((exp / "meta.json").read_text()) if (exp / "meta.json").exists() else {}
    if (meta.get("source_checkpoint", "").split(":")[0] != cfg.planner_run
            or meta.get("num_candidates") != cfg.num_candidates
            or meta.get("sampler_variant", "ddpm") != cfg.sampler):  # fmt: skip
        print(f"exporting {cfg.planner_run} -> {exp}", flush=True)
        subprocess.run([sys.executable, "-m", "dmpc_jax.cli", "export", "--run-dir",
                        cfg.planner_run, "--out", str(exp), "--num-candidates",
                        str(cfg.num_candidates), "--sampler", cfg.sampler], check=True)  # fmt: skip
    return ExportedPlanner(exp)


def run_sim2sim(cfg: Sim2SimConfig, specs=()) -> dict:
    """``repeats`` runs (planner keys seed, seed + 1, ...), each with a fresh simulated robot
    process; writes results.json (every run), trajectory_<seed>.json and README.md. ``specs``:
    the TaskSpecs of ``cfg.task`` and ``cfg.switch_to`` (None: the default task), resolved by
    the caller (``dmpc sim2sim``)."""
    from dmpc_jax.deploy.transport import DdsTransport
    from dmpc_jax.planner.task import NN_GUIDANCE

    planner = load_exported(cfg)
    tasks = planner.task_list(specs, cfg.command, NN_GUIDANCE)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("trajectory*.json"):
        old.unlink()
    transport = DdsTransport(cfg.domain, cfg.interface)
    runs = []
    try:
        for seed in range(cfg.seed, cfg.seed + cfg.repeats):
            result, traj = _run_once(cfg, seed, planner, transport, out, tasks=tasks)
            (out / f"trajectory_{seed}.json").write_text(json.dumps(traj) + "\n")
            runs.append(result)
            print(json.dumps({"seed": seed, "success": result["success"],
                              "walked_s": result["walked_s"], "fell": result["fell"]}),
                  flush=True)  # fmt: skip
    finally:
        transport.close()
    summary = {
        "runs": runs,
        "successes": sum(r["success"] for r in runs),
        "repeats": len(runs),
        "artifact_bytes": planner.size_bytes,
        "artifact_load_s": planner.load_s,
        "source_checkpoint": planner.meta.get("source_checkpoint"),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_page(cfg, summary, out)
    return summary


def _run_once(
    cfg: Sim2SimConfig, seed: int, planner, transport, out: Path,
    fault: str | None = None, fault_at_s: float = 3.0, after_s: float = 3.0, tasks=None,
):  # fmt: skip
    """One run with a fresh simulated robot. ``fault`` (``SIM_FAULTS`` or ``planner_kill``) is
    injected ``fault_at_s`` after walking starts; the run goes on ``after_s`` more seconds (the
    robot in damping sits down) and the result carries ``fault`` with its timings."""
    from dmpc_jax.deploy.budget import fit_budget
    from dmpc_jax.deploy.planner_process import start_planner
    from dmpc_jax.deploy.runner import Runner, RunnerConfig
    from dmpc_jax.planner.task import NN_GUIDANCE

    t = time.perf_counter()
    plan, plan_kw = start_planner(
        planner, cfg.exported, seed, NN_GUIDANCE, cfg.planner_process, cfg.planner_cpus, tasks
    )
    warmup_s = time.perf_counter() - t
    switch = cfg.switch_at if tasks is not None and len(tasks) > 1 else None
    rcfg = RunnerConfig.from_meta(planner.meta, command=tuple(cfg.command),
                                  stand_s=cfg.stand_s, live=True, switch_at_s=switch)  # fmt: skip
    sim_log = out / "sim_log.json"
    walk_s = cfg.walk_s if fault is None else fault_at_s + after_s
    total = cfg.stand_s + 1.0 + walk_s
    t_launch = time.monotonic()
    sim = subprocess.Popen(
        [sys.executable, "-m", "dmpc_jax.deploy.sim2sim", str(total + 30), str(sim_log),
         str(cfg.domain), cfg.interface, str(cfg.physics_dt),
         fault if fault in SIM_FAULTS else "none"],
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    injected = None
    try:
        while True:  # a state from this robot process (not the previous run's)
            got = transport.latest_state()
            if got is not None and got[1] > t_launch:
                break
            if sim.poll() is not None or time.monotonic() - t_launch > 30:
                raise RuntimeError("the simulated robot published no rt/lowstate within 30 s")
            time.sleep(0.05)
        rcfg, budget = fit_budget(  # with the simulator running (its load included)
            plan, plan_kw, planner.meta["obs_dim"], rcfg, cfg.budget_calls, cfg.auto_margin,
            cfg.budget_headroom,
        )  # fmt: skip
        runner = Runner(rcfg, transport, **plan_kw)
        timing = runner.run(cfg.stand_s + (0.0 if fault else 0.2))  # stand up, first plan
        t_walk = None
        deadline = time.monotonic() + walk_s + 1.0
        while time.monotonic() < deadline and (
            runner.mode in ("stand", "ready", "walk") or injected is not None
        ):
            now = time.monotonic()
            if runner.mode == "walk" and t_walk is None:  # when it started, from the runner's log
                t_walk = next(e["t"] for e in runner.events if e["event"].endswith("-> walk"))
            if fault and injected is None and t_walk is not None and now - t_walk >= fault_at_s:
                injected = _inject(fault, sim, runner.worker)
            if t_walk is not None and now - t_walk >= walk_s:
                break
            t2 = runner.run(0.02 if fault and injected is None else 0.1)  # inject on time
            timing = {k: timing[k] + t2[k] for k in timing}
        stats = runner.stats()
        runner.close()
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    sim_res = json.loads(sim_log.read_text())
    sim_log.unlink()
    traj = sim_res.pop("trajectory")
    result = summarize(cfg, stats, timing, sim_res, traj, runner.events, warmup_s, planner)
    result["seed"] = seed
    result["start_budget"] = dataclasses.asdict(budget)
    if fault is not None:
        result["fault"] = {"kind": fault, "injected_t": injected, "walk_start_t": t_walk}
    return result, traj


def _inject(fault: str, sim, worker) -> float:
    """Start ``fault`` now; the monotonic time it started (for planner_kill: the kill)."""
    if fault == "planner_kill":
        if not hasattr(worker, "pid"):
            raise ValueError("planner_kill needs the planner in its own process (planner_process)")
        os.kill(worker.pid, signal.SIGKILL)
        return time.monotonic()
    if fault not in SIM_FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose from {(*SIM_FAULTS, 'planner_kill')}")
    sim.send_signal(signal.SIGUSR1)
    return time.monotonic()  # the simulator logs its own start time (fault_t) too


def summarize(cfg, stats, timing, sim_res, traj, events, warmup_s, planner) -> dict:
    """Walking metrics over the sim's 50 Hz base trajectory from the tick the runner started
    walking (the sim's first LowCmd + the runner's stand -> walk delay)."""
    t_stand = next((e["t"] for e in events if e["event"].endswith("-> stand")), None)
    t_walk = next((e["t"] for e in events if e["event"].endswith("-> walk")), None)
    z = np.array([p["z"] for p in traj])
    tilt = np.array([max(abs(p["roll"]), abs(p["pitch"])) for p in traj])
    walked_s = stats["policy_steps"] * 0.02
    out = {"command": list(cfg.command), "walked_s": walked_s}
    if t_walk is None or sim_res.get("first_lowcmd_t") is None:
        i0 = len(traj)
    else:
        i0 = int(round((sim_res["first_lowcmd_t"] + t_walk - t_stand) * 50))
    seg = traj[i0 : i0 + int(round(walked_s * 50)) + 1]
    fell = bool((z[i0:] < 0.15).any() or (tilt > 1.0).any())
    if len(seg) > 1:
        xy = np.array([[p["x"], p["y"]] for p in seg])
        yaw = np.unwrap([p["yaw"] for p in seg])
        step = np.diff(xy, axis=0)
        heading = np.stack([np.cos(yaw[:-1]), np.sin(yaw[:-1])], -1)
        out.update({
            "path_length_m": float(np.linalg.norm(step, axis=-1).sum()),
            "mean_forward_speed_m_per_s": float((step * heading).sum(-1).mean() * 50),
            "mean_lateral_speed_m_per_s": float(
                (step * heading[:, ::-1] * [-1, 1]).sum(-1).mean() * 50),
            "mean_yaw_rate_rad_per_s": float((yaw[-1] - yaw[0]) / (len(seg) / 50)),
            "base_height_walking_m": float(np.mean([p["z"] for p in seg])),
        })  # fmt: skip
    out.update({
        "fell": fell,
        "faulted": stats["mode"] == "damping",
        "success": bool(not fell and stats["mode"] == "walk" and walked_s >= cfg.walk_s - 0.1),
        "runner": stats,
        "loop_overruns": timing["overruns"],
        "sim": sim_res,
        "events": events,
        "planner_warmup_s": warmup_s,
        "artifact_bytes": planner.size_bytes,
        "artifact_load_s": planner.load_s,
        "source_checkpoint": planner.meta.get("source_checkpoint"),
    })  # fmt: skip
    return out


def write_page(cfg: Sim2SimConfig, summary: dict, out: Path) -> None:
    nan = float("nan")
    rows = []
    for r in summary["runs"]:
        st = r["runner"]
        lat, per = st.get("plan_latency_ms", {}), st.get("lowcmd_period_ms", {})
        rows.append(
            f"| {r['seed']} | {r['walked_s']:.2f} s | {'**yes**' if r['fell'] else 'no'} | "
            f"{'; '.join(st['faults']) or 'none'} | {r.get('path_length_m', 0):.2f} m | "
            f"{r.get('mean_forward_speed_m_per_s', 0):.2f} / "
            f"{r.get('mean_lateral_speed_m_per_s', 0):.2f} | "
            f"{r.get('mean_yaw_rate_rad_per_s', 0):.2f} | "
            f"{lat.get('p50', nan):.1f} / {lat.get('p99', nan):.1f} | "
            f"{per.get('p50', nan):.2f} / {per.get('p99', nan):.2f} | "
            f"{r['sim']['lowcmd_received']} ({r['sim']['lowcmd_bad_crc']}) | "
            f"{r['sim']['late_ticks']} / {r['sim']['ticks']} |"
        )
    n, ok = summary["repeats"], summary["successes"]
    lines = [
        "# sim2sim: the deploy runner drives a native-MuJoCo Go2 over DDS",
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
        + f"{' --cfg.auto-margin' if cfg.auto_margin else ''}`). Processes on one machine, DDS "
        f"on `{cfg.interface}` (domain {cfg.domain}): the simulated Go2 (native MuJoCo, full "
        f"collision geometry, {1e3 * cfg.physics_dt:g} ms physics, motor PD on the LowCmd fields, "
        "CRC checked, a fresh process per run, starting lying down) publishes rt/lowstate at "
        "500 Hz; the runner (`dmpc_jax/deploy/runner.py`) reads it, stands the robot up (2 s), and "
        f"walks it for {cfg.walk_s:g} s at the command {tuple(cfg.command)} with the exported "
        f"planner (`{summary['source_checkpoint']}`, N = {cfg.num_candidates}, {cfg.sampler}) in "
        f"its own {'process' if cfg.planner_process else 'thread'}"
        + (f" pinned by --cfg.planner-cpus {cfg.planner_cpus}" if cfg.planner_process else "")
        + ", E = 11 / D = 4 unless the start-up "
        "check raised D (auto-margin), publishing "
        "rt/lowcmd at 500 Hz. Before each run the plan is timed against its budget "
        "(`deploy/budget.py`): "
        + "; ".join(
            f"seed {r['seed']}: p50 {r['start_budget']['p50_ms']:.1f} / p99 "
            f"{r['start_budget']['p99_ms']:.1f} ms, D = {r['start_budget']['margin']}"
            for r in summary["runs"][:3]
        )
        + ("; ..." if len(summary["runs"]) > 3 else "")
        + ".",
        "",
        f"**{ok} of {n} runs walked {cfg.walk_s:g} s without falling or a fault.**",
        "",
        "| seed | walked | fell | faults (-> damping) | path | forward / lateral speed, body "
        "frame (m/s) | yaw rate (rad/s, command 0) | plan latency p50 / p99 (ms, budget 80) | "
        "LowCmd period p50 / p99 (ms, target 2) | LowCmd received (bad CRC) | robot ticks late "
        "> 2 ms |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Artifact: {summary['artifact_bytes'] / 1e6:.1f} MB, loaded in "
        f"{summary['artifact_load_s']:.2f} s; the first call (XLA compile) takes "
        f"{summary['runs'][0]['planner_warmup_s']:.1f} s and is made before the loop starts.",
        "The yaw drift: the observation has no heading, so a zero yaw-rate command is tracked "
        "through the gyro only.",
        "",
        "Machine: the 2-core CPU development machine (the planner and the simulator share it). "
        "Numbers: `results.json`; base trajectories (50 Hz): `trajectory_<seed>.json`.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":  # the simulated robot's process (started by run_sim2sim)
    a = sys.argv[1:]
    serve(float(a[0]), a[1], int(a[2]), a[3], float(a[4]), fault=a[5] if len(a) > 5 else "none")
