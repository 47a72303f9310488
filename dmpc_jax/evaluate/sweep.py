"""``dmpc eval-sweep``: closed-loop success of one planner across receding-horizon settings.

Each variant ``E/D[/warm[/N]][:sampler]`` (chunk length, replan margin, warm-start steps,
candidates, sampling path ``ddpm``, ``ddim<S>`` or ``cache<R>``: ``SamplerConfig.with_variant``) runs
the planner on one task in the evaluation harness of ``dmpc eval`` (same env, same keys: the same
randomisation and pushes for every variant), next to the demonstrator, with success under the
strict, paper and box rules (``scenario.outcomes``) and the falls by cause. Writes ``results.json``,
the page (a table with the command that made it), a survival plot (fraction of robots still up
against time) into ``experiments/mpc_sweep/`` by default.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from dmpc_jax.evaluate import report_sweep
from dmpc_jax.evaluate.planner_eval import EvalConfig, rule_outcomes
from dmpc_jax.planner.load import load_planner
from dmpc_jax.planner.sampler import SamplerConfig
from dmpc_jax.scenario import outcomes
from dmpc_jax.scenario.harness import Harness, plan_latency_ms
from dmpc_jax.scenario.metrics import episode_stats
from dmpc_jax.scenario.tasks import get_task


@dataclasses.dataclass(frozen=True)
class Variant:
    execute: int
    margin: int
    warm_start: int = 0
    num_candidates: int = 1
    sampler: str = ""

    @classmethod
    def parse(cls, text: str) -> Variant:
        numbers, _, sampler = text.partition(":")
        try:
            parts = [int(p) for p in numbers.split("/")]
            if not 2 <= len(parts) <= 4:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"variant {text!r}: expected E/D[/warm_start[/N]][:sampler], e.g. 20/4 or "
                "11/4/0/16:cache2"
            ) from None
        if sampler:
            SamplerConfig().with_variant(sampler, 10)  # a typo fails before any compile
        return cls(*parts, sampler=sampler)

    @property
    def label(self) -> str:
        s = f"E={self.execute} D={self.margin}"
        if self.warm_start:
            s += f" warm={self.warm_start}"
        s += f" N={self.num_candidates}" if self.num_candidates > 1 else ""
        return s + (f" {self.sampler}" if self.sampler else "")

    def eval_config(self, cfg: EvalConfig, num_steps: int) -> EvalConfig:
        """``cfg`` with this variant's receding horizon and sampling path (K = ``num_steps``)."""
        cfg = dataclasses.replace(
            cfg, execute=self.execute, margin=self.margin, warm_start=self.warm_start,
            num_candidates=self.num_candidates,
        )  # fmt: skip
        if not self.sampler:
            return cfg
        s = SamplerConfig().with_variant(self.sampler, num_steps)
        return dataclasses.replace(
            cfg, method=s.method, ddim_steps=s.ddim_steps, cache_after=s.cache_after
        )


def survival(trace: dict) -> np.ndarray:
    """Fraction of robots not yet fallen at each step [T]."""
    return 1.0 - np.asarray(trace["done_any"]).mean(1)


def run_sweep(
    cfg: EvalConfig, variants: tuple[str, ...], *, demonstrator: bool = True, out: Path
) -> dict:
    """Runs every variant (one compile each) and the demonstrator; writes the page in ``out``."""
    parsed = [Variant.parse(v) for v in variants]  # fail on a typo before any compile
    spec = get_task(cfg.task).spec
    planner = load_planner(cfg.planner_run)
    rows, curves = [], {}
    for v in parsed:
        vcfg = v.eval_config(cfg, planner.dcfg.num_steps)
        hs = Harness(vcfg.harness_config(), planner=planner)
        trace, info = hs.run("task", spec, spec.push_scale)
        dt = hs.env(spec.push_scale).cfg.ctrl_dt
        row = {
            "variant": dataclasses.asdict(v), "label": v.label,
            "plans_every": v.execute - v.margin,
            **episode_stats(trace, spec.command[0], dt),
            **rule_outcomes(hs, "task", spec, spec.push_scale, trace, cfg.rules),
            "fall_times_s": outcomes.fall_times_s(trace, dt), "wall_s": info["wall_s"],
        }  # fmt: skip
        if cfg.latency_calls:
            row["plan_latency_ms"] = plan_latency_ms(
                planner,
                hs.cfg.sampler,
                info["task"],
                info["cons"],
                info["s_last"],
                cfg.latency_calls,
            )
        rows.append(row)
        curves[v.label] = survival(trace)
        print(json.dumps({k: row[k] for k in ("label", "success_rate", "tracking_err_m_per_s")}),
              flush=True)  # fmt: skip
    result = {"task": cfg.task, "config": dataclasses.asdict(cfg), "variants": rows}
    if demonstrator:
        hs = Harness(cfg.harness_config(), planner=planner)
        trace, info = hs.run("demonstrator", spec, spec.push_scale)
        dt = hs.env(spec.push_scale).cfg.ctrl_dt
        result["demonstrator"] = {
            **episode_stats(trace, spec.command[0], dt),
            **rule_outcomes(hs, "demonstrator", spec, spec.push_scale, trace, cfg.rules),
            "fall_times_s": outcomes.fall_times_s(trace, dt),
        }
        curves["demonstrator (PPO)"] = survival(trace)
    out.mkdir(parents=True, exist_ok=True)
    result["command"] = "dmpc " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    (out / "results.json").write_text(json.dumps(result, indent=2))
    report_sweep.plot_survival(curves, dt, out / "survival.png")
    report_sweep.write_page(result, out, result["command"])
    return result
