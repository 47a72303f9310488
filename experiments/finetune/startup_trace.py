"""What the planner does in the first seconds of the evaluation's episodes, where its box
failures happen (``fall_times.py``): the strict rollout of the in-loop evaluation (the same env,
keys, sampler and timeline as ``Evaluator`` and ``dmpc eval``), traced step by step, with the
demonstrator on the same keys beside it.

Saves ``OUT/early_states.npz`` (the early fallers' full states before their falls, the
starts ``EnvConfig.init_states`` reads) and ``OUT/trace.npz`` (the first ``--seconds`` of every episode: forward speed, base height,
roll, pitch, yaw rate, joint positions, the executed action, the demonstrator's action on the
same observation, the reward and its terms, the fall step and cause; the demonstrator's
forward speed, height and pitch) and prints, per 0.5 s bin, the mean of each quantity for three
sets of episodes: those that fall before 5 s (``early``), those that fall later (``late``), and
those that never fall (``survive``), beside the demonstrator's; then each randomised parameter's
mean per set, the early falls per tercile of it, a logistic regression of the early falls on
all of them, and per joint at 2-3 s the planner's departure from the demonstrator's action and the
joint positions, early fallers against survivors (also written to ``OUT/summary.txt``).

``--task``: another suite task on the same keys (``balance_1x``: the same walk with the upright
reward at task guidance). Planner: the finetuning config's pretrained planner, or a run's checkpoint (``--run RUN --step
STEP [--variant V]``, variants as ``eval_params.py``; ``planner``: the run's exported planner,
e.g. a ``dmpc dagger`` run's).

``--reprint``: the summary again from ``OUT/trace.npz`` (no rollout). ``--dataset DIR``: how
often the pretraining data (e.g. ``data/cpu_recovery``, the pretrained planner's) holds the
states the early fallers reach.

``--seed S --episodes N``: other keys than the evaluation's (its keys are seed 0), e.g. for
starts to collect training data from that the evaluation never sees. ``--every-fall``: the
starts before every fall (a DAgger round from a planner that falls later too), not only the
early ones.

Usage: .venv/bin/python experiments/finetune/startup_trace.py CONFIG OUT [--seconds 6]
           [--run RUN --step STEP [--variant ema|raw|mix:A|rawmix:A|planner]] [--task TASK]
           [--seed S] [--episodes N] [--every-fall]
  CONFIG: a finetuning run's config.json (its pretrained planner, demonstrator, eval task and
  episode count), e.g. checkpoints/rwr/cpu_paper_replan_actuator_acting_noise0_s1/config.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import dmpc_jax  # noqa: F401  (first: it sets XLA's log level before JAX loads)

with contextlib.redirect_stdout(io.StringIO()):  # mjx's "Failed to import warp", as dmpc's CLI
    import mujoco.mjx  # noqa: F401

import numpy as np

from dmpc_jax.config import load_json
from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.envs.go2_joystick import FALL_CAUSES
from dmpc_jax.finetune.config import FinetuneConfig
from dmpc_jax.planner.load import load_planner
from dmpc_jax.planner.mpc import MPCConfig
from dmpc_jax.scenario import outcomes
from dmpc_jax.scenario.harness import Harness, HarnessConfig
from dmpc_jax.scenario.tasks import get_task

BIN_S = 0.5


def _params(args, planner):
    if args.run is None:
        return None
    sys.path.insert(0, str(Path(__file__).parent))
    from eval_params import run_params

    return run_params(Path(args.run), args.step, [args.variant], planner)[args.variant]


def trace_arrays(tr: dict, n: int) -> dict:
    """The first ``n`` steps of a harness trace as the saved quantities, [n, B] each."""
    m = {k: np.asarray(v)[:n] for k, v in tr.items() if not k.startswith("plan/")}
    out = {
        "vx": m["state/forward_vel"], "height": m["state/base_height"],
        "roll": m["state/roll"], "pitch": m["state/pitch"],
        "yaw_rate": m["qvel"][..., 5], "joints": m["qpos"][..., 7:19],
        "reward": m["reward"],
    }  # fmt: skip
    out.update({f"reward/{k[7:]}": v for k, v in m.items() if k.startswith("reward/")})
    if "probe_action" in m:
        out["action"], out["probe_action"] = m["action"], m["probe_action"]
    return out


def episode_randomization(hs: Harness, push_scale: float, batch: int) -> dict:
    """Each episode's domain randomisation (friction, added mass, centre-of-mass offset, motor
    strength, damping scale), drawn as the harness's rollout draws it: the same reset keys
    (``envs.rollout.make_segments``' ``start``)."""
    import jax

    k_start, _ = jax.random.split(hs.key)
    k_reset, _ = jax.random.split(k_start)
    env = hs.env(push_scale)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(k_reset, batch))
    dr = jax.device_get(state.info["dr"])
    out = {k: np.asarray(v) for k, v in dr.items() if k != "com_offset"}
    out["com_x"], out["com_y"] = (np.asarray(dr["com_offset"])[:, i] for i in (0, 1))
    return out


def randomization_table(dr: dict, fall_s: np.ndarray) -> None:
    """Mean of each randomised parameter per set, and the early-fall rate per tercile of it."""
    early = fall_s < 5
    print(
        "\nrandomisation: mean (early / late / survive); early falls per tercile (low, mid, high)"
    )
    late, surv = (fall_s >= 5) & np.isfinite(fall_s), ~np.isfinite(fall_s)
    for k, v in dr.items():
        edges = np.quantile(v, [1 / 3, 2 / 3])
        terc = np.digitize(v, edges)
        per = [f"{int(early[terc == i].sum())}/{int((terc == i).sum())}" for i in range(3)]
        print(f"{k:>15} {v[early].mean():7.3f} {v[late].mean():7.3f} {v[surv].mean():7.3f}   "
              + "  ".join(per))  # fmt: skip


def fall_cause(tr: dict, steps: np.ndarray) -> list[str]:
    t = np.asarray(tr["done_any"]).shape[0]
    causes = []
    for b, s in enumerate(steps):
        if s == t:
            causes.append("")
            continue
        hit = [c for c in FALL_CAUSES if np.asarray(tr[f"fall/{c}"])[s, b] > 0]
        causes.append("+".join(hit) or "?")
    return causes


def summary(p: dict, d: dict, fall_s: np.ndarray, dt: float) -> None:
    sets = {"early": fall_s < 5, "late": (fall_s >= 5) & np.isfinite(fall_s),
            "survive": ~np.isfinite(fall_s)}  # fmt: skip
    n = p["vx"].shape[0]
    bins = np.arange(0, n * dt + 1e-9, BIN_S)
    err = np.sqrt(np.mean((p["action"] - p["probe_action"]) ** 2, axis=-1))  # [T, B]
    alive = np.arange(n)[:, None] * dt < np.where(np.isfinite(fall_s), fall_s, np.inf)[None]
    print(f"episodes: {', '.join(f'{k} {int(v.sum())}' for k, v in sets.items())}")
    for name, q, scale in (("vx m/s", p["vx"], 1), ("demo vx", d["vx"], 1),
                           ("pitch deg", p["pitch"], 180 / np.pi),
                           ("demo pitch", d["pitch"], 180 / np.pi),
                           ("height cm", p["height"], 100), ("demo height", d["height"], 100),
                           ("|a - a_demo|", err, 1), ("reward", p["reward"], 1 / dt)):  # fmt: skip
        print(f"\n{name:>14} " + " ".join(f"{b:5.1f}" for b in bins[:-1]))
        for k, sel in sets.items():
            row = []
            for a, b in zip(bins, bins[1:], strict=False):
                i = slice(int(round(a / dt)), int(round(b / dt)))
                v, ok = q[i][:, sel], alive[i][:, sel]
                row.append(f"{scale * v[ok].mean():5.2f}" if ok.any() else "    -")
            print(f"{k:>14} " + " ".join(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--reprint", action="store_true", help="only the summary of OUT/trace.npz")
    ap.add_argument("--dataset", help="a pretraining dataset: its coverage of those states")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--run")
    ap.add_argument("--step", type=int)
    ap.add_argument("--variant", default="ema")
    ap.add_argument(
        "--task", help="a suite task on the same keys (default: the config's eval task)"
    )
    ap.add_argument("--seed", type=int, default=0,
                    help="the harness's key (0: the in-loop evaluation's keys; another one for "
                    "states to train on)")  # fmt: skip
    ap.add_argument("--episodes", type=int, help="default: the config's eval episodes")
    ap.add_argument("--every-fall", action="store_true",
                    help="early_states.npz holds the states before every fall, not only those "
                    "before 5 s")  # fmt: skip
    args = ap.parse_args()
    if args.reprint:
        return report(Path(args.out), args.dataset)
    cfg = load_json(FinetuneConfig, Path(args.config))
    planner = load_planner(cfg.pretrained)
    spec = get_task(args.task or cfg.eval_task).spec
    episodes = args.episodes or cfg.eval_episodes
    hs = Harness(HarnessConfig(planner_run=cfg.pretrained, demonstrator_run=cfg.demonstrator_run,
                               episodes=episodes, mpc=MPCConfig(), seed=args.seed),
                 planner=planner)  # fmt: skip
    ptr, _ = hs.run("task", spec, spec.push_scale, params=_params(args, planner), probe=True)
    dtr, _ = hs.run("demonstrator", spec, spec.push_scale)
    dt = hs.env(spec.push_scale).cfg.ctrl_dt
    n = int(round(args.seconds / dt))
    steps = outcomes.fall_steps(ptr)
    t = np.asarray(ptr["done_any"]).shape[0]
    fall_s = np.where(steps < t, outcomes.fall_time_s(steps, dt), np.inf)
    p, d = trace_arrays(ptr, n), trace_arrays(dtr, n)
    dr = episode_randomization(hs, spec.push_scale, episodes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    who = cfg.pretrained if args.run is None else f"{args.run}@{args.step} {args.variant}"
    np.savez_compressed(out / "trace.npz", fall_s=fall_s, dt=dt, planner=who, task=spec.name,
                        cause=np.array(fall_cause(ptr, steps)),
                        **p, **{f"demo/{k}": v for k, v in d.items()},
                        **{f"dr/{k}": v for k, v in dr.items()})  # fmt: skip
    (out / "command.txt").write_text(json.dumps(vars(args)) + "\n")
    save_states(ptr, fall_s, dt, out / "early_states.npz", every_fall=args.every_fall)
    report(out, args.dataset)


def coverage(p: dict, fall_s: np.ndarray, dt: float, dataset: Path) -> None:
    """How often the pretraining data holds the states the early fallers reach at 2-4 s: the
    body pitched nose-down past 3 / 5 degrees and the base below 30.5 / 30 cm (the data's clean
    privileged gravity and base height, ``envs.go2_joystick._privileged_obs``'s layout)."""
    priv = np.load(Path(dataset) / "privileged.npy", mmap_mode="r")
    g, h = np.asarray(priv[..., 6:9]), np.asarray(priv[..., 48])
    pitch = np.degrees(obs_lib.gravity_roll_pitch(np, g)[1])
    early = fall_s < 5
    i = slice(int(round(2 / dt)), int(round(4 / dt)))
    pp, hh = np.degrees(p["pitch"][i][:, early]), p["height"][i][:, early]
    alive = np.arange(i.start, i.stop)[:, None] * dt < fall_s[early][None]
    print(f"\ncoverage in {dataset} ({pitch.size:,} steps; pitch p1 / p50 / p99 "
          f"{' / '.join(f'{x:.2f}' for x in np.percentile(pitch, [1, 50, 99]))} deg, base "
          f"height p1 {100 * np.percentile(h, 1):.2f} cm) of the early fallers' states at 2-4 s:")  # fmt: skip
    for deg, cm in ((3, 30.5), (5, 30.0)):
        data = (pitch > deg) & (h < cm / 100)
        seen = (pp > deg) & (hh < cm / 100) & alive
        print(
            f"  pitch > {deg} deg and base < {cm} cm: {100 * seen.sum() / alive.sum():.1f}% of "
            f"their steps; {int(data.sum()):,} steps of the data ({100 * data.mean():.3f}%)"
        )


def save_states(tr: dict, fall_s: np.ndarray, dt: float, path: Path, every: int = 5,
                every_fall: bool = False) -> None:  # fmt: skip
    """The early fallers' full states from 1.5 s to 0.2 s before each fall, every ``every``
    steps, as ``EnvConfig.init_states`` reads them (``qpos`` [N, 19], ``qvel`` [N, 18]): starts
    for the demonstrator's recoveries from the drift (``dmpc dataset --cfg.env-set
    init_states=<path>``). ``every_fall``: every faller's, from 3.5 s (not before 1.5 s) to
    0.2 s before its fall (an early faller's states are the same)."""
    qpos, qvel = np.asarray(tr["qpos"]), np.asarray(tr["qvel"])
    fallers = np.flatnonzero(np.isfinite(fall_s) if every_fall else fall_s < 5)
    first = lambda b: max(int(1.5 / dt), int(round((fall_s[b] - 3.5) / dt)))  # noqa: E731
    rows = [(t, b) for b in fallers
            for t in range(first(b), int(round((fall_s[b] - 0.2) / dt)), every)]  # fmt: skip
    t, b = (np.array(x, int) for x in zip(*rows, strict=True)) if rows else ([], [])
    np.savez(path, qpos=qpos[t, b], qvel=qvel[t, b])


def report(out: Path, dataset: str | None = None) -> None:
    """``OUT/summary.txt`` (and stdout) from ``OUT/trace.npz``; ``dataset``: with the
    pretraining data's coverage of the early fallers' states (``coverage``)."""
    with np.load(out / "trace.npz") as z:
        f = {k: z[k] for k in z.files}
    fall_s, dt = f["fall_s"], float(f["dt"])
    pick = lambda pre: {k[len(pre) :]: v for k, v in f.items() if k.startswith(pre)}  # noqa: E731
    p = {k: v for k, v in f.items() if "/" not in k or k.startswith("reward/")}
    d, dr = pick("demo/"), pick("dr/")
    early = [str(c) for c, t in zip(f["cause"], fall_s, strict=True) if t < 5]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        counts = ", ".join(
            f"{c} {n}" for c, n in zip(*np.unique(early, return_counts=True), strict=True)
        )
        print(
            f"planner: {f.get('planner', '?')}; task {f.get('task', '?')}; early fall causes: {counts}"
        )
        summary(p, d, fall_s, dt)
        randomization_table(dr, fall_s)
        fall_model(dr, fall_s < 5)
        joint_table(p, fall_s, dt)
        if dataset:
            coverage(p, fall_s, dt, Path(dataset))
    (out / "summary.txt").write_text(text.getvalue())
    print(text.getvalue(), end="")


def joint_table(p: dict, fall_s: np.ndarray, dt: float, window=(2.0, 3.0)) -> None:
    """Per joint over ``window`` (s): the planner's action minus the demonstrator's on the same
    observation (mean and RMS) and the joint position, early fallers against survivors."""
    sets = {"early": fall_s < 5, "survive": ~np.isfinite(fall_s)}
    i = slice(int(round(window[0] / dt)), int(round(window[1] / dt)))
    diff, q = (p["action"] - p["probe_action"])[i], p["joints"][i]
    legs = [f"{leg}_{j}" for leg in ("FR", "FL", "RR", "RL") for j in ("hip", "thigh", "calf")]
    print(f"\nper joint, {window[0]:g}-{window[1]:g} s: action - demonstrator's (mean, RMS) and "
          "joint position (rad), early / survive")  # fmt: skip
    stats = {k: (diff[:, m].mean((0, 1)), np.sqrt((diff[:, m] ** 2).mean((0, 1))),
                 q[:, m].mean((0, 1))) for k, m in sets.items()}  # fmt: skip
    for j, name in enumerate(legs):
        row = "  ".join(f"{stats[k][0][j]:6.3f} {stats[k][1][j]:5.2f} {stats[k][2][j]:6.3f}"
                        for k in sets)  # fmt: skip
        print(f"{name:>9} {row}")


def fall_model(dr: dict, early: np.ndarray) -> None:
    """A logistic regression of the early falls on the standardised randomised parameters
    (Newton's method): each parameter's coefficient with its standard error and z."""
    keys = list(dr)
    x = np.stack([(dr[k] - dr[k].mean()) / dr[k].std() for k in keys], 1)
    x = np.c_[np.ones(len(early)), x]
    y, w = early.astype(np.float64), np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        h = x.T @ (x * (p * (1 - p))[:, None]) + 1e-9 * np.eye(len(w))
        w = w + np.linalg.solve(h, x.T @ (y - p))
    se = np.sqrt(np.diag(np.linalg.inv(h)))
    print("\nearly fall ~ logistic(standardised parameters): coefficient +- standard error (z)")
    for k, b, e in zip(["intercept", *keys], w, se, strict=True):
        print(f"{k:>15} {b:6.2f} +- {e:4.2f} ({b / e:5.1f})")


if __name__ == "__main__":
    main()
