"""Episode outcomes of closed-loop rollouts: success under each rule, with Wilson intervals, the
cause, time and attitude of every fall, and hard-bound verdicts that can fail. Pure numpy on the
traces of ``envs.rollout`` (``trace[key]`` is [T, B, ...]).

Success rules (all on the same keys; ``rollout_model`` says which env variant a rule reads):

| rule | env model | a failure is | success |
|---|---|---|---|
| ``strict`` (ours) | feet-only contacts, probe points | roll > 1.0, pitch > 1.6, upside down, base or knee below the terrain, non-finite | no failure in the episode |
| ``paper`` (the authors' limits) | full collision geometry | roll > 1.0 or pitch > 1.6 rad (upside down implies one of them) or non-finite | no failure in the episode |
| ``box`` (the authors' count) | full collision geometry | as ``paper`` | no failure before the episode ends *or* before the base leaves a 3.3 m box around its start |

The authors' finetuning env ends an episode as a time-out (a success) once the robot leaves its
8 m terrain tile's box (3.3 m from the tile centre, ~3.3-4.7 s at 1.0 m/s): ``box``.
"""

from __future__ import annotations

import math

import numpy as np

RULES = ("strict", "paper", "box")
BOX_HALF_WIDTH_M = 3.3  # authors: terrain_width / 2 - 0.7 with 8 m tiles
Z95 = 1.959963984540054


def rollout_model(rule: str) -> str:
    """The env variant a rule's rollout runs on: ``strict`` or ``paper`` (box reads ``paper``)."""
    if rule not in RULES:
        raise ValueError(f"unknown success rule {rule!r}; choose from {RULES}")
    return "strict" if rule == "strict" else "paper"


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default).

    E. B. Wilson (1927): centre (p + z^2 / 2n) / (1 + z^2 / n), half-width
    z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n). Stays inside [0, 1] and is not
    degenerate at 0 or n successes (e.g. 64 / 64 -> [0.943, 1.0]).
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(
            f"wilson_interval needs 0 <= successes <= n and n > 0, got {successes}/{n}"
        )
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def rate(success: np.ndarray) -> dict:
    """{rate, successes, episodes, ci95: [lo, hi]} of a bool array [B]."""
    success = np.asarray(success, bool)
    k, n = int(success.sum()), int(success.size)
    return {"rate": k / n, "successes": k, "episodes": n, "ci95": list(wilson_interval(k, n))}


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Two controllers' successes [B] on the same keys, episode by episode: ``won`` (b succeeded
    where a failed), ``lost`` (the reverse), ``ties``, and the exact two-sided sign-test p-value
    of the discordant pairs (McNemar's exact test): how likely a split at least this uneven is
    if neither arm is better."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired outcomes need two [B] arrays on the same keys, got {a.shape}, {b.shape}"
        )
    won, lost = int((b & ~a).sum()), int((a & ~b).sum())
    n, k = won + lost, min(won, lost)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n if n else 1.0
    return {"won": won, "lost": lost, "ties": int(a.size - n), "p_value": min(1.0, 2.0 * tail)}


def fall_steps(trace: dict) -> np.ndarray:
    """Step index of each episode's first failure [B]; T (the trace length) where none."""
    done = np.asarray(trace["done_any"])  # [T, B], true from the failing step on
    return np.where(done[-1], done.argmax(0), done.shape[0])


def fall_time_s(step, dt: float):
    """The time of a fall at step index ``step``: the end of that control step, (step + 1) dt
    (a fall in the first step is at dt, one at the last step of a T-step episode at T dt)."""
    return (np.asarray(step) + 1) * dt


def fall_times_s(trace: dict, dt: float) -> list[float]:
    """Sorted fall times of the episodes that fell (``fall_time_s``), rounded to 10 ms."""
    steps = fall_steps(trace)
    fell = steps < np.asarray(trace["done_any"]).shape[0]
    return sorted(np.round(fall_time_s(steps[fell], dt), 2).tolist())


def box_exit_steps(trace: dict, half_width: float = BOX_HALF_WIDTH_M) -> np.ndarray:
    """First step at which the base is more than ``half_width`` from its start along x or y [B];
    T where it never is."""
    xy = np.asarray(trace["qpos"])[..., :2]  # [T, B, 2]
    out = np.any(np.abs(xy - xy[:1]) > half_width, axis=-1)
    return np.where(out.any(0), out.argmax(0), out.shape[0])


def success(trace: dict, rule: str) -> np.ndarray:
    """Per-episode success [B] under ``rule`` from the trace of ``rollout_model(rule)``'s env."""
    rollout_model(rule)  # validates the name
    fell_at = fall_steps(trace)
    t = np.asarray(trace["done_any"]).shape[0]
    if rule != "box":
        return fell_at == t
    return (fell_at == t) | (box_exit_steps(trace) < fell_at)


def falls(trace: dict, dt: float, causes: tuple[str, ...]) -> dict:
    """The falls of one rollout: count by cause and, per fall, its episode, time, roll, pitch and
    causes (the ``fall/<cause>`` flags that held at the failing step; several may hold at once).

    ``causes``: the causes that end an episode in the env that made the trace
    (``Go2Joystick.terminating_causes``).
    """
    fell_at = fall_steps(trace)
    t_max = np.asarray(trace["done_any"]).shape[0]
    events, by_cause = [], dict.fromkeys(causes, 0)
    for b in np.flatnonzero(fell_at < t_max):
        s = int(fell_at[b])
        held = [c for c in causes if float(np.asarray(trace[f"fall/{c}"])[s, b]) > 0.5]
        for c in held:
            by_cause[c] += 1
        events.append({
            "episode": int(b), "time_s": round(float(fall_time_s(s, dt)), 2), "causes": held,
            "roll": round(float(np.asarray(trace["state/roll"])[s, b]), 3),
            "pitch": round(float(np.asarray(trace["state/pitch"])[s, b]), 3),
        })  # fmt: skip
    times = np.array([e["time_s"] for e in events])
    return {
        "count": len(events),
        "by_cause": by_cause,
        "median_time_s": float(np.median(times)) if len(times) else None,
        "events": events,
    }


def constraint_report(trace: dict, lower, upper, robot: dict, alive=None) -> dict:
    """Hard-bound verdict of the executed steps (before a fall).

    Args:
        trace: with ``action`` [T, B, 12] (executed actions), and for a planner ``plan/row``
            [T, B, Dx] (the executed plan row, env units: action then observation) and
            ``plan/index`` [T] (its row index in its plan), ``qpos``, ``qvel``.
        lower, upper: [H, Dx] env-unit bounds (``planner.constraints.Constraints``).
        robot: ``q_default`` [12].
        alive: [T, B] steps that count (default: before the first failure).

    Returns:
        ``action_violations`` (executed (step, joint) actions outside their row's bound),
        ``planned_state_violations`` (executed plan rows whose planned q or qdot lies outside
        the bound; row 0's state is the measured one, inpainted, and is not a plan), their sum
        ``constraint_violations``, and for each bounded state field the fraction of measured
        joint-steps (on the bounded joints) outside the loosest bound of the executed rows:
        ``measured_over_frac`` {"q": f, "qdot": f}.
    """
    from dmpc_jax.envs import obs as obs_lib
    from dmpc_jax.planner.constraints import row_slice

    lower, upper = np.asarray(lower), np.asarray(upper)
    done = np.asarray(trace["done_any"])
    alive = ~done if alive is None else np.asarray(alive)
    a = np.asarray(trace["action"])
    tol = 1e-5
    if "plan/row" in trace:
        rows = np.asarray(trace["plan/row"])
        idx = np.asarray(trace["plan/index"]).astype(int)  # [T]
        lo, hi = lower[idx][:, None], upper[idx][:, None]  # [T, 1, Dx]
    else:  # a policy: one bound for every step, the loosest over the horizon
        rows, idx = None, None
        lo, hi = lower.min(0)[None, None], upper.max(0)[None, None]
    act = row_slice("action")
    a_over = ((a < lo[..., act] - tol) | (a > hi[..., act] + tol)) & alive[..., None]
    out = {"action_violations": int(a_over.sum()), "planned_state_violations": 0}
    measured = {
        "q": np.asarray(trace["qpos"])[..., 7:] - np.asarray(robot["q_default"]),
        "qdot": np.asarray(trace["qvel"])[..., 6:] * obs_lib.JOINT_VEL_SCALE,
    }
    fracs = {}
    for field, obs_name in (("q", "joint_pos"), ("qdot", "joint_vel")):
        sl = row_slice(obs_name)
        bounded = np.isfinite(lower[:, sl]).any(0) | np.isfinite(upper[:, sl]).any(0)  # [12]
        if not bounded.any():
            continue
        if rows is not None:
            planned = rows[..., sl]
            over = (planned < lo[..., sl] - tol) | (planned > hi[..., sl] + tol)
            over &= alive[..., None] & (idx > 0)[:, None, None]
            out["planned_state_violations"] += int(over.sum())
        m = measured[field][..., bounded]
        loose_lo, loose_hi = lower[:, sl].min(0)[bounded], upper[:, sl].max(0)[bounded]
        m_over = ((m < loose_lo - tol) | (m > loose_hi + tol)) & alive[..., None]
        fracs[field] = float(m_over.sum() / max(alive.sum() * bounded.sum(), 1))
    out["constraint_violations"] = out["action_violations"] + out["planned_state_violations"]
    out["measured_over_frac"] = fracs
    return out
