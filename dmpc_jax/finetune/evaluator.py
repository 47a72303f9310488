"""The in-loop evaluation of a finetuning run (``Evaluator``): the evaluation harness's task on
fixed keys with the parameters being finetuned, as ``dmpc eval`` plans, and ``action_error``,
the first action's distance to the demonstrator's on the planner's own closed-loop states."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dmpc_jax.planner.mpc import MPCConfig
from dmpc_jax.planner.sampler import SamplerConfig
from dmpc_jax.scenario import outcomes
from dmpc_jax.scenario.harness import Harness, HarnessConfig
from dmpc_jax.scenario.metrics import episode_stats
from dmpc_jax.scenario.tasks import get_task


def action_error(trace: dict) -> float:
    """RMS over joints and closed-loop steps (until each episode's end) of the executed action's
    difference from the demonstrator's action on the same observation (``probe_action``), in
    units of the demonstrator action's per-joint std on those states: 0 when the planner acts
    as the demonstrator would on the states it reaches itself."""
    done = np.asarray(trace["done_any"], bool)  # [T, B]: ended at or before step t
    alive = ~np.concatenate([np.zeros_like(done[:1]), done[:-1]])  # acted before any end
    a, d = np.asarray(trace["action"])[alive], np.asarray(trace["probe_action"])[alive]
    if not len(a):
        return float("nan")
    std = np.maximum(d.std(axis=0), 1e-6)
    return float(np.sqrt(np.mean(((a - d) / std) ** 2)))


def episode_times(traces: dict, dt: float) -> dict:
    """Per-episode times of one evaluation, beside its outcomes in eval_episodes.jsonl:
    ``fall_s`` {env model: [B]} the first failure's time (``outcomes.fall_time_s``), None where
    the episode never failed; ``box_exit_s`` [B] (from the ``paper`` model's trace, the one the
    box rule reads, where it ran) when the base left the box, None where it never did."""

    def seconds(steps, trace) -> list:  # T (the trace length) means never
        t = np.asarray(trace["done_any"]).shape[0]
        return [None if s == t else round(float(outcomes.fall_time_s(s, dt)), 2) for s in steps]

    out: dict = {"fall_s": {m: seconds(outcomes.fall_steps(tr), tr) for m, tr in traces.items()}}
    box = traces.get(outcomes.rollout_model("box"))
    if box is not None:
        out["box_exit_s"] = seconds(outcomes.box_exit_steps(box), box)
    return out


class Evaluator:
    """The evaluation harness's task with the current parameters: the same env, keys, sampler
    (N = 1, DDPM, analytic rewards on x0_hat) and receding horizon as ``dmpc eval`` (its
    ``HarnessConfig`` defaults), one compiled rollout per env model. Success under each of
    ``rules`` (``scenario.outcomes``); ``episodes`` keeps the last call's per-episode successes
    {rule: [B] bool}, so arms on the same keys can be compared episode by episode, and ``times``
    its fall and box-exit times (``episode_times``).
    ``eval/action_err_std``: ``action_error`` of the strict rollout."""

    def __init__(self, cfg, planner, rules: tuple[str, ...] = ("strict",), mpc=MPCConfig(),
                 seed: int = 0, candidates: int = 1):  # fmt: skip
        """``mpc``: the receding-horizon timeline (``MPCConfig``; default: ``dmpc eval``'s);
        ``seed``: the episodes' keys (0: ``dmpc eval``'s and every in-loop point's);
        ``candidates``: N plans per call, the best by the guidance reward kept (1: ``dmpc
        eval``'s default and every in-loop point's; METHOD: N > 1 at test time)."""
        self.spec = get_task(cfg.eval_task).spec
        self.rules = rules
        self.harness = Harness(
            HarnessConfig(
                planner_run=cfg.pretrained,
                demonstrator_run=cfg.demonstrator_run,
                episodes=cfg.eval_episodes,
                mpc=mpc,
                seed=seed,
                sampler=SamplerConfig(num_candidates=candidates, analytic_on_x0=True),
            ),  # fmt: skip
            planner=planner,
        )
        self.episodes: dict[str, list[bool]] = {}
        self.times: dict = {}

    def __call__(self, params) -> dict:
        spec, push = self.spec, self.spec.push_scale
        t0 = time.perf_counter()
        traces = {}
        for model in dict.fromkeys(outcomes.rollout_model(r) for r in ("strict", *self.rules)):
            traces[model], _ = self.harness.run("task", spec, push, params=params, model=model,
                                                probe=model == "strict")  # fmt: skip
        env = self.harness.env(push)
        s = episode_stats(traces["strict"], spec.command[0], env.cfg.ctrl_dt)
        row = {"eval/success_rate": s["success_rate"],
               "eval/tracking_err": s["tracking_err_m_per_s"],
               "eval/forward_vel": s["mean_forward_vel"],
               "eval/action_err_std": action_error(traces["strict"])}  # fmt: skip
        self.episodes = {}
        self.times = episode_times(traces, env.cfg.ctrl_dt)
        for rule in self.rules:
            ok = outcomes.success(traces[outcomes.rollout_model(rule)], rule)
            r = outcomes.rate(ok)
            row[f"eval/{rule}"] = r["rate"]
            row[f"eval/{rule}_lo"], row[f"eval/{rule}_hi"] = r["ci95"]
            self.episodes[rule] = [bool(x) for x in ok]
        row["eval/wall_s"] = time.perf_counter() - t0
        return row

    def append_episodes(self, path: Path, iteration: int) -> None:
        """The last call's per-episode outcomes as one line of ``path`` (eval_episodes.jsonl)."""
        with Path(path).open("a") as f:
            f.write(json.dumps({"iteration": iteration, **self.episodes, **self.times}) + "\n")
