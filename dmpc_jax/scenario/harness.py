"""The closed-loop harness: each controller (the planner under a TaskSpec, or the demonstrator)
run on the scenario env with the same keys, each rollout compiled once per env, each distinct run
cached. ``dmpc eval``, its sweep and the finetuning loop's evaluator share it."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.config import to_dict
from dmpc_jax.envs.rollout import make_rollout
from dmpc_jax.planner.load import load_planner
from dmpc_jax.planner.mpc import MPCConfig
from dmpc_jax.planner.sampler import PlanCache, SamplerConfig, make_cached_plan_fn
from dmpc_jax.planner.task import NN_GUIDANCE, RewardWeights, TaskSpec
from dmpc_jax.rl.train import load_batched_policy
from dmpc_jax.scenario.env import make_env


@dataclasses.dataclass(frozen=True)
class HarnessConfig:
    """What a harness run depends on besides the controller's TaskSpec.

    Attributes:
        planner_run: pretraining/finetuning run of the planner (loaded when first needed).
        demonstrator_run: PPO run: its env config is the scenario's, its policy the baseline.
        episodes: episodes (envs) per rollout.
        episode_s: episode length, s.
        seed: PRNG seed (every controller gets the same keys).
        env_set: overrides of the env config, ``field.path=json``, applied to both env models.
        sampler: the planner's sampler (N, DDPM/DDIM, warm start, caching); by default N = 1,
            DDPM, analytic task rewards guiding x0_hat (as ``dmpc eval``).
        mpc: the receding-horizon timeline (E, D, async/sync).
    """

    planner_run: str
    demonstrator_run: str
    episodes: int
    episode_s: float = 20.0
    seed: int = 0
    env_set: tuple[str, ...] = ()
    sampler: SamplerConfig = SamplerConfig(num_candidates=1, analytic_on_x0=True)
    mpc: MPCConfig = MPCConfig()


def controller_specs(spec: TaskSpec) -> dict[str, TaskSpec]:
    """The TaskSpec each planner controller runs, derived from the task's."""
    return {
        "task": spec,
        "nominal": TaskSpec(name="nominal", command=spec.command, guidance_scale=NN_GUIDANCE),
        "unguided": TaskSpec(
            name="unguided", command=spec.command, guidance_scale=0.0, weights=RewardWeights()
        ),
    }


def make_planner_rollout(
    env, planner, scfg: SamplerConfig, mcfg: MPCConfig, n_steps, batch, probe=None
):
    """``rollout(key, command, planner.task_args(spec))``: one compile for every task.
    ``probe``: a policy whose action on each closed-loop state the trace records."""
    return make_rollout(env, planner.controller(scfg, mcfg), n_steps, batch, probe)


def plan_latency_ms(planner, scfg, task, cons, s_now, calls: int) -> dict:
    """Median and p90 wall time of one plan for one robot (compile excluded). With a cache: the
    steady state (plans from a fresh cache at a held command); ``refresh_median`` is a full plan
    through the same compiled function (first plan, command change)."""
    plan = planner.plan_fn(scfg)
    if scfg.cache_after:
        cached = jax.jit(make_cached_plan_fn(plan, scfg, planner.scaler))
        empty = PlanCache.empty(scfg.num_candidates, planner.dcfg.horizon)
        _, cache = jax.block_until_ready(
            cached(planner.params, s_now, task, cons, jax.random.PRNGKey(0), empty)
        )
        call = lambda k, c=cache: cached(planner.params, s_now, task, cons, k, c)  # noqa: E731
        refresh = lambda k: cached(planner.params, s_now, task, cons, k, empty)  # noqa: E731
    else:
        plan = jax.jit(plan)
        call = lambda k: plan(planner.params, s_now, task, cons, k)  # noqa: E731
        refresh = None

    def timed(fn):
        jax.block_until_ready(fn(jax.random.PRNGKey(0)))
        times = []
        for i in range(calls):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(jax.random.PRNGKey(i)))
            times.append(1e3 * (time.perf_counter() - t0))
        return times

    times = timed(call)
    out = {"median": float(np.median(times)), "p90": float(np.percentile(times, 90))}
    if refresh is not None:
        out["refresh_median"] = float(np.median(timed(refresh)))
    return out


class Harness:
    """Compiles each rollout once per env (push scale, model) and runs each distinct controller
    once: a suite of tasks shares the nominal, unguided and demonstrator runs at the same
    command."""

    def __init__(self, cfg: HarnessConfig, planner=None):
        """``planner``: an already loaded ``TrainedPlanner`` (else ``cfg.planner_run`` is loaded
        when first needed)."""
        self.cfg = cfg
        self.key = jax.random.PRNGKey(cfg.seed)
        self._envs, self._rollouts, self._runs = {}, {}, {}
        self._planner = planner

    def env(self, push_scale: float, model: str = "strict"):
        if (push_scale, model) not in self._envs:
            self._envs[(push_scale, model)] = make_env(
                self.cfg.demonstrator_run, self.cfg.episode_s, push_scale, model, self.cfg.env_set
            )
        return self._envs[(push_scale, model)]

    @property
    def planner(self):
        if self._planner is None:
            self._planner = load_planner(self.cfg.planner_run)
        return self._planner

    def _rollout(self, kind: str, push_scale: float, model: str):
        if (kind, push_scale, model) not in self._rollouts:
            env, c = self.env(push_scale, model), self.cfg
            # the demonstrator acts, or (planner+probe) answers on the planner's states
            demo = None if kind == "planner" else load_batched_policy(Path(c.demonstrator_run))
            if kind == "demonstrator":
                fn = make_rollout(env, demo, env.cfg.episode_steps, c.episodes)
            else:
                fn = make_planner_rollout(
                    env, self.planner, c.sampler, c.mpc, env.cfg.episode_steps, c.episodes, demo
                )
            self._rollouts[(kind, push_scale, model)] = fn
        return self._rollouts[(kind, push_scale, model)]

    def run(
        self,
        name: str,
        spec: TaskSpec,
        push_scale: float,
        params=None,
        model: str = "strict",
        probe: bool = False,
    ) -> tuple[dict, dict]:
        """(trace, info) of one controller on one spec and env ``model`` (``make_env``), cached
        by what determines the run. ``params`` (planner only) replaces the loaded planner's
        parameters, uncached: the same compiled rollout evaluates a planner being finetuned.
        ``probe`` (planner only): the trace also holds ``probe_action``, the demonstrator's
        action on each state the planner acted on."""
        kind = "demonstrator" if name == "demonstrator" else "planner"
        if probe and kind == "planner":
            kind = "planner+probe"
        what = (
            json.dumps(to_dict(dataclasses.replace(spec, name="")))
            if kind != "demonstrator"
            else None
        )
        ident = (kind, what, spec.command, push_scale, model)
        if params is None and ident in self._runs:
            return self._runs[ident]
        command = jnp.asarray(spec.command, jnp.float32)
        t0 = time.perf_counter()
        info = {}
        if kind != "demonstrator":
            args = self.planner.task_args(spec)
            if params is not None:
                args = args._replace(params=params)
            final, trace = self._rollout(kind, push_scale, model)(self.key, command, args)
            info = {"task": args.task, "cons": args.cons, "s_last": final.obs["state"][0]}
        else:
            _, trace = self._rollout(kind, push_scale, model)(self.key, command)
        trace = jax.device_get(trace)
        info["wall_s"] = time.perf_counter() - t0
        if params is None:
            self._runs[ident] = (trace, info)
        return trace, info
