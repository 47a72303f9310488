"""``dmpc finetune``: interactive finetuning of the planner by reward-weighted regression (METHOD §6).

Each iteration:

1. roll out the planner in ``n_envs`` MJX envs for ``steps_per_iter`` steps (synchronous
   replanning every E steps, N = 1 on ``rollout_sampler``'s path, learned-reward guidance with a
   scale drawn per env from ``guidance`` and redrawn at each episode end, Gaussian action noise,
   no constraints; envs auto-reset and continue across iterations; a freshly reset env plans at
   its next step with ``replan_at_reset``, else holds the default pose until the batch's next
   plan, and those steps are not recorded; ``rollout.make_rollout`` draws the timeline);
2. split the records at episode ends into pieces >= H, add them to the replay buffer and prune it
   to the best ``buffer_size`` pieces by mean per-step reward;
3. every ``value_every`` iterations refit R_nn on windows of the whole buffer; every
   ``denoiser_every`` iterations keep the top ``top_quantile`` of pieces per command group
   (``yaw_classes``, each split at ``speed_edges``) and train the denoiser on windows of the
   ``max_pieces`` best of them or of as many drawn at random (``selection``), weighted by a per-group softmax of their score with
   ``temperature`` over the kept set or within each minibatch (``weight_scope``), for
   ``denoiser_steps`` steps or ``update_epochs`` (expected) epochs over the kept windows;
4. every ``eval_every`` iterations (and before the first) measure success on the evaluation
   harness's task (``walk_1.0``: 20 s at 1.0 m/s, pushes on) under ``eval_rules``, planned as
   ``dmpc eval`` plans, each episode's outcome kept in ``eval_episodes.jsonl``.

The run directory holds ``config.json``, the pretrained run's ``pretrain_config.json``,
``scaler.json`` and ``robot.json`` (so ``load_planner`` reads it like a pretraining run),
``metrics.jsonl`` (one line per iteration), TensorBoard events, ``ckpt/`` (params, both Adam
states, iteration, key), ``buffer.npz`` (the replay buffer, saved with each checkpoint),
``kept.npz`` (its top-quantile pieces: what a run moved without buffer.npz resumes from),
``rollout.npz`` (every env's state at the checkpoint), ``planner/`` (the parameters the planner
uses) and ``learning_curve.png``. ``--resume`` restores all of it, so a resumed run follows the
curve of a run never stopped (``tests/test_pipeline.py``); without ``rollout.npz`` of the
checkpoint's iteration the envs restart from fresh resets.

Data-parallel like pretraining (``dmpc_jax.distributed``, ``--distributed``): the rollout's envs and
each training batch are split over a 1-D ``data`` mesh of every process's devices, parameters and
optimizer states are replicated. Every process gathers the whole rollout into its own copy of the
replay buffer and draws the same windows from the same seed, so the buffers stay identical; files
come from process 0, checkpoints from all.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from dmpc_jax import distributed as dist
from dmpc_jax.checkpointing import checkpoint_manager, truncate_metrics
from dmpc_jax.config import prepare_run
from dmpc_jax.diffusion import model as M
from dmpc_jax.diffusion.artifact import robot_constants, save_robot_constants
from dmpc_jax.diffusion.config import make_optimizer
from dmpc_jax.finetune import report
from dmpc_jax.finetune.config import FinetuneConfig
from dmpc_jax.finetune.evaluator import Evaluator
from dmpc_jax.finetune.rollout import make_env, make_rollout, nominal_spec, rollout_metrics
from dmpc_jax.finetune.rwr import ReplayBuffer
from dmpc_jax.finetune.selection import (
    effective_sample_size,
    group_weights,
    minibatch_weights,
    select_top,
)
from dmpc_jax.finetune.update import (
    anchored,
    eligible,
    finetune_optimizer,
    initial_state,
    make_update,
    offline_windows,
    restore_checkpoint,
    restore_rollout,
    save_checkpoint,
    save_rollout,
    select_for_update,
    train_network,
    update_start,
    update_steps,
)
from dmpc_jax.planner.load import load_planner
from dmpc_jax.planner.sampler import SamplerConfig
from dmpc_jax.report.logger import RunLogger


def prepare_finetune_run(
    cfg, run_dir: Path, *, resume: bool, overwrite: bool, command: str | None = None
):
    """The run directory, with the pretrained run's model config, scaling and robot constants
    (``cfg``: a FinetuneConfig or a DaggerConfig). ``command`` (the CLI invocation) is appended
    to the run's ``commands.txt``. Files come from the main process; the others wait for them."""
    if dist.is_main():
        _prepare_finetune_run(cfg, run_dir, resume=resume, overwrite=overwrite, command=command)
    dist.barrier("finetune/prepare_run")
    return Path(run_dir)


def _prepare_finetune_run(cfg, run_dir: Path, *, resume: bool, overwrite: bool, command):
    src = Path(cfg.pretrained)
    if not (src / "config.json").exists():
        raise FileNotFoundError(
            f"pretrained run {src} not found (train one with `make pretrain`, or pass "
            "--cfg.pretrained)"
        )
    saved = run_dir / "config.json"
    if resume and saved.exists():  # a resumed run may be extended: iterations alone may change
        done = json.loads(saved.read_text()).get("iterations", cfg.iterations)
        if cfg.iterations < done:
            raise ValueError(f"cannot shorten {run_dir} to {cfg.iterations} iterations")
    run_dir = prepare_run(  # what a resume may change: the length and when it evaluates/saves
        run_dir.parent, run_dir.name, cfg, resume=resume, overwrite=overwrite,
        extendable=("iterations", "eval_every", "checkpoint_every"),
    )  # fmt: skip
    pre = src / "pretrain_config.json"
    shutil.copyfile(pre if pre.exists() else src / "config.json", run_dir / "pretrain_config.json")
    shutil.copyfile(src / "scaler.json", run_dir / "scaler.json")
    save_robot_constants(run_dir, robot_constants(src))
    if command:
        with (run_dir / "commands.txt").open("a") as f:
            f.write(command + "\n")
    return run_dir


def finetune(
    cfg: FinetuneConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    max_iterations: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Run (or continue) finetuning; returns the final state dict (params, ..., iteration).
    ``command`` (the CLI invocation) is appended to the run's ``commands.txt``."""
    run_dir = prepare_finetune_run(
        cfg, Path(run_dir), resume=resume, overwrite=overwrite, command=command
    )
    planner = load_planner(cfg.pretrained)
    h = planner.dcfg.horizon
    if cfg.execute >= h:
        raise ValueError(f"FinetuneConfig.execute ({cfg.execute}) must be < the horizon ({h})")
    if cfg.steps_per_iter < h:
        raise ValueError(
            f"FinetuneConfig.steps_per_iter ({cfg.steps_per_iter}) must be >= the horizon ({h})"
        )
    den_optimizer = finetune_optimizer(cfg)  # the updates' (clip + Adam, warm-up)
    state = initial_state(cfg, planner.params)
    buf = ReplayBuffer(cfg.buffer_size, cfg.steps_per_iter, yaw_classes=cfg.yaw_classes,
                       speed_edges=cfg.speed_edges, startup_steps=cfg.startup_steps,
                       pitch_split=cfg.pitch_split)  # fmt: skip
    if resume:  # a template laid out on the mesh restores onto it
        template = dist.to_global(state, dist.replicated(dist.global_mesh()))
        state, buf = restore_checkpoint(run_dir, template, buf)
    start = int(dist.to_host(state["iteration"]))
    main = dist.is_main()
    logger = RunLogger(run_dir, start, key="iteration", main=main)
    if main:  # per-episode outcomes past the checkpoint belong to the run that was stopped
        truncate_metrics(run_dir / "eval_episodes.jsonl", start, key="iteration")
    mesh = dist.global_mesh()
    if cfg.n_envs % mesh.size or cfg.batch_size % mesh.size:
        raise ValueError(
            f"n_envs ({cfg.n_envs}) and batch_size ({cfg.batch_size}) must divide over the "
            f"{mesh.size} devices of the mesh"
        )
    replicated = dist.replicated(mesh)
    batch_sharding = dist.split(mesh, axis=1)  # [S, B, ...]
    env, r_start, r_run, upd_den, upd_val, evaluator = _programs(cfg, planner, mesh)
    offline = None
    if cfg.offline_fraction:
        offline = offline_windows(cfg.pretrained, cfg.dataset, h, cfg.offline_falls == "drop")
        if main:  # which envs: the pretraining run's own data is split, any other is not
            print(f"finetune: {len(offline):,} offline windows of {cfg.dataset} "
                  f"({'all envs' if offline.envs is None else 'its training envs'})")  # fmt: skip

    base = jax.random.PRNGKey(cfg.seed)
    carry = r_start(np.asarray(jax.random.fold_in(base, 10_000_000 + start)))
    if resume and start:  # the envs step on from where the stopped run left them
        carry, why = restore_rollout(run_dir, start, carry)
        if why and main:
            print(f"finetune: the envs start afresh at iteration {start} ({why})")
    # everything committed to the mesh up front: jit outputs are, and mixing committed and
    # uncommitted inputs between calls would compile every function twice
    params, opt_d, opt_v = dist.to_global(
        (state["params"], state["opt_denoiser"], state["opt_value"]), replicated
    )
    ema = {"den": dist.to_global(state["ema_denoiser"], replicated)} if cfg.ema_decay else {}
    # update_from pretrained: every denoiser update starts here (fresh moments, EMA reset);
    # acting: from the planner's denoiser, with the same fresh moments
    initial = None
    if cfg.update_from != "current":
        den0 = planner.params["denoiser"]
        initial = dist.to_global((den0, den_optimizer.init(den0)), replicated)
    ema_step = jax.jit(functools.partial(M.ema_update, decay=cfg.ema_decay**cfg.steps_per_call))

    def follow(p):  # after each call of steps_per_call denoiser steps
        ema["den"] = ema_step(ema["den"], p["denoiser"])

    if cfg.anchor:  # the pretrained share of every planner the run acts with
        den_anchor = dist.to_global(planner.params["denoiser"], replicated)
        mix = jax.jit(functools.partial(anchored, anchor=cfg.anchor))

    def acting(params):  # the parameters the planner acts with
        den = ema["den"] if ema else params["denoiser"]
        return {**params, "denoiser": mix(den_anchor, den) if cfg.anchor else den}

    def evaluate(params, it):  # the harness runs on each process's own device
        row = evaluator(params if jax.process_count() == 1 else dist.to_host(params))
        if main:  # per-episode outcomes on the fixed keys: arms compare episode by episode
            evaluator.append_episodes(run_dir / "eval_episodes.jsonl", it)
        return row

    end = cfg.iterations if max_iterations is None else min(cfg.iterations, start + max_iterations)
    wall0, prev_wall = time.perf_counter(), logger.prev_wall_s
    if start == 0 and evaluator is not None and cfg.eval_start:  # the "before" number
        row = {"iteration": 0, "env_steps": 0, **evaluate(acting(params), 0),
               "time/wall_s": time.perf_counter() - wall0}  # fmt: skip
        logger.log(row, 0, skip=("iteration",))
    bar = tqdm(
        total=cfg.iterations, initial=start, unit="it", disable=not (progress and main),
        desc="finetune",
    )  # fmt: skip
    for it in range(start + 1, end + 1):
        t0 = time.perf_counter()
        key = jax.random.fold_in(base, it)
        k_roll, k_val, k_den = jax.random.split(key, 3)
        carry, rec = r_run(carry, np.asarray(k_roll), acting(params))
        rec = dist.to_host(rec)  # the whole rollout on every process: identical buffers
        t_roll = time.perf_counter() - t0
        added = buf.add_rollout(rec, h, it)
        row = {"iteration": it, "env_steps": it * cfg.n_envs * cfg.steps_per_iter,
               **rollout_metrics(rec, env.cfg.ctrl_dt), "buffer/pieces": len(buf),
               "buffer/added": added, "buffer/mean_score": float(buf.score.mean()) if len(buf) else 0.0,
               "time/rollout_s": t_roll}  # fmt: skip
        rng = np.random.default_rng([cfg.seed, it])
        if len(buf) and it % cfg.value_every == 0:
            t_val = time.perf_counter()
            params, opt_v, m = train_network(
                upd_val, params, opt_v, buf, rng, k_val, cfg, np.arange(len(buf)), None,
                cfg.value_steps, h, batch_sharding,
            )  # fmt: skip
            row.update(m)
            row["time/value_s"] = time.perf_counter() - t_val
        update = len(buf) and it % cfg.denoiser_every == 0
        if update:  # with fall_pieces drop, a buffer of falls only has nothing to train on
            t_upd = time.perf_counter()
            keep, top = select_for_update(cfg, buf, rng)
            update = len(keep) > 0
        if update:
            # both weightings: one trains, both are logged (their ESS over the kept set); the
            # return is divided by the full piece length, so the temperature acts on one scale
            scores = {"return": buf.returns / cfg.steps_per_iter, "mean": buf.score}
            weights = {name: group_weights(v[keep], buf.group[keep], cfg.temperature)
                       for name, v in scores.items()}  # fmt: skip
            score = scores[cfg.weight_by]
            batch_w, batch_ess = None, []
            if cfg.weight_scope == "minibatch":
                batch_w = minibatch_weigher(score, buf.group, cfg.temperature, batch_ess)

            n_steps = update_steps(cfg, buf, keep, h)
            origin = acting(params)["denoiser"] if cfg.update_from == "acting" else None
            params, opt_d = update_start(cfg, params, opt_d, ema, initial, origin)
            params, opt_d, m = train_network(
                upd_den, params, opt_d, buf, rng, k_den, cfg, keep, weights[cfg.weight_by],
                n_steps, h, batch_sharding, batch_weights=batch_w,
                after_call=follow if ema else None, offline=offline,
                progress="denoiser update" if progress and main else None,
                anneal=cfg.lr_anneal, starts=cfg.window_starts,
            )  # fmt: skip
            row.update(m)
            row.update({"rwr/kept": len(keep), "rwr/kept_fraction": len(keep) / len(buf),
                        "rwr/ess": effective_sample_size(weights[cfg.weight_by]),  # kept set
                        "rwr/ess_return": effective_sample_size(weights["return"]),
                        "rwr/ess_mean": effective_sample_size(weights["mean"]),
                        "rwr/kept_mean_score": float(buf.score[keep].mean()),
                        "rwr/kept_fell_fraction": float(buf.fell[keep].mean()),
                        "rwr/top_fell_fraction": float(buf.fell[top].mean()),
                        "rwr/denoiser_steps": n_steps,
                        "time/update_s": time.perf_counter() - t_upd})  # fmt: skip
            if buf.n_strata > 1:  # start-up / nose-down groups: their pieces held and kept
                stratum = buf.strata()
                for k in range(buf.n_strata):
                    row[f"buffer/stratum{k}"] = int((stratum == k).sum())
                    row[f"rwr/kept_stratum{k}"] = int((stratum[keep] == k).sum())
            if batch_ess:  # the weights that trained: ESS / B of the minibatches
                row["rwr/ess_batch_fraction"] = float(np.mean(batch_ess))
        if evaluator is not None and (it % cfg.eval_every == 0 or it == cfg.iterations):
            row.update(evaluate(acting(params), it))
        row["time/iter_s"] = time.perf_counter() - t0
        row["time/wall_s"] = prev_wall + time.perf_counter() - wall0
        logger.log(row, it, skip=("iteration",))
        if it % cfg.checkpoint_every == 0 or it == end:
            st = {"params": params, "opt_denoiser": opt_d, "opt_value": opt_v,
                  "iteration": dist.to_global(np.int32(it), replicated),
                  **({"ema_denoiser": ema["den"]} if ema else {})}  # fmt: skip
            kept = select_top(buf.score, buf.group, cfg.top_quantile, cfg.buffer_size,
                              buf.group_sizes(), eligible(cfg, buf))  # fmt: skip
            save_rollout(run_dir, it, carry)  # first: a checkpoint never outruns its envs
            save_checkpoint(run_dir, st, buf, kept=kept, planner=acting(params))
        bar.update(1)
        bar.set_postfix(
            reward=f"{row['rollout/reward_per_step']:.3f}",
            falls=f"{row['rollout/falls_per_env_min']:.2f}",
            **(
                {"success": f"{row['eval/success_rate']:.2f}"} if "eval/success_rate" in row else {}
            ),
        )
    bar.close()
    logger.close()
    if main:
        report.plot_learning_curve(run_dir / "metrics.jsonl", run_dir / "learning_curve.png")
    return {"params": params, "planner": acting(params), "iteration": end, "buffer": buf}


_PROGRAMS: dict = {}  # the loop's jitted programs, per config and planner files


def _programs(cfg: FinetuneConfig, planner, mesh):
    """(env, rollout start, rollout run, denoiser update, value update, evaluator) of a config
    and pretrained run, built once per process: a resumed or repeated run in the same process
    (the pipeline test runs three) calls the functions it traced before instead of tracing them
    again. Keyed by the config, the planner's checkpoint digest, the bytes of the files its
    programs bake in (model config, scaling, robot constants; the demonstrator run's config,
    whose env the rollout and the evaluator use) and the demonstrator's newest checkpoint step
    (the evaluator's probe policy); parameters are run-time inputs."""
    src, demo = Path(cfg.pretrained), Path(cfg.demonstrator_run)
    paths = [src / n for n in ("pretrain_config.json", "config.json", "scaler.json", "robot.json")]
    paths.append(demo / "config.json")  # the rollout's and the evaluator's env, and its probe
    files = tuple(p.read_bytes() if p.exists() else b"" for p in paths)
    demo_step = checkpoint_manager(demo).latest_step() if (demo / "ckpt").exists() else None
    key = (cfg, planner.source, src.resolve(), demo.resolve(), files, demo_step, mesh.size,
           jax.process_count())  # fmt: skip
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    dcfg, nets = planner.dcfg, planner.nets
    env = make_env(cfg, cfg.env_set)
    _, task, cons = planner.task_args(nominal_spec(cfg))
    scfg = SamplerConfig(num_candidates=1).with_variant(cfg.rollout_sampler, dcfg.num_steps)
    r_start, r_run = make_rollout(cfg, env, planner.plan_fn(scfg), task, cons)
    # the rollout carry (env state, chunk, index, fresh, scales, age): envs split over the mesh
    envs, replicated = dist.split(mesh), dist.replicated(mesh)
    carry_sharding = (envs, envs, replicated, envs, envs, envs)
    records = dist.split(mesh, axis=1)  # [T, B, ...]
    programs = (
        env,
        jax.jit(r_start, out_shardings=carry_sharding),
        jax.jit(r_run, out_shardings=(carry_sharding, records)),
        make_update(nets, dcfg, planner.scaler, finetune_optimizer(cfg), "denoiser"),
        make_update(nets, dcfg, planner.scaler, make_optimizer(cfg), "value"),
        Evaluator(cfg, planner, cfg.eval_rules, seed=cfg.eval_seed) if cfg.eval_every else None,
    )
    _PROGRAMS.clear()  # one config at a time: a long-lived process does not pile them up
    _PROGRAMS[key] = programs
    return programs


def minibatch_weigher(score, group, temperature: float, ess_out: list):
    """``piece [S, B] -> weights [S, B]``: ``minibatch_weights`` of the windows' pieces; appends
    each batch's ESS / B to ``ess_out``."""

    def weigh(piece):
        w = minibatch_weights(score[piece], group[piece], temperature)
        ess_out.extend(effective_sample_size(x) / len(x) for x in w)
        return w

    return weigh
