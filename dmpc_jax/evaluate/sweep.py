"""``dmpc eval-sweep``: closed-loop success of one planner across receding-horizon settings.

Each variant ``E/D[/warm[/N]][:sampler]`` (chunk length, replan margin, warm-start steps,
candidates, sampling path ``ddpm``, ``ddim<S>`` or ``cache<R>``: ``SamplerConfig.with_variant``) runs
the planner on one task in the evaluation harness of ``dmpc eval`` (same env, same keys: the same
randomisation and pushes for every variant), next to the demonstrator, with success under the
strict, paper and box rules (``evaluate.outcomes``) and the falls by cause. Writes ``results.json``,
README.md (a table with the command that made it), a survival plot (fraction of robots still up
against time) into ``experiments/mpc_sweep/`` by default.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from dmpc_jax.evaluate import outcomes
from dmpc_jax.evaluate.planner_eval import EvalConfig, Harness, plan_latency_ms, rule_outcomes
from dmpc_jax.evaluate.policy_eval import episode_stats
from dmpc_jax.evaluate.tasks import get_task
from dmpc_jax.planner.sampler import SamplerConfig


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


def fall_times_s(trace: dict, dt: float) -> list[float]:
    steps = outcomes.fall_steps(trace)
    fell = steps < np.asarray(trace["done_any"]).shape[0]
    return sorted((steps[fell] * dt).round(2).tolist())


def run_sweep(
    cfg: EvalConfig, variants: tuple[str, ...], *, demonstrator: bool = True, out: Path
) -> dict:
    """Runs every variant (one compile each) and the demonstrator; writes the page in ``out``."""
    from dmpc_jax.planner.load import load_planner

    parsed = [Variant.parse(v) for v in variants]  # fail on a typo before any compile
    spec = get_task(cfg.task).spec
    planner = load_planner(cfg.planner_run)
    rows, curves = [], {}
    for v in parsed:
        vcfg = v.eval_config(cfg, planner.dcfg.num_steps)
        hs = Harness(vcfg, planner=planner)
        trace, info = hs.run("task", spec, spec.push_scale)
        dt = hs.env(spec.push_scale).cfg.ctrl_dt
        row = {
            "variant": dataclasses.asdict(v), "label": v.label,
            "plans_every": v.execute - v.margin,
            **episode_stats(trace, spec.command[0], dt),
            **rule_outcomes(hs, "task", spec, spec.push_scale, trace, cfg.rules),
            "fall_times_s": fall_times_s(trace, dt), "wall_s": info["wall_s"],
        }  # fmt: skip
        if cfg.latency_calls:
            row["plan_latency_ms"] = plan_latency_ms(
                planner, hs.scfg, info["task"], info["cons"], info["s_last"], cfg.latency_calls
            )
        rows.append(row)
        curves[v.label] = survival(trace)
        print(json.dumps({k: row[k] for k in ("label", "success_rate", "tracking_err_m_per_s")}),
              flush=True)  # fmt: skip
    result = {"task": cfg.task, "config": dataclasses.asdict(cfg), "variants": rows}
    if demonstrator:
        hs = Harness(cfg, planner=planner)
        trace, info = hs.run("demonstrator", spec, spec.push_scale)
        dt = hs.env(spec.push_scale).cfg.ctrl_dt
        result["demonstrator"] = {
            **episode_stats(trace, spec.command[0], dt),
            **rule_outcomes(hs, "demonstrator", spec, spec.push_scale, trace, cfg.rules),
            "fall_times_s": fall_times_s(trace, dt),
        }
        curves["demonstrator (PPO)"] = survival(trace)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    _plot(curves, dt, out / "survival.png")
    write_page(result, out, "dmpc " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    return result


def rows_by_label(result: dict):
    """(label, row) of every variant and of the demonstrator."""
    yield from ((r["label"], r) for r in result["variants"])
    if "demonstrator" in result:
        yield "demonstrator (PPO)", result["demonstrator"]


def _plot(curves: dict, dt: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, c in curves.items():
        ax.plot(np.arange(len(c)) * dt, 100 * c, label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("robots still up (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency(row: dict) -> str:
    lat = row.get("plan_latency_ms")
    if not lat:
        return "-"
    s = f"{lat['median']:.1f}"
    return s + (f" (refresh {lat['refresh_median']:.1f})" if "refresh_median" in lat else "")


def write_page(result: dict, out: Path, command: str) -> None:
    cfg = result["config"]
    lines = [
        "# Receding-horizon settings in closed loop",
        "",
        f"Command: `{command}`",
        "",
        f"Planner `{cfg['planner_run']}`, task `{result['task']}`, {cfg['episodes']} episodes of "
        f"{cfg['episode_s']:g} s per row, pushes, domain randomisation, sensor noise and latency on, "
        f"the same keys (seed {cfg['seed']}) for every row. E: actions executed per plan; D: "
        "actions of the old chunk still to run when the next plan starts (its latency budget); "
        "warm: reverse steps skipped by starting from the previous plan; N: candidates; "
        "sampler: `ddim<S>` S strided DDIM steps, `cache<R>` the last R of K steps from an "
        "early-step cache refreshed on reset and on a command change > 0.5 (diffusion scale), "
        "DDPM (all K steps) when absent. Plan latency: one robot, one plan call, median over "
        f"{cfg.get('latency_calls', 0)} calls on this machine (with a cache: from a fresh cache; "
        "a refresh costs a full plan). "
        "Success [Wilson 95% interval] under the `strict` rule (ours: no base/knee contact, "
        "feet-only model), the `paper` rule (the authors' roll > 1.0 / pitch > 1.6 rad only, "
        "full-contact model) and the authors' `box` count (leaving a 3.3 m box before failing "
        "is a success); falls by cause from the strict rollout. Energy: work over forward "
        "distance pooled over every episode's steps before its fall (as on every page).",
        "",
        "| variant | plans every | "
        + " | ".join(f"success: {r}" for r in cfg["rules"])
        + " | falls (strict) | \\|v - v_cmd\\| (m/s) | forward vel (m/s) | energy (J/m) "
        "| plan p50 (ms) |",
        "|---|---:|" + "---:|" * len(cfg["rules"]) + "---|---:|---:|---:|---:|",
    ]
    rows = [(label, r.get("plans_every", 1), r) for label, r in rows_by_label(result)]
    for label, every, r in rows:
        succ = " | ".join(outcomes.format_rate(r["success"][k]) for k in cfg["rules"])
        lines.append(
            f"| {label} | {every} | {succ} | {outcomes.format_falls(r['falls']['strict'])} | "
            f"{r['tracking_err_m_per_s']:.3f} | {r['mean_forward_vel']:.2f} | "
            f"{r['energy_J_per_m']:.0f} | {_latency(r)} |"
        )
    lines += ["", "![survival](survival.png)", ""]
    lines += outcomes.falls_section(dict(rows_by_label(result)))
    (out / "README.md").write_text("\n".join(lines))
