"""``dmpc eval``: Diffusion-MPC in closed loop on a test-time task, against baselines in the same run.

Controllers, all in one harness (same env, same keys, so the same randomisation and pushes):
- ``task``: the planner with the task's rewards, guidance and hard bounds;
- ``nominal``: the planner walking at the task's command (learned-reward guidance only);
- ``unguided``: the planner with guidance scale 0 and no bounds (the plain diffusion policy);
- ``demonstrator``: the PPO policy the data came from.

The three planner variants run through one compiled rollout (the task is an array input), so they
cost one compilation per env model. Every controller runs twice on the same keys: on the feet-only
model for our ``strict`` success rule and on the full-contact model for the authors' ``paper`` and
``box`` rules (``scenario.outcomes``). Per controller: success under each rule with its Wilson 95%
interval, the cause, time and attitude of every fall, velocity-tracking error, mechanical energy
per metre, base height, joint velocity and acceleration RMS, rear-leg lift error, hard-bound
violations (executed actions, executed planned states) with the measured joints against the
bound, and (planner) the latency of one plan for one robot; every metric but the paper/box
success comes from the strict rollout. Writes ``results.json``, the page (table + acceptance
verdict), a plot and a video into ``experiments/tasks/<task>/`` (``report_tasks``).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from dmpc_jax.config import apply_overrides, load_json
from dmpc_jax.evaluate import report_tasks
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR, DEFAULT_PLANNER
from dmpc_jax.planner.constraints import no_constraints
from dmpc_jax.planner.mpc import MPCConfig
from dmpc_jax.planner.sampler import SamplerConfig
from dmpc_jax.planner.task import TaskSpec
from dmpc_jax.robot import go2
from dmpc_jax.scenario import outcomes
from dmpc_jax.scenario.harness import Harness, HarnessConfig, controller_specs, plan_latency_ms
from dmpc_jax.scenario.metrics import episode_stats, motion_metrics
from dmpc_jax.scenario.tasks import SuiteTask, get_task

CONTROLLERS = ("task", "nominal", "unguided", "demonstrator")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The ``EvalConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        task: a suite task name (``scenario/tasks.py``).
        task_file: a TaskSpec JSON file used instead of the named task's spec.
        set: overrides of the task spec, ``field.path=json`` (e.g. ``weights.energy=0.05``).
        planner_run: pretraining/finetuning run of the planner.
        demonstrator_run: PPO run for the baseline.
        controllers: which of task, nominal, unguided, demonstrator to run.
        rules: success rules to measure (``scenario.outcomes.RULES``): ``strict`` always runs;
            ``paper`` or ``box`` add a rollout of every controller on the full-contact model.
        episodes: episodes (envs) per controller. 384 bounds the Wilson 95% half-width by 5.0
            points at any rate (3.5 at 10% or 90%), at about 6-7x the cost of a 64-episode run
            (measured: walk_1.0, planner + demonstrator on both env models, 34 min on 2 cores;
            README "What success means"); the suite and sweep pages ran 64 (``--cfg.episodes 64``).
        episode_s: episode length, s.
        num_candidates: N plans per call (best kept).
        method: ddpm or ddim; ddim_steps: its step count.
        warm_start: reverse steps skipped by starting each plan from the previous one (0: cold).
        cache_after: early-step caching (``SamplerConfig.cache_after``; 8 of K = 10 is "cache-2"):
            later plans run the remaining steps from the cache; refreshed on reset and when the
            command moves by more than ``cache_refresh`` (diffusion scale).
        analytic_on_x0: analytic task rewards guide the clean estimate x0_hat (sampler docstring);
            on by default here: on x_k they barely moved the measured quantities.
        execute: E and D of the receding horizon (async timeline).
        margin: E and D of the receding horizon (async timeline).
        mode: ``async`` (the robot's timeline) or ``sync`` (plan and execute E rows; E = 1 replans
            every step).
        inpaint_committed: async: inpaint the D in-flight actions into the new plan (MPCConfig).
        env_set: overrides of the evaluation env's config, ``field.path=json`` (e.g.
            ``noise.enabled=false``, ``push.enabled=false``, ``noise.delay_last_action=false``);
            applied to both env models.
        seed: PRNG seed (every controller gets the same keys).
        out_dir: output directory (default experiments/tasks/<task>).
        video: render the first episode of the task controller.
        latency_calls: timed single-robot plan calls for the latency column.
    """

    task: str = "walk_1.0"
    task_file: str | None = None
    set: tuple[str, ...] = ()
    planner_run: str = DEFAULT_PLANNER
    demonstrator_run: str = DEFAULT_DEMONSTRATOR
    controllers: tuple[str, ...] = CONTROLLERS
    rules: tuple[str, ...] = outcomes.RULES
    episodes: int = 384
    episode_s: float = 20.0
    num_candidates: int = 1
    method: str = "ddpm"
    ddim_steps: int = 5
    warm_start: int = 0
    cache_after: int = 0
    cache_refresh: float = 0.5
    analytic_on_x0: bool = True
    execute: int = 11
    margin: int = 4
    mode: str = "async"
    inpaint_committed: bool = False
    env_set: tuple[str, ...] = ()
    seed: int = 0
    out_dir: str | None = None
    video: bool = True
    latency_calls: int = 20

    def __post_init__(self):
        bad = set(self.controllers) - set(CONTROLLERS)
        if bad:
            raise ValueError(f"unknown controller(s) {sorted(bad)}; choose from {CONTROLLERS}")
        bad = set(self.rules) - set(outcomes.RULES)
        if bad or "strict" not in self.rules:
            raise ValueError(
                f"EvalConfig.rules must include 'strict' and name only {outcomes.RULES}, "
                f"got {self.rules}"
            )
        if self.episodes < 1 or self.episode_s <= 0:
            raise ValueError("EvalConfig.episodes must be >= 1 and episode_s > 0")

    def command_line(self) -> str:
        """The ``dmpc eval`` command line that reproduces this config: the task, planner, episodes,
        length, candidates, sampler and seed always (the planner named even at the default, which
        has changed: a page keeps naming what it measured), every other field where it differs
        from the default."""
        always = (
            "task",
            "planner_run",
            "episodes",
            "episode_s",
            "num_candidates",
            "method",
            "seed",
        )
        default = EvalConfig()
        parts = ["dmpc eval"]
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name not in always and v == getattr(default, f.name):
                continue
            flag = "--cfg." + f.name.replace("_", "-")
            if isinstance(v, bool):
                parts.append(flag if v else flag.replace("--cfg.", "--cfg.no-", 1))
            elif isinstance(v, tuple):
                parts.append(" ".join([flag, *(shlex.quote(str(x)) for x in v)]))
            else:
                parts.append(f"{flag} {v:g}" if isinstance(v, float) else f"{flag} {v}")
        return " ".join(parts)

    def harness_config(self) -> HarnessConfig:
        """The harness settings of this evaluation (sampler and receding horizon nested)."""
        return HarnessConfig(
            planner_run=self.planner_run, demonstrator_run=self.demonstrator_run,
            episodes=self.episodes, episode_s=self.episode_s, seed=self.seed,
            env_set=self.env_set,
            sampler=SamplerConfig(
                num_candidates=self.num_candidates, method=self.method,
                ddim_steps=self.ddim_steps, warm_start=self.warm_start,
                cache_after=self.cache_after, cache_refresh=self.cache_refresh,
                analytic_on_x0=self.analytic_on_x0,
            ),
            mpc=MPCConfig(
                execute=self.execute, margin=self.margin, mode=self.mode,
                inpaint_committed=self.inpaint_committed,
            ),
        )  # fmt: skip


def rear_lift_reference(spec: TaskSpec, q_default) -> np.ndarray:
    """[6] rear-leg joint reference of the leg-lift task, clipped to the joint range as the
    planner's reward clips it (thigh + 0.5 on the paper's pose lies beyond the thigh limit)."""
    lo, hi = go2.joint_limits()
    ref = np.asarray(q_default)[6:] + np.tile(np.asarray(spec.leg_lift_offset), 2)
    return np.clip(ref, lo[6:], hi[6:])


def task_metrics(trace: dict, spec: TaskSpec, cons, robot: dict, dt: float) -> dict:
    """Episode metrics beyond ``episode_stats``: ``motion_metrics``, rear-leg lift error against
    the reachable reference and the hard-bound report (``outcomes.constraint_report``), over the
    steps before a fall."""
    alive = ~np.asarray(trace["done_any"])  # [T, B]
    n = max(alive.sum(), 1)
    q = np.asarray(trace["qpos"])[..., 7:]
    rear_ref = rear_lift_reference(spec, robot["q_default"])
    return {
        **motion_metrics(trace, dt),
        "rear_lift_err_rad": float((np.abs(q[..., 6:] - rear_ref).mean(-1) * alive).sum() / n),
        **outcomes.constraint_report(trace, cons.lower, cons.upper, robot),
    }


def evaluate_task(cfg: EvalConfig, *, write: bool = True, harness: Harness | None = None) -> dict:
    suite = get_task(cfg.task)
    spec = apply_overrides(
        load_json(TaskSpec, cfg.task_file) if cfg.task_file else suite.spec, cfg.set
    )
    out_dir = Path(cfg.out_dir or f"experiments/tasks/{spec.name}")
    hs = harness or Harness(cfg.harness_config())
    env = hs.env(spec.push_scale)
    dt = env.cfg.ctrl_dt
    specs = controller_specs(spec)
    results, traces = {}, {}
    for name in cfg.controllers:
        run_spec = specs.get(name, spec)
        # the rollout is one compiled program: say what runs before its minutes of compile
        print(f"{spec.name}: {name}, {hs.cfg.episodes} episodes of {hs.cfg.episode_s:g} s "
              "(compile, then roll out)...", file=sys.stderr, flush=True)  # fmt: skip
        trace, info = hs.run(name, run_spec, spec.push_scale)
        row = episode_stats(trace, spec.command[0], dt)
        if name == "demonstrator":
            robot = {"q_default": np.asarray(env.q_default)}
            row.update(task_metrics(trace, spec, no_constraints(1), robot, dt))
        else:
            robot = hs.planner.robot
            row.update(task_metrics(trace, run_spec, info["cons"], robot, dt))
            if name == "task" and cfg.latency_calls:
                row["plan_latency_ms"] = plan_latency_ms(
                    hs.planner, hs.cfg.sampler, info["task"], info["cons"], info["s_last"],
                    cfg.latency_calls,
                )  # fmt: skip
        row.update(rule_outcomes(hs, name, run_spec, spec.push_scale, trace, cfg.rules))
        row["wall_s"] = info["wall_s"]
        results[name], traces[name] = row, trace
        print(json.dumps({"task": spec.name, "controller": name, **row}), flush=True)
    result = {
        "task": spec.name,
        "description": suite.description,
        "spec": json.loads(json.dumps(dataclasses.asdict(spec))),
        "measure": suite.measure,
        "direction": suite.direction,
        "margin": suite.margin,
        "config": dataclasses.asdict(cfg),
        "env": {
            "rules": {r: outcomes.rollout_model(r) for r in cfg.rules},
            "pushes_m_per_s": list(env.cfg.push.magnitude),
            "push_interval_s": list(env.cfg.push.interval_s),
            "randomization": env.cfg.randomization.enabled,
            "noise_and_latency": env.cfg.noise.enabled,
        },
        "controllers": results,
        "verdict": verdict(suite, results),
    }
    if write:
        report_tasks.write_results(cfg, result, traces, env, out_dir)
    return result


def rule_outcomes(hs: Harness, name, spec, push_scale, trace, rules) -> dict:
    """``success`` {rule: outcomes.rate} and ``falls`` {model: outcomes.falls} of one controller;
    ``trace`` is its strict rollout, the paper rollout runs here when a rule needs it."""
    traces = {"strict": trace}
    for model in {outcomes.rollout_model(r) for r in rules} - {"strict"}:
        traces[model], _ = hs.run(name, spec, push_scale, model=model)
    dt = hs.env(push_scale).cfg.ctrl_dt
    return {
        "success": {r: outcomes.rate(outcomes.success(traces[outcomes.rollout_model(r)], r))
                    for r in rules},
        "falls": {m: outcomes.falls(tr, dt, hs.env(push_scale, m).terminating_causes)
                  for m, tr in traces.items()},
    }  # fmt: skip


def evaluate_suite(cfg: EvalConfig, tasks: tuple[str, ...]) -> list[dict]:
    """Every named task with one harness (shared compilations and baseline runs); writes each
    task's page and the summary page of experiments/tasks/."""
    hs = Harness(cfg.harness_config())
    results = []
    for name in tasks:
        results.append(evaluate_task(dataclasses.replace(cfg, task=name), harness=hs))
    report_tasks.write_summary(results, cfg, tasks)
    return results


def verdict(suite: SuiteTask, results: dict) -> dict:
    """Whether the task moved its quantity as intended against the nominal planner, with success
    >= 90%."""
    if "task" not in results:
        return {"checked": False}
    task = results["task"]
    ok_success = task["success_rate"] >= 0.9
    if suite.direction == 0:  # a hard bound (zero violations) or a walking task (success only)
        moved = (
            task["constraint_violations"] == 0 if suite.measure == "constraint_violations" else None
        )
        return {"checked": True, "moved": moved, "success_ok": bool(ok_success)}
    if "nominal" not in results:
        return {"checked": False}
    a, b = task[suite.measure], results["nominal"][suite.measure]
    delta = a - b
    if suite.measure == "energy_J_per_m":
        change = delta / b
        moved = suite.direction * change >= suite.margin
        return {"checked": True, "moved": bool(moved), "relative_change": float(change),
                "success_ok": bool(ok_success)}  # fmt: skip
    moved = suite.direction * delta >= suite.margin and suite.direction * delta > 0
    return {"checked": True, "moved": bool(moved), "change": float(delta),
            "success_ok": bool(ok_success)}  # fmt: skip
