"""Evaluate parameter variants of one finetuning checkpoint on the in-loop evaluation's keys.

The finetuning run's planner acts with the EMA of its trained denoiser; its checkpoint holds the
trained (raw) denoiser too. This evaluates, on the run's own evaluation (``Evaluator``: the same
env, keys, sampler and rules as the in-loop points and ``dmpc eval``):

  ema           the EMA denoiser (an anchored run acts with mix:<its anchor>); with the
                checkpoint's value net, refit every iteration, so an in-loop point of another
                iteration differs from it in the value net too
  raw           the trained denoiser the next update continues from
  mix:A         A * pretrained + (1 - A) * EMA, parameter by parameter
  rawmix:A      A * pretrained + (1 - A) * raw
  planner       the run's exported planner (``RUN/planner``: what ``dmpc eval`` loads; the only
                variant of a run without an EMA, e.g. a ``dmpc dagger`` run with ema_decay 0,
                or of a ``dmpc pretrain`` run, measured with the ``cpu_paper`` arms' settings);
                STEP then only labels the outcomes
  pretrained    the planner the run started from (its config's ``pretrained``)
  soup:A,B,...  the parameter-by-parameter mean of the exported planners of runs A, B, ...
                (trainings from one start: a "model soup"); outcomes in ``OUT/soup_<names>``
  toward:REF,T  the run's exported planner moved a share T of the way to run REF's (REF a
                training from it): P + T (P_REF - P) for the denoiser, the run's value net;
                outcomes in ``OUT/toward_<REF name>_<T>``
  jitter:REF,K  the run's exported planner plus a random direction (normal draws of seed K)
                scaled leaf by leaf to the norm of that leaf's move to REF: a move as large as
                the training's, in no trained direction; outcomes in ``OUT/jitter_<REF>_<K>``

Each variant's per-episode outcomes go to ``OUT/<variant>/eval_episodes.jsonl`` (iteration =
the checkpoint step), so ``paired.py`` compares it with any run's point:
  .venv/bin/python experiments/finetune/paired.py checkpoints/rwr/RUN:STEP OUT/<variant>

``--mode sync`` plans on the finetuning rollouts' timeline (plan from o_t, execute rows
0 .. E-1, plan again) instead of ``dmpc eval``'s robot timeline (async: a plan from o_t enters
at row D); the outcomes then go to ``OUT/<variant>_sync/``.

``--seed S`` evaluates on other keys than every in-loop point's (seed 0): whether a planner's
lead on the in-loop keys holds on episodes nothing was picked on; outcomes go to
``OUT/<variant>_seed<S>/``. ``--episodes N`` overrides the run's evaluation episodes; ``--task T``
its task (a suite task, e.g. ``walk_0.5``: what a planner trained on other data kept), outcomes
in ``OUT/<variant>_<T>/``. ``--execute E --margin D``: another receding horizon than ``dmpc
eval``'s E = 11, D = 4 (a test-time setting), outcomes in ``OUT/<variant>_E<E>D<D>/``.
``--rules strict,paper,box``: other success rules than the run's ``eval_rules`` (the ``paper``
or ``box`` rollout also records when each episode left the box: whether a success walked).
``--candidates N``: N plans per call, the best by the guidance reward kept (METHOD: N > 1 at
test time; ``dmpc eval --cfg.num-candidates``), outcomes in ``OUT/<variant>_N<N>/``.

Usage: .venv/bin/python experiments/finetune/eval_params.py RUN_DIR STEP OUT [--mode sync]
       [--seed S] [--episodes N] [--task T] [--execute E --margin D]
       [--rules R,R] [--candidates N] VARIANT...
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import dmpc_jax  # noqa: F401  (first: it sets XLA's log level before JAX loads)

with contextlib.redirect_stdout(io.StringIO()):  # mjx's "Failed to import warp", as dmpc's CLI
    import mujoco.mjx  # noqa: F401

import jax
import numpy as np

from dmpc_jax.checkpointing import checkpoint_manager, restore_state
from dmpc_jax.config import load_json
from dmpc_jax.finetune.config import FinetuneConfig, finetune_preset
from dmpc_jax.finetune.dagger_config import DaggerConfig
from dmpc_jax.finetune.evaluator import Evaluator
from dmpc_jax.finetune.update import anchored, initial_state
from dmpc_jax.planner.load import load_planner
from dmpc_jax.planner.mpc import MPCConfig


def variant_params(name: str, pretrained: dict, state: dict) -> dict:
    """The planner's parameters of one variant (the value net: the checkpoint's)."""
    base, _, a = name.partition(":")
    if base not in ("ema", "raw", "mix", "rawmix") or (base in ("mix", "rawmix")) != bool(a):
        raise SystemExit(f"unknown variant {name!r}: ema, raw, mix:A or rawmix:A")
    den = state["ema_denoiser"] if base in ("ema", "mix") else state["params"]["denoiser"]
    if a:
        den = anchored(pretrained, den, float(a))
    return {**state["params"], "denoiser": den}


def run_config(run: Path) -> FinetuneConfig | DaggerConfig:
    """The settings a run was started with: a dagger run's (its config holds branches) or a
    finetuning run's. A pretraining run (a config with a model, no pretrained run) is measured
    as the finetuning runs' starts are (``cpu_paper``: 128 episodes, strict / paper / box) with
    itself as the planner: its ``planner`` variant is ``dmpc eval``'s planner on these keys."""
    raw = json.loads((run / "config.json").read_text())
    if "pretrained" not in raw and "model" in raw:
        return dataclasses.replace(finetune_preset("cpu_paper"), pretrained=str(run))
    return load_json(DaggerConfig if "branch_steps" in raw else FinetuneConfig, run / "config.json")


def soup(runs: list[str]) -> dict:
    """The mean, parameter by parameter, of the exported planners of ``runs`` (all of one
    network layout, e.g. trainings from one start)."""
    if len(runs) < 2:
        raise SystemExit(f"soup needs two or more runs, got {runs}")
    trees = [load_planner(Path(r)).params for r in runs]
    return jax.tree.map(lambda *xs: sum(np.asarray(x, np.float32) for x in xs) / len(xs), *trees)


def ref_variant(variant: str) -> tuple[str, str, str]:
    """``toward:REF,T`` / ``jitter:REF,K`` -> (base, REF, T or K)."""
    base, _, arg = variant.partition(":")
    ref, _, x = arg.rpartition(",")
    if not ref or not x:
        raise SystemExit(f"{variant!r}: {base}:REF,{'T' if base == 'toward' else 'K'}")
    return base, ref, x


def moved(run: Path, variant: str) -> dict:
    """``toward:REF,T`` or ``jitter:REF,K`` of the run's exported planner (see the module doc)."""
    base, ref, x = ref_variant(variant)
    p, q = load_planner(run).params, load_planner(Path(ref)).params
    den, den_ref = (
        jax.tree.map(lambda a: np.asarray(a, np.float32), t["denoiser"]) for t in (p, q)
    )
    if base == "toward":
        new = jax.tree.map(lambda a, b: a + float(x) * (b - a), den, den_ref)
    else:
        leaves, tree = jax.tree.flatten(den)
        rng = np.random.default_rng(int(x))
        new_leaves = []
        for a, b in zip(leaves, jax.tree.leaves(den_ref), strict=True):
            u = rng.standard_normal(a.shape).astype(np.float32)
            norm = float(np.linalg.norm(b - a))
            new_leaves.append(a + u * (norm / max(float(np.linalg.norm(u)), 1e-12)))
        new = jax.tree.unflatten(tree, new_leaves)
    return {**p, "denoiser": new}


def out_name(variant: str) -> str:
    """The output folder's name of a variant: ``mix:0.4`` -> ``mix_0.4``, a soup's runs by their
    folder names: ``soup:a/r1,a/r2`` -> ``soup_r1-r2``."""
    base, _, arg = variant.partition(":")
    if base == "soup":
        return "soup_" + "-".join(Path(r).name for r in arg.split(","))
    if base in ("toward", "jitter"):
        _, ref, x = ref_variant(variant)
        return f"{base}_{Path(ref).name}_{x}"
    return variant.replace(":", "_")


def run_params(run: Path, step: int, names: list[str], planner) -> dict:
    """{variant: the planner's parameters} of a run (``planner``: the one it started from, whose
    denoiser the mixes take): ``planner`` and ``pretrained`` need no checkpoint; the others are
    read from the run's checkpoint at ``step`` (restored once, in the layout of the run's own
    config), which only a finetuning run with an EMA holds."""
    state = None
    fixed = ("planner", "pretrained")
    special = ("soup:", "toward:", "jitter:")
    if any(n not in fixed and not n.startswith(special) for n in names):
        cfg = run_config(run)
        if not cfg.ema_decay or isinstance(cfg, DaggerConfig) or cfg.pretrained == str(run):
            raise SystemExit(f"{run}: only the planner variant (no finetuning EMA checkpoint)")
        template = initial_state(cfg, planner.params)  # the layout the run's checkpoints hold
        state = restore_state(checkpoint_manager(run), template, step)
    out = {}
    for name in names:
        if name in fixed:
            out[name] = load_planner(run).params if name == "planner" else planner.params
        elif name.startswith("soup:"):
            out[name] = soup(name.partition(":")[2].split(","))
        elif name.startswith(("toward:", "jitter:")):
            out[name] = moved(run, name)
        else:
            out[name] = variant_params(name, planner.params["denoiser"], state)
    return out


def parse(argv: list[str]) -> tuple[Path, int, Path, dict, list[str]]:
    """RUN_DIR STEP OUT [--mode M] [--seed S] [--episodes N] [--task T] VARIANT... -> parts."""
    if len(argv) < 4:
        raise SystemExit(__doc__)
    run, step, out, rest = Path(argv[0]), int(argv[1]), Path(argv[2]), argv[3:]
    opts = {
        "mode": "async",
        "seed": 0,
        "episodes": 0,
        "task": "",
        "execute": 0,
        "margin": 0,
        "rules": "",
        "candidates": 1,
    }
    while rest[:1] and rest[0].startswith("--") and rest[0][2:] in opts and len(rest) > 1:
        flag, value, rest = rest[0][2:], rest[1], rest[2:]
        opts[flag] = value if flag in ("mode", "task", "rules") else int(value)
    if opts["mode"] not in ("async", "sync") or not rest:
        raise SystemExit(__doc__)
    if bool(opts["execute"]) != bool(opts["margin"]):
        raise SystemExit("--execute and --margin go together\n" + __doc__)
    return run, step, out, opts, rest


def main(argv: list[str]) -> None:
    run, step, out, opts, variants = parse(argv)
    cfg = run_config(run)
    if opts["episodes"]:
        cfg = dataclasses.replace(cfg, eval_episodes=opts["episodes"])
    if opts["rules"]:
        cfg = dataclasses.replace(cfg, eval_rules=tuple(opts["rules"].split(",")))
    if opts["task"]:  # another suite task on the same keys
        cfg = dataclasses.replace(cfg, eval_task=opts["task"])
    planner = load_planner(cfg.pretrained)
    params = run_params(run, step, variants, planner)
    mode, seed = opts["mode"], opts["seed"]
    horizon = {"execute": opts["execute"], "margin": opts["margin"]} if opts["execute"] else {}
    mpc = MPCConfig(mode=mode, **horizon)
    n = opts["candidates"]
    evaluator = Evaluator(cfg, planner, cfg.eval_rules, mpc=mpc, seed=seed, candidates=n)
    for name in variants:
        t0 = time.perf_counter()
        row = evaluator(params[name])
        suffix = ("_sync" if mode == "sync" else "") + (f"_seed{seed}" if seed else "")
        suffix += f"_{opts['task']}" if opts["task"] else ""
        suffix += f"_E{mpc.execute}D{mpc.margin}" if horizon else ""
        suffix += f"_N{n}" if n > 1 else ""
        d = out / (out_name(name) + suffix)
        d.mkdir(parents=True, exist_ok=True)
        evaluator.append_episodes(d / "eval_episodes.jsonl", step)
        rates = {k: round(v, 4) for k, v in row.items() if k.count("/") == 1}
        print(json.dumps({"variant": name, "step": step, "mode": mode, "seed": seed,
                          "task": cfg.eval_task, **rates,
                          "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
