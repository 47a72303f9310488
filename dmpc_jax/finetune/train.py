"""``dmpc finetune``: interactive finetuning of the planner by reward-weighted regression (METHOD §6).

Each iteration:

1. roll out the planner in ``n_envs`` MJX envs for ``steps_per_iter`` steps (synchronous
   replanning every E steps, N = 1, learned-reward guidance with a scale drawn per env from
   ``guidance`` and redrawn at each episode end, Gaussian action noise, no constraints; envs
   auto-reset and continue across iterations; a freshly reset env holds the default pose until
   the batch's next plan and those steps are not recorded);
2. split the records at episode ends into pieces >= H, add them to the replay buffer and prune it
   to the best ``buffer_size`` pieces by mean per-step reward;
3. every ``value_every`` iterations refit R_nn on windows of the whole buffer; every
   ``denoiser_every`` iterations keep the top ``top_quantile`` of pieces per yaw-command-sign
   group (at most ``max_pieces``), weight them by a per-group softmax of their score with
   ``temperature`` (mean 1), and train the denoiser on their windows with those weights;
4. every ``eval_every`` iterations (and before the first) measure the success rate of the current
   planner on the evaluation harness's task (``walk_1.0``: 20 s at 1.0 m/s, pushes on).

The run directory holds ``config.json``, the pretrained run's ``pretrain_config.json``,
``scaler.json`` and ``robot.json`` (so ``load_planner`` reads it like a pretraining run),
``metrics.jsonl`` (one line per iteration), TensorBoard events, ``ckpt/`` (params, both Adam
states, iteration, key), ``buffer.npz`` (the replay buffer, saved with each checkpoint),
``planner/`` (the parameters the planner uses) and ``learning_curve.png``. ``--resume`` restores
all of it; the envs restart from fresh resets.

Data-parallel like pretraining (``dmpc_jax.distributed``, ``--distributed``): the rollout's envs and
each training batch are split over a 1-D ``data`` mesh of every process's devices, parameters and
optimizer states are replicated. Every process gathers the whole rollout into its own copy of the
replay buffer and draws the same windows from the same seed, so the buffers stay identical; files
come from process 0, checkpoints from all.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding
from tqdm import tqdm

from dmpc_jax import distributed as dist
from dmpc_jax.checkpointing import (
    checkpoint_manager,
    previous_wall_time,
    restore_state,
    truncate_metrics,
)
from dmpc_jax.config import from_dict, prepare_run, to_dict
from dmpc_jax.diffusion import model as M
from dmpc_jax.diffusion.train import (
    checkpoint_digest,
    make_optimizer,
    robot_constants,
    save_planner_params,
)
from dmpc_jax.finetune.rwr import (
    ReplayBuffer,
    effective_sample_size,
    group_weights,
    select_top,
)
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR, DEFAULT_PRETRAINED


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Attributes:
    pretrained: the pretraining run the planner starts from.
    demonstrator_run: the PPO run whose env config (randomisation, pushes, noise) is used.
    n_envs: parallel envs of the planner rollouts.
    steps_per_iter: control steps per env per iteration.
    iterations: iterations in total.
    execute: E, actions executed per plan (synchronous replanning).
    action_noise: std of the Gaussian noise added to executed actions (action units).
    guidance: range of the per-env learned-reward guidance scale.
    vx, wz: command ranges of the finetuning env (m/s, rad/s; vy = 0), resampled every
        ``resample_s``.
    buffer_size: pieces kept in the replay buffer (best by mean per-step reward).
    value_every, value_steps: R_nn refit period (iterations) and optimizer steps per refit.
    denoiser_every, denoiser_steps: denoiser update period (iterations) and steps per update.
    top_quantile, max_pieces: per-group fraction of the buffer kept for the denoiser, and the cap.
    temperature: softmax temperature of the weights.
    weight_by: what the softmax weights are taken over: ``return`` (the piece's summed reward,
        as METHOD §6 words it) or ``mean`` (its mean per-step reward, the score the top-quantile
        filter uses, and what the authors' release weights by: ``traj["rewards"].mean()`` in
        rsl_rl/storage/diffuser_rollout_storage.py; nearly uniform weights at temperature 0.02).
    batch_size, learning_rate, grad_clip: optimizer (Adam) settings of both networks.
    steps_per_call: optimizer steps per jitted call.
    checkpoint_every: iterations between checkpoints (buffer included).
    eval_every, eval_episodes, eval_task: success-rate evaluation (0 disables it).
    seed: PRNG seed.
    """

    pretrained: str = DEFAULT_PRETRAINED
    demonstrator_run: str = DEFAULT_DEMONSTRATOR
    n_envs: int = 256
    steps_per_iter: int = 50
    iterations: int = 80
    execute: int = 11
    action_noise: float = 0.3
    guidance: tuple[float, float] = (0.0, 0.2)
    vx: tuple[float, float] = (0.5, 0.9)
    wz: tuple[float, float] = (-1.0, 1.0)
    resample_s: float = 5.0
    buffer_size: int = 20_000
    value_every: int = 1
    value_steps: int = 20
    denoiser_every: int = 5
    denoiser_steps: int = 400
    top_quantile: float = 0.05
    max_pieces: int = 1500
    temperature: float = 0.02
    weight_by: Literal["return", "mean"] = "return"
    batch_size: int = 256
    learning_rate: float = 1e-4
    grad_clip: float = 1.0
    steps_per_call: int = 20
    checkpoint_every: int = 5
    eval_every: int = 10
    eval_episodes: int = 64
    eval_task: str = "walk_1.0"
    seed: int = 0

    def __post_init__(self):
        for name in ("n_envs", "steps_per_iter", "iterations", "execute", "buffer_size",
                     "value_every", "denoiser_every", "batch_size", "steps_per_call",
                     "checkpoint_every", "max_pieces"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"FinetuneConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("value_steps", "denoiser_steps"):
            if getattr(self, name) % self.steps_per_call:
                raise ValueError(
                    f"FinetuneConfig.{name} ({getattr(self, name)}) must be a multiple of "
                    f"steps_per_call ({self.steps_per_call})"
                )
        if not 0 < self.top_quantile <= 1:
            raise ValueError(
                f"FinetuneConfig.top_quantile must be in (0, 1], got {self.top_quantile}"
            )
        if self.weight_by not in ("return", "mean"):
            raise ValueError(
                f"FinetuneConfig.weight_by must be 'return' or 'mean', got {self.weight_by!r}"
            )
        if self.temperature <= 0:
            raise ValueError(f"FinetuneConfig.temperature must be > 0, got {self.temperature}")
        if self.guidance[0] > self.guidance[1] or self.guidance[0] < 0:
            raise ValueError(f"FinetuneConfig.guidance must be 0 <= lo <= hi, got {self.guidance}")
        if self.action_noise < 0:
            raise ValueError(f"FinetuneConfig.action_noise must be >= 0, got {self.action_noise}")
        if self.eval_every < 0 or self.eval_episodes < 1:
            raise ValueError("FinetuneConfig.eval_every must be >= 0 and eval_episodes >= 1")


def finetune_preset(name: str) -> FinetuneConfig:
    if name == "tiny":
        return FinetuneConfig(
            pretrained="checkpoints/diffusion/tiny", demonstrator_run="checkpoints/demonstrator/tiny",
            n_envs=4, steps_per_iter=12, iterations=2, execute=3, buffer_size=50, value_steps=2,
            denoiser_every=2, denoiser_steps=2, top_quantile=0.5, batch_size=4, steps_per_call=2,
            checkpoint_every=1, eval_every=0,
        )  # fmt: skip
    if name == "cpu":
        # stronger and more frequent updates than the paper's schedule scaled down, less action
        # noise, 2 s pieces, commands up to the evaluation speed: at part of METHOD's settings
        # (attempt 1, experiments/finetune: its NOTE.md lists what differed from METHOD) 64
        # iterations on 256 envs did not move the success rate
        return FinetuneConfig(
            steps_per_iter=100, action_noise=0.1, vx=(0.5, 1.0), denoiser_every=2,
            denoiser_steps=400, learning_rate=3e-4, iterations=40, checkpoint_every=2,
        )  # fmt: skip
    if name == "paper":
        return FinetuneConfig(
            pretrained="checkpoints/diffusion/paper",
            demonstrator_run="checkpoints/demonstrator/paper", n_envs=4096, iterations=150,
            guidance=(0.0, 1.0), buffer_size=100_000, value_steps=1000, top_quantile=0.015,
            denoiser_steps=5000, batch_size=8192, steps_per_call=100, eval_every=10,
            eval_episodes=256,
        )  # fmt: skip
    raise ValueError(f"unknown finetune preset {name!r}; choose tiny, cpu or paper")


# ------------------------------------------------------------------ rollouts


def make_env(cfg: FinetuneConfig, env_set: tuple[str, ...] = ()):
    """The demonstrator's env (randomisation, pushes, noise, latency) with the finetuning commands
    and the paper's reward (METHOD §7); ``env_set``: config overrides, ``field.path=json``
    (``planner.task.apply_overrides``), applied last."""
    from dmpc_jax.envs.config import CommandConfig, RewardConfig
    from dmpc_jax.envs.go2_joystick import Go2Joystick
    from dmpc_jax.rl.ppo import DemonstratorConfig

    path = Path(cfg.demonstrator_run) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: finetuning needs the demonstrator's env config")
    env_cfg = from_dict(DemonstratorConfig, json.loads(path.read_text())).env
    env_cfg = dataclasses.replace(
        env_cfg,
        command=CommandConfig(
            vx=cfg.vx, vy=(0.0, 0.0), wz=cfg.wz, resample_s=cfg.resample_s, zero_prob=0.0
        ),  # fmt: skip
        reward=RewardConfig(preset="finetune", clip_negative=False),
    )
    if env_set:
        from dmpc_jax.planner.task import apply_overrides

        env_cfg = apply_overrides(env_cfg, env_set)
    return Go2Joystick(env_cfg)


def make_rollout(cfg: FinetuneConfig, env, plan_fn, task, cons):
    """``(start(key) -> carry, run(carry, key, params) -> (carry, records))``, both jitted.

    ``plan_fn(params, s_now, task, cons, key)`` is the sampler (N = 1); ``task`` carries the
    learned-reward weight, its guidance scale is replaced per env. Records are [T, B]: obs,
    action (executed, with noise), reward, done, terminated, valid (a planned step), wz.
    """
    from dmpc_jax.envs.wrappers import wrap_for_training

    wrapped = wrap_for_training(env, env.cfg.episode_steps)
    b, e = cfg.n_envs, cfg.execute
    lo, hi = cfg.guidance

    def draw_scales(key):
        return jax.random.uniform(key, (b,), minval=lo, maxval=hi)

    def start(key):
        k_env, k_g = jax.random.split(key)
        state = wrapped.reset(jax.random.split(k_env, b))
        chunk = jnp.zeros((b, e, 12))  # replaced at the first step (index = E)
        carry = (state, chunk, jnp.asarray(e, jnp.int32), jnp.zeros(b, bool), draw_scales(k_g))
        # reset leaves some weakly typed scalars that step makes strong: strip them, so the
        # first and later ``run`` calls share one compilation
        return jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), carry)

    def plan_batch(params, obs, scales, key):
        def one(s, k, g):
            return plan_fn(params, s, task.replace(guidance_scale=g), cons, k).action[:e]

        return jax.vmap(one)(obs, jax.random.split(key, b), scales)

    def body(params, carry, key):
        state, chunk, index, fresh, scales = carry
        k_plan, k_noise, k_g = jax.random.split(key, 3)
        obs = state.obs["state"]
        need = index >= e
        chunk = jax.lax.cond(need, lambda: plan_batch(params, obs, scales, k_plan), lambda: chunk)
        index = jnp.where(need, 0, index)
        fresh = jnp.where(need, False, fresh)
        action = chunk[:, index] + cfg.action_noise * jax.random.normal(k_noise, (b, 12))
        action = jnp.where(fresh[:, None], 0.0, action)
        nxt = wrapped.step(state, action)
        done = nxt.done > 0
        rec = {
            "obs": obs,
            "action": action,
            "reward": nxt.reward,
            "done": done,
            "terminated": done & (nxt.info["truncation"] == 0),
            "valid": ~fresh,
            "wz": state.info["command"][:, 2],
        }
        scales = jnp.where(done, draw_scales(k_g), scales)
        return (nxt, chunk, index + 1, fresh | done, scales), rec

    def run(carry, key, params):
        return jax.lax.scan(
            functools.partial(body, params), carry, jax.random.split(key, cfg.steps_per_iter)
        )

    return jax.jit(start), jax.jit(run)


# ------------------------------------------------------------------ updates


def make_update(nets, dcfg: M.DiffusionConfig, scaler: dict, optimizer, which: str):
    """Jitted ``update(params, opt_state, batches, key) -> (params, opt_state, metrics)`` over a
    stack of batches [S, B, ...] (obs, action, reward, weight) for one network: ``denoiser``
    (the weighted x0 loss) or ``value`` (R_nn regression on the window's mean reward)."""
    sched, lw = M.schedule_for(dcfg), M.loss_weights(dcfg)
    scaler = {k: jnp.asarray(v) for k, v in scaler.items()}

    def loss_fn(sub, other, batch, key):
        params = {which: sub, **other}
        tau = M.to_diffusion(scaler, batch["action"], batch["obs"])
        if which == "denoiser":
            return M.diffusion_loss(nets, params, sched, lw, tau, key, batch["weight"])
        return M.value_loss(nets, params, sched, tau, batch["reward"].mean(-1), key)

    @jax.jit
    def update(params, opt_state, batches, key):
        other = {k: v for k, v in params.items() if k != which}

        def one(carry, inputs):
            sub, opt_state = carry
            batch, k = inputs
            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(sub, other, batch, k)
            updates, opt_state = optimizer.update(grads, opt_state, sub)
            metrics[f"train/{which}_grad_norm"] = optax.global_norm(grads)
            return (optax.apply_updates(sub, updates), opt_state), metrics

        n = jax.tree.leaves(batches)[0].shape[0]
        (sub, opt_state), metrics = jax.lax.scan(
            one, (params[which], opt_state), (batches, jax.random.split(key, n))
        )
        return {**params, which: sub}, opt_state, jax.tree.map(jnp.mean, metrics)

    return update


def train_network(
    update, params, opt_state, buf, rng, key, cfg, pieces, weights, n_steps, horizon,
    sharding: NamedSharding | None = None,
):  # fmt: skip
    """``n_steps`` optimizer steps on windows of ``pieces`` in calls of ``steps_per_call``;
    ``sharding`` lays each stack of batches [S, B, ...] out over the mesh (B split)."""
    metrics = {}
    for i in range(n_steps // cfg.steps_per_call):
        win = buf.windows(rng, pieces, weights, cfg.steps_per_call * cfg.batch_size, horizon)
        batches = {
            k: v.reshape((cfg.steps_per_call, cfg.batch_size) + v.shape[1:]) for k, v in win.items()
        }
        if sharding is not None:
            batches = dist.to_global(batches, sharding)
        k = np.asarray(jax.random.fold_in(key, i))  # host key: the same on every process
        params, opt_state, m = update(params, opt_state, batches, k)
        metrics = {k: float(v) for k, v in dist.to_host(m).items()}
    return params, opt_state, metrics


# ------------------------------------------------------------------ the loop


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
    run_dir = prepare_run(
        run_dir.parent, run_dir.name, cfg, resume=resume, overwrite=overwrite,
        extendable=("iterations",),
    )  # fmt: skip
    pre = src / "pretrain_config.json"
    shutil.copyfile(pre if pre.exists() else src / "config.json", run_dir / "pretrain_config.json")
    shutil.copyfile(src / "scaler.json", run_dir / "scaler.json")
    robot = {k: np.asarray(v).tolist() for k, v in robot_constants(src).items()}
    (run_dir / "robot.json").write_text(json.dumps(robot) + "\n")
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
    from dmpc_jax.planner.load import load_planner
    from dmpc_jax.planner.sampler import SamplerConfig

    run_dir = prepare_finetune_run(
        cfg, Path(run_dir), resume=resume, overwrite=overwrite, command=command
    )
    planner = load_planner(cfg.pretrained)
    dcfg, nets, h = planner.dcfg, planner.nets, planner.dcfg.horizon
    if cfg.execute >= h:
        raise ValueError(f"FinetuneConfig.execute ({cfg.execute}) must be < the horizon ({h})")
    if cfg.steps_per_iter < h:
        raise ValueError(
            f"FinetuneConfig.steps_per_iter ({cfg.steps_per_iter}) must be >= the horizon ({h})"
        )
    optimizer = make_optimizer(cfg)  # clip + Adam from cfg.grad_clip / cfg.learning_rate
    params = planner.params
    state = {
        "params": params,
        "opt_denoiser": optimizer.init(params["denoiser"]),
        "opt_value": optimizer.init(params["value"]),
        "iteration": jnp.zeros((), jnp.int32),
    }
    buf = ReplayBuffer(cfg.buffer_size, cfg.steps_per_iter)
    if resume:  # a template laid out on the mesh restores onto it
        template = dist.to_global(state, dist.replicated(dist.global_mesh()))
        state, buf = restore_checkpoint(run_dir, template, buf)
    start = int(dist.to_host(state["iteration"]))
    main = dist.is_main()
    if main:
        truncate_metrics(run_dir / "metrics.jsonl", start, key="iteration")
    mesh = dist.global_mesh()
    if cfg.n_envs % mesh.size or cfg.batch_size % mesh.size:
        raise ValueError(
            f"n_envs ({cfg.n_envs}) and batch_size ({cfg.batch_size}) must divide over the "
            f"{mesh.size} devices of the mesh"
        )
    replicated = dist.replicated(mesh)
    batch_sharding = dist.split(mesh, axis=1)  # [S, B, ...]

    env = make_env(cfg)
    spec = _nominal_spec(cfg)
    _, task, cons = planner.task_args(spec)
    plan_fn = planner.plan_fn(SamplerConfig(num_candidates=1))
    r_start, r_run = make_rollout(cfg, env, plan_fn, task, cons)
    # the rollout carry (env state, chunk, index, fresh, scales): envs split over the mesh
    envs = dist.split(mesh)
    carry_sharding = (envs, envs, replicated, envs, envs)
    r_start = jax.jit(r_start, out_shardings=carry_sharding)
    records = dist.split(mesh, axis=1)  # [T, B, ...]
    r_run = jax.jit(r_run, out_shardings=(carry_sharding, records))
    upd_den = make_update(nets, dcfg, planner.scaler, optimizer, "denoiser")
    upd_val = make_update(nets, dcfg, planner.scaler, optimizer, "value")
    evaluator = _Evaluator(cfg, planner) if cfg.eval_every else None

    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tb")) if main else None
    base = jax.random.PRNGKey(cfg.seed)
    carry = r_start(np.asarray(jax.random.fold_in(base, 10_000_000 + start)))
    # everything committed to the mesh up front: jit outputs are, and mixing committed and
    # uncommitted inputs between calls would compile every function twice
    params, opt_d, opt_v = dist.to_global(
        (state["params"], state["opt_denoiser"], state["opt_value"]), replicated
    )

    def evaluate(params):  # the harness runs on each process's own device
        return evaluator(params if jax.process_count() == 1 else dist.to_host(params))

    end = cfg.iterations if max_iterations is None else min(cfg.iterations, start + max_iterations)
    wall0, prev_wall = time.perf_counter(), previous_wall_time(run_dir / "metrics.jsonl")
    if start == 0 and evaluator is not None:  # the pretrained planner, the "before" number
        row = {"iteration": 0, "env_steps": 0, **evaluate(params),
               "time/wall_s": time.perf_counter() - wall0}  # fmt: skip
        _log(run_dir, writer, row)
    bar = tqdm(
        total=cfg.iterations, initial=start, unit="it", disable=not (progress and main),
        desc="finetune",
    )  # fmt: skip
    for it in range(start + 1, end + 1):
        t0 = time.perf_counter()
        key = jax.random.fold_in(base, it)
        k_roll, k_val, k_den = jax.random.split(key, 3)
        carry, rec = r_run(carry, np.asarray(k_roll), params)
        rec = dist.to_host(rec)  # the whole rollout on every process: identical buffers
        t_roll = time.perf_counter() - t0
        added = buf.add_rollout(rec, h, it)
        row = {"iteration": it, "env_steps": it * cfg.n_envs * cfg.steps_per_iter,
               **rollout_metrics(rec, env.cfg.ctrl_dt), "buffer/pieces": len(buf),
               "buffer/added": added, "buffer/mean_score": float(buf.score.mean()) if len(buf) else 0.0,
               "time/rollout_s": t_roll}  # fmt: skip
        rng = np.random.default_rng([cfg.seed, it])
        if len(buf) and it % cfg.value_every == 0:
            params, opt_v, m = train_network(
                upd_val, params, opt_v, buf, rng, k_val, cfg, np.arange(len(buf)), None,
                cfg.value_steps, h, batch_sharding,
            )  # fmt: skip
            row.update(m)
        if len(buf) and it % cfg.denoiser_every == 0:
            keep = select_top(buf.score, buf.group, cfg.top_quantile, cfg.max_pieces)
            # both weightings of the kept set: one trains, both are logged (their ESS)
            weights = {
                name: group_weights(v[keep], buf.group[keep], cfg.temperature)
                for name, v in (("return", buf.returns), ("mean", buf.score))
            }
            w = weights[cfg.weight_by]
            params, opt_d, m = train_network(
                upd_den, params, opt_d, buf, rng, k_den, cfg, keep, w, cfg.denoiser_steps, h,
                batch_sharding,
            )  # fmt: skip
            row.update(m)
            row.update({"rwr/kept": len(keep), "rwr/kept_fraction": len(keep) / len(buf),
                        "rwr/ess": effective_sample_size(w),
                        "rwr/ess_return": effective_sample_size(weights["return"]),
                        "rwr/ess_mean": effective_sample_size(weights["mean"]),
                        "rwr/kept_mean_score": float(buf.score[keep].mean())})  # fmt: skip
        if evaluator is not None and (it % cfg.eval_every == 0 or it == cfg.iterations):
            row.update(evaluate(params))
        row["time/iter_s"] = time.perf_counter() - t0
        row["time/wall_s"] = prev_wall + time.perf_counter() - wall0
        _log(run_dir, writer, row)
        if it % cfg.checkpoint_every == 0 or it == end:
            st = {"params": params, "opt_denoiser": opt_d, "opt_value": opt_v,
                  "iteration": dist.to_global(np.int32(it), replicated)}  # fmt: skip
            save_checkpoint(run_dir, st, buf)
        bar.update(1)
        bar.set_postfix(
            reward=f"{row['rollout/reward_per_step']:.3f}",
            falls=f"{row['rollout/falls_per_env_min']:.2f}",
            **(
                {"success": f"{row['eval/success_rate']:.2f}"} if "eval/success_rate" in row else {}
            ),
        )
    bar.close()
    if main:
        writer.close()
        plot_learning_curve(run_dir / "metrics.jsonl", run_dir / "learning_curve.png")
    return {"params": params, "iteration": end, "buffer": buf}


def save_checkpoint(
    run_dir: Path, state: dict, buf: ReplayBuffer, planner_key: str = "params"
) -> None:
    """The training state (ckpt/), the replay buffer (buffer.npz, written first: a checkpoint
    step never exists without the buffer it was saved with) and the planner's parameters
    (``state[planner_key]`` into planner/, what ``load_planner`` and the demo read)."""
    it = int(dist.to_host(state["iteration"]))
    if dist.is_main():
        buf.save(Path(run_dir) / "buffer.npz")
    mngr = checkpoint_manager(run_dir)
    mngr.save(it, args=ocp.args.StandardSave(state), force=True)
    mngr.wait_until_finished()
    save_planner_params(checkpoint_manager(run_dir, 1, "planner"), it, state[planner_key])


def restore_checkpoint(run_dir: Path, template: dict, buf: ReplayBuffer):
    """(state, buffer) of the newest checkpoint; ``(template, buf)`` unchanged if there is none."""
    mngr = checkpoint_manager(run_dir)
    if mngr.latest_step() is None:
        return template, buf
    state = restore_state(mngr, template)
    loaded = ReplayBuffer.load(Path(run_dir) / "buffer.npz")
    have, want = (
        (loaded.capacity, loaded.max_len, loaded.keep),
        (buf.capacity, buf.max_len, buf.keep),
    )
    if have != want:
        raise ValueError(
            f"replay buffer in {run_dir} has capacity/piece length/pruning {have}, the config "
            f"wants {want}"
        )
    return state, loaded


def rollout_metrics(rec: dict, dt: float) -> dict:
    valid = np.asarray(rec["valid"])
    n_env_min = valid.shape[1] * valid.shape[0] * dt / 60.0
    ended = np.asarray(rec["done"]).sum()
    falls = np.asarray(rec["terminated"]).sum()
    return {
        "rollout/reward_per_step": float(np.asarray(rec["reward"])[valid].mean()),
        "rollout/falls_per_env_min": float(falls / n_env_min),
        "rollout/episodes_ended": int(ended),
        "rollout/episode_success": float((ended - falls) / ended) if ended else float("nan"),
        "rollout/valid_fraction": float(valid.mean()),
    }


def _nominal_spec(cfg: FinetuneConfig):
    from dmpc_jax.planner.task import RewardWeights, TaskSpec

    # learned reward only (weight 1); the guidance scale is replaced per env
    return TaskSpec(name="rwr", command=(cfg.vx[1], 0.0, 0.0), guidance_scale=0.0,
                    weights=RewardWeights())  # fmt: skip


class _Evaluator:
    """The evaluation harness's task (same env, keys and metric as ``dmpc eval``), run with the
    current parameters through one compiled rollout."""

    def __init__(self, cfg: FinetuneConfig, planner):
        from dmpc_jax.evaluate.planner_eval import EvalConfig, Harness
        from dmpc_jax.evaluate.tasks import get_task

        self.spec = get_task(cfg.eval_task).spec
        self.harness = Harness(
            EvalConfig(
                task=cfg.eval_task,
                planner_run=cfg.pretrained,
                demonstrator_run=cfg.demonstrator_run,
                episodes=cfg.eval_episodes,
                controllers=("task",),
                video=False,
                latency_calls=0,
            ),  # fmt: skip
            planner=planner,
        )

    def __call__(self, params) -> dict:
        from dmpc_jax.evaluate.policy_eval import episode_stats

        trace, info = self.harness.run("task", self.spec, self.spec.push_scale, params=params)
        env = self.harness.env(self.spec.push_scale)
        s = episode_stats(trace, self.spec.command[0], env.cfg.ctrl_dt)
        return {"eval/success_rate": s["success_rate"],
                "eval/tracking_err": s["tracking_err_m_per_s"], "eval/wall_s": info["wall_s"]}  # fmt: skip


def _log(run_dir: Path, writer, row: dict) -> None:
    if not dist.is_main():
        return
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    for k, v in row.items():
        if isinstance(v, int | float) and k != "iteration":
            writer.add_scalar(k, v, row["iteration"])


def plot_learning_curve(metrics_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics_path.exists():
        return
    log = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    ev = [(m["iteration"], m["eval/success_rate"]) for m in log if "eval/success_rate" in m]
    if ev:
        axes[0].plot(*zip(*ev, strict=True), "o-")
    axes[0].set_title("success at the eval task (harness)")
    axes[0].set_ylim(-0.02, 1.02)
    ro = [m for m in log if "rollout/reward_per_step" in m]
    its = [m["iteration"] for m in ro]
    axes[1].plot(its, [m["rollout/reward_per_step"] for m in ro], label="rollouts")
    axes[1].plot(its, [m["buffer/mean_score"] for m in ro], label="buffer")
    kept = [(m["iteration"], m["rwr/kept_mean_score"]) for m in ro if "rwr/kept_mean_score" in m]
    if kept:
        axes[1].plot(*zip(*kept, strict=True), "o", label="kept for RWR")
    axes[1].legend(fontsize=8)
    axes[1].set_title("mean per-step env reward")
    axes[2].plot(its, [m["rollout/falls_per_env_min"] for m in ro])
    axes[2].set_title("falls per env-minute (rollouts)")
    ess = [(m["iteration"], m["rwr/ess"] / max(m["rwr/kept"], 1)) for m in ro if "rwr/ess" in m]
    if ess:
        axes[3].plot(*zip(*ess, strict=True), "o-")
    axes[3].set_title("ESS / kept pieces (RWR weights)")
    axes[3].set_ylim(0, 1.05)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def load_config(run_dir: Path) -> FinetuneConfig:
    return from_dict(FinetuneConfig, json.loads((Path(run_dir) / "config.json").read_text()))


__all__ = ["FinetuneConfig", "finetune", "finetune_preset"]


def write_page(run_dir: Path, out: Path) -> None:
    """experiments/finetune/README.md: success before/after, the learning curve, the settings."""
    run_dir, out = Path(run_dir), Path(out)
    cfg = load_config(run_dir)
    log = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    out.mkdir(parents=True, exist_ok=True)
    plot_learning_curve(run_dir / "metrics.jsonl", out / "learning_curve.png")
    evals = [m for m in log if "eval/success_rate" in m]
    last = log[-1] if log else {}
    cmds = run_dir / "commands.txt"
    cmds = [c for c in cmds.read_text().splitlines() if c.strip()] if cmds.exists() else []
    cmd = " then ".join(f"`{c}`" for c in cmds) or "`dmpc finetune`"
    lines = [
        "# Interactive finetuning (reward-weighted regression)",
        "",
        f"Command: `make finetune` ({cmd}; run `{run_dir}`, "
        f"{last.get('iteration', 0)} of {cfg.iterations} iterations, "
        f"{last.get('env_steps', 0):,} env steps, {last.get('time/wall_s', 0) / 3600:.2f} h).",
        "",
        f"Starting point: `{cfg.pretrained}`. Rollouts: {cfg.n_envs} envs x {cfg.steps_per_iter} "
        f"steps per iteration, synchronous replanning every E = {cfg.execute} steps, N = 1, "
        f"learned-reward guidance scale ~ U{tuple(cfg.guidance)} per env and episode, action "
        f"noise {cfg.action_noise}, commands vx ~ U{tuple(cfg.vx)} m/s, wz ~ U{tuple(cfg.wz)} "
        f"rad/s resampled every {cfg.resample_s:g} s, the demonstrator's randomisation, pushes, "
        "observation noise and latency, the paper's env reward (METHOD §7). Buffer: best "
        f"{cfg.buffer_size:,} pieces by mean per-step reward. R_nn refit every "
        f"{cfg.value_every} iteration(s) ({cfg.value_steps} steps); denoiser every "
        f"{cfg.denoiser_every} iterations ({cfg.denoiser_steps} steps, batch {cfg.batch_size}) on "
        f"the top {100 * cfg.top_quantile:g}% per yaw-sign group (at most {cfg.max_pieces}), "
        f"softmax weights with temperature {cfg.temperature}.",
        "",
        f"Success: the evaluation harness's `{cfg.eval_task}` task (`dmpc eval`: "
        f"{cfg.eval_episodes} episodes of 20 s at the task's command, pushes on, asynchronous "
        "receding horizon E = 11, D = 4, N = 1, no action noise), same keys at every point.",
        "",
        "| iteration | env steps | success | tracking err (m/s) |",
        "|---:|---:|---:|---:|",
    ]
    for m in evals:
        lines.append(
            f"| {m['iteration']} | {m.get('env_steps', 0):,} | "
            f"{100 * m['eval/success_rate']:.1f}% | {m['eval/tracking_err']:.3f} |"
        )
    lines += ["", "![learning curve](learning_curve.png)", "",
              "Per-iteration numbers (rollout reward, falls, buffer, kept fraction, effective "
              f"sample size, losses): `{run_dir}/metrics.jsonl`.", ""]  # fmt: skip
    lines += _evals_section(out)
    lines += _attempts_section(out, cfg)
    (out / "README.md").write_text("\n".join(lines))
    write_model_card(run_dir, cfg, log, out)


def write_model_card(run_dir: Path, cfg: FinetuneConfig, log: list[dict], page: Path) -> None:
    evals = [m for m in log if "eval/success_rate" in m]
    last = log[-1] if log else {}
    try:
        digest = checkpoint_digest(run_dir)
    except FileNotFoundError:
        digest = "none"
    lines = [
        f"# Model card: RWR-finetuned planner `{run_dir.name}`",
        "",
        f"- Produced by: `dmpc finetune` with `config.json` from `{cfg.pretrained}` "
        f"(`pretrain_config.json`, `scaler.json`, `robot.json` copied from it).",
        f"- Checkpoint `planner/` (`<iteration>@<digest>` {digest}); the run logged "
        f"{last.get('iteration', 0)} of {cfg.iterations} iterations, "
        f"{last.get('env_steps', 0):,} env steps, "
        f"{last.get('time/wall_s', 0) / 3600:.2f} h on 2 CPU cores. The parameters are the trained "
        "ones (no EMA); `load_planner` reads this directory like a pretraining run.",
        "- Success at the evaluation task "
        + (f"`{cfg.eval_task}`: {100 * evals[0]['eval/success_rate']:.1f}% before, "
           f"{100 * evals[-1]['eval/success_rate']:.1f}% at iteration {evals[-1]['iteration']}"
           if evals else "not measured")
        + f" ({cfg.eval_episodes} episodes of 20 s); learning curve and table: `{page}/`.",
        "- Shipped: `planner/`, configs, `metrics.jsonl`, `tb/`. The training state (`ckpt/`) and "
        "the replay buffer (`buffer.npz`) stay on the machine that trained it.",
        "",
    ]  # fmt: skip
    (run_dir / "MODEL_CARD.md").write_text("\n".join(lines))


def _evals_section(out: Path) -> list[str]:
    """Independent harness evaluations kept under ``out/eval_*/`` (``dmpc eval --cfg.out-dir``)."""
    rows = []
    for d in sorted(out.glob("eval_*")):
        if not (d / "results.json").exists():
            continue
        r = json.loads((d / "results.json").read_text())
        c, t = r["config"], r["controllers"]["task"]
        rows.append(
            f"| [`{d.name}`]({d.name}/README.md) | `{c['planner_run']}` | "
            f"{c['num_candidates']} | {c['episodes']} | "
            f"{c['seed']} | {100 * t['success_rate']:.1f}% | {t['tracking_err_m_per_s']:.3f} | "
            f"{t['mean_forward_vel']:.2f} | {t['energy_J_per_m']:.0f} |"
        )
    if not rows:
        return []
    return [
        "## Independent evaluation (fresh keys)",
        "",
        "`dmpc eval --cfg.task walk_1.0 --cfg.controllers task --cfg.episodes 128 --cfg.seed 1 "
        "--cfg.planner-run <run> --cfg.num-candidates <N> --cfg.out-dir "
        "experiments/finetune/<dir>`: the same harness with keys never used during finetuning.",
        "",
        "| page | planner | N | episodes | seed | success | \\|v - v_cmd\\| (m/s) | forward vel (m/s) | "
        "energy (J/m) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def _attempts_section(out: Path, cfg: FinetuneConfig) -> list[str]:
    """Earlier runs kept under ``out/attempt*/`` (config.json + metrics.jsonl, optional NOTE.md
    shown first): their settings where they differ from this run's, and their success rates."""
    lines = []
    for d in sorted(p for p in out.glob("attempt*") if (p / "metrics.jsonl").exists()):
        acfg = load_config(d)
        log = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines() if x.strip()]
        plot_learning_curve(d / "metrics.jsonl", d / "learning_curve.png")
        diff = {k: v for k, v in to_dict(acfg).items() if to_dict(cfg)[k] != v}
        succ = ", ".join(
            f"{m['iteration']}: {100 * m['eval/success_rate']:.1f}%"
            for m in log if "eval/success_rate" in m
        )  # fmt: skip
        if not lines:
            lines = ["## Earlier attempts", ""]
        note = (d / "NOTE.md").read_text().strip() + " " if (d / "NOTE.md").exists() else ""
        lines += [
            f"- `{d.name}/` ({log[-1]['iteration']} iterations, "
            f"{log[-1].get('env_steps', 0):,} env steps). {note}Settings that differ from the run above: "
            + ", ".join(f"`{k}` = {v}" for k, v in diff.items())
            + f". Success by iteration: {succ}. Learning curve: `{d.name}/learning_curve.png`.",
        ]
    return lines + ([""] if lines else [])
