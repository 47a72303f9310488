"""Open-loop: does a finetuned denoiser plan the demonstrator's recovery from the planner's
drifting states better than the pretrained one? No closed loop, so it separates "the update did
not learn the recoveries" from "it learned them and the closed loop does not show it".

DATASET: a ``dmpc dataset`` collected from recorded starts (``--cfg.env-set init_states=...
episode_length_s=2.0``, e.g. from ``startup_trace.py``'s ``early_states.npz`` of keys that no
training data came from). From each episode's first observation (the recorded drifting state)
each planner plans ``--samples`` times with the finetuning rollouts' sampler (N = 1, the run's
``rollout_sampler``, guidance at the middle of the run's range); the error of its rows
h = 0 .. E-1 against the demonstrator's actions a_0 .. a_{E-1} of that episode (what it did
from there), per joint in units of the demonstrator's per-joint std over those rows, is
averaged over the episodes that did not fall and the samples. Row 0 is the action on the state
itself; later rows compare with a trajectory the planner's own plan need not follow.

Planners: the pretrained one and, for each ``RUN:STEP[:VARIANT]`` (variants as
``eval_params.py``: ema, raw, mix:A, rawmix:A; default ema), the checkpoint's; a bare run
directory is its saved planner (``planner/``, e.g. a ``dmpc dagger`` run's).

Usage: .venv/bin/python experiments/finetune/recovery_fit.py CONFIG DATASET RUN:STEP[:VARIANT]|RUN...
           [--episodes 512] [--samples 4]
  CONFIG: a finetuning run's config.json (its pretrained planner and rollout sampler)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import dmpc_jax  # noqa: F401  (first: it sets XLA's log level before JAX loads)

with contextlib.redirect_stdout(io.StringIO()):  # mjx's "Failed to import warp", as dmpc's CLI
    import mujoco.mjx  # noqa: F401

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_params import run_params  # noqa: E402

from dmpc_jax.config import load_json  # noqa: E402
from dmpc_jax.data.dataset import fallen_rows, load_dataset, window_starts  # noqa: E402
from dmpc_jax.finetune.config import FinetuneConfig  # noqa: E402
from dmpc_jax.finetune.rollout import nominal_spec  # noqa: E402
from dmpc_jax.planner.load import load_planner  # noqa: E402
from dmpc_jax.planner.sampler import SamplerConfig  # noqa: E402


def episode_starts(done: np.ndarray, terminated: np.ndarray, e: int, limit: int) -> np.ndarray:
    """(env, t) of the first row of each episode that does not fall and holds ``e`` rows."""
    first = np.zeros_like(done)
    first[:, 0] = True
    first[:, 1:] = done[:, :-1]
    ok = np.zeros_like(done)
    env, t = window_starts(done, e).T  # e rows inside one episode
    ok[env, t] = True
    ok &= first & ~fallen_rows(done, terminated)
    env, t = np.nonzero(ok)
    return np.stack([env, t], 1)[:limit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("dataset")
    ap.add_argument("points", nargs="+", help="RUN:STEP[:VARIANT]")
    ap.add_argument("--episodes", type=int, default=512)
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args()
    cfg = load_json(FinetuneConfig, Path(args.config))
    planner = load_planner(cfg.pretrained)
    e = cfg.execute
    ds = load_dataset(Path(args.dataset))
    done, term = np.asarray(ds["done"]), np.asarray(ds["terminated"])
    starts = episode_starts(done, term, e, args.episodes)
    rows = starts[:, 1:2] + np.arange(e)[None]
    obs = np.asarray(ds["obs"])[starts[:, 0], starts[:, 1]]  # [B, 49]
    demo = np.asarray(ds["action"])[starts[:, :1], rows]  # [B, E, 12]
    std = demo.reshape(-1, 12).std(0)

    _, task, cons = planner.task_args(nominal_spec(cfg))
    task = task.replace(guidance_scale=jnp.asarray(0.5 * sum(cfg.guidance), jnp.float32))
    scfg = SamplerConfig(num_candidates=1).with_variant(cfg.rollout_sampler, planner.dcfg.num_steps)
    plan = planner.plan_fn(scfg)

    @jax.jit
    def plans(params, obs, key):  # [S, B, E, 12]
        def one(s, k):
            return plan(params, s, task, cons, k).action[:e]

        keys = jax.random.split(key, (args.samples, obs.shape[0]))
        return jax.vmap(lambda ks: jax.vmap(one)(obs, ks))(keys)

    points = [("pretrained", planner.params)]
    for p in args.points:
        if ":" not in p:  # a planner run (pretraining, finetuning or dagger): its saved planner
            points.append((Path(p).name, load_planner(p).params))
            continue
        run, step, *variant = p.split(":", 2)
        name = variant[0] if variant else "ema"
        points.append((f"{Path(run).name}@{step} {name}",
                       run_params(Path(run), int(step), [name], planner)[name]))  # fmt: skip
    print(f"{len(starts)} recovery episodes of {args.dataset} (first {e} rows; error in units of "
          f"the demonstrator's per-joint std; {args.samples} plans each)")  # fmt: skip
    print(f"{'planner':<58} {'row 0':>7} {'rows 0-3':>9} {'rows 0-' + str(e - 1):>9}")
    for name, params in points:
        a = np.asarray(plans(params, jnp.asarray(obs), jax.random.PRNGKey(0)))
        err = np.abs(a - demo[None]) / std  # [S, B, E, 12]
        per_row = err.mean(axis=(0, 1, 3))
        print(f"{name:<58} {per_row[0]:7.3f} {per_row[:4].mean():9.3f} {per_row.mean():9.3f}")


if __name__ == "__main__":
    main()
