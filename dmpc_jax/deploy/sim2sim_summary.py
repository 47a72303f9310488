"""What one sim2sim run measured: its base trajectory on disk, the walk window in it, falls,
success, gait and energy, and the run's summary row (``summarize``); ``experiments/sim2sim/
rescore.py`` re-scores a page with the same functions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np


def save_trajectory(out: Path, seed: int, traj: list) -> None:
    """trajectory_<seed>.json.gz: the sim's 50 Hz base trajectory, values rounded to 1e-4
    (mm, 0.1 mrad, 0.1 mJ), gzipped: ~1/8 of the plain JSON."""
    rows = [{k: round(v, 4) for k, v in p.items()} for p in traj]
    with gzip.open(out / f"trajectory_{seed}.json.gz", "wt") as f:
        json.dump(rows, f, separators=(",", ":"))


def load_trajectory(out: Path, seed: int) -> list:
    """A run's trajectory (``save_trajectory``'s file, or the plain JSON of older pages)."""
    plain = out / f"trajectory_{seed}.json"
    if plain.exists():
        return json.loads(plain.read_text())
    with gzip.open(out / f"trajectory_{seed}.json.gz", "rt") as f:
        return json.load(f)


def walk_window(sim_res: dict, events: list, walked_s: float, n: int) -> tuple[int, int]:
    """[start, end) of the walk in the sim's 50 Hz trajectory (sample k at the sim's ``t0`` +
    k / 50 s). Both processes log ``time.monotonic``: the walk starts at the runner's
    stand -> walk event and ends at its finish event (damping follows; in logs without it: the
    newest LowCmd the sim received), or after the walked time if that is sooner (a fault).
    Logs from before the sim recorded those times: the sim's first LowCmd + the runner's
    stand -> walk delay, and the walked time after it. ``(n, n)``: it never walked."""
    t_stand = next((e["t"] for e in events if e["event"].endswith("-> stand")), None)
    t_walk = next((e["t"] for e in events if e["event"].endswith("-> walk")), None)
    if t_walk is None or sim_res.get("first_lowcmd_t") is None:
        return n, n
    if sim_res.get("t0") is not None and sim_res.get("last_lowcmd_t") is not None:
        i0 = int(round((t_walk - sim_res["t0"]) * 50))
        t_end = next((e["t"] for e in events if e["event"].startswith("finish")), None)
        stop = int(round(((t_end or sim_res["last_lowcmd_t"]) - sim_res["t0"]) * 50)) + 1
        return i0, min(stop, i0 + int(round(walked_s * 50)) + 1)  # after a fault: damping
    i0 = int(round((sim_res["first_lowcmd_t"] + t_walk - t_stand) * 50))
    return i0, i0 + int(round(walked_s * 50)) + 1


def fall_flags(traj: list, i0: int, end: int, faulted: bool) -> tuple[bool, bool]:
    """(fell, fell after the stop) for a walk over trajectory samples [i0, end). While walking
    a fall is the base below 0.15 m or roll/pitch beyond 1 rad; before it (lying, standing up)
    and after it (damping: the robot sits down) only roll/pitch beyond 1 rad is. A fall after a
    walk that ended by time is the stop's, not the walk's (the second flag); after a fault it is
    the fault's (the first)."""
    z = np.array([p["z"] for p in traj])
    tilt = np.array([max(abs(p["roll"]), abs(p["pitch"])) for p in traj]) > 1.0
    walking = bool(tilt[:end].any() or (z[i0:end] < 0.15).any())
    after = bool(tilt[end:].any())
    return walking or (faulted and after), bool(not faulted and not walking and after)


def run_success(fell: bool, mode: str, walked_s: float, walk_s: float) -> bool:
    """A run succeeds when the robot walked the whole ``walk_s`` (still walking: no fault) and
    did not fall while walking."""
    return bool(not fell and mode == "walk" and walked_s >= walk_s - 0.1)


def gait_metrics(seg: list) -> dict:
    """Forward speed (body frame) and energy per metre (the motors' mechanical work over the
    forward distance, the eval pages' definition) over a piece of the 50 Hz trajectory."""
    xy = np.array([[p["x"], p["y"]] for p in seg])
    yaw = np.array([p["yaw"] for p in seg[:-1]])
    forward = (np.diff(xy, axis=0) * np.stack([np.cos(yaw), np.sin(yaw)], -1)).sum()
    out = {"forward_speed_m_per_s": float(forward / ((len(seg) - 1) / 50))}
    if "work" in seg[0]:  # recorded by the simulators since the task-switch row
        work = seg[-1]["work"] - seg[0]["work"]
        out["energy_J_per_m"] = float(work / forward) if forward > 0.05 else None
    return out


def summarize(cfg, stats, timing, sim_res, traj, events, warmup_s, planner) -> dict:
    """Walking metrics over the sim's 50 Hz base trajectory from the tick the runner started
    walking (the sim's first LowCmd + the runner's stand -> walk delay)."""
    z = np.array([p["z"] for p in traj])
    tilt = np.array([max(abs(p["roll"]), abs(p["pitch"])) for p in traj])
    walked_s = stats["policy_steps"] * 0.02
    out = {"command": list(cfg.command), "walked_s": walked_s}
    i0, end = walk_window(sim_res, events, walked_s, len(traj))
    seg = traj[i0:end]
    faulted = stats["mode"] == "damping"
    fell, fell_after_stop = fall_flags(traj, i0, end, faulted)
    if len(seg) > 1:
        xy = np.array([[p["x"], p["y"]] for p in seg])
        yaw = np.unwrap([p["yaw"] for p in seg])
        step = np.diff(xy, axis=0)
        heading = np.stack([np.cos(yaw[:-1]), np.sin(yaw[:-1])], -1)
        gait = gait_metrics(seg)
        out.update({
            "path_length_m": float(np.linalg.norm(step, axis=-1).sum()),
            "mean_forward_speed_m_per_s": gait["forward_speed_m_per_s"],
            "energy_J_per_m": gait.get("energy_J_per_m"),
            "mean_lateral_speed_m_per_s": float(
                (step * heading[:, ::-1] * [-1, 1]).sum(-1).mean() * 50),
            "mean_yaw_rate_rad_per_s": float((yaw[-1] - yaw[0]) / (len(seg) / 50)),
            "base_height_walking_m": float(np.mean([p["z"] for p in seg])),
            # the stand-to-walk transition: how far the base rises in the first 0.5 s of
            # walking, and the largest roll or pitch in the first 1 s (RunnerConfig.blend_s)
            "start_rise_m": float(z[i0 : i0 + 25].max() - z[i0]),
            "start_tilt_rad": float(tilt[i0 : i0 + 50].max()),
        })  # fmt: skip
        k = int(round(cfg.switch_at * 50))  # the switch's sample in the walk
        if cfg.switch_to and len(seg) > k + 1:
            out["switch"] = {"before": gait_metrics(seg[: k + 1]), "after": gait_metrics(seg[k:])}
    out.update({
        "fell": fell,
        "fell_after_stop": fell_after_stop,
        "faulted": faulted,
        "success": run_success(fell, stats["mode"], walked_s, cfg.walk_s),
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
