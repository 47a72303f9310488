"""``dmpc bench-profile``: where one plan's time goes, per XLA op class, from a ``jax.profiler``
trace of the compiled plan (the per-op timings XLA:CPU records for every thunk it runs).

For each configuration: wall time per plan, the share of the traced op time in matrix products
(``dot``), in fusions (elementwise work, normalisations, activations) and in data movement
(copies, concatenations, pads and slices of the im2col convolutions), and the number of ops per
plan. Writes ``profile_<backend>.json`` beside the bench page, which ``make bench`` renders.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import re
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from dmpc_jax.bench import report
from dmpc_jax.diffusion import model as M
from dmpc_jax.planner.constraints import no_constraints
from dmpc_jax.planner.rewards import default_task
from dmpc_jax.planner.sampler import SamplerConfig, make_plan_fn
from dmpc_jax.robot import go2

# op classes by the name XLA gives each thunk (the part before its numeric suffix): a dot (fused
# or not), an op or fusion made of nothing but data movement, another fusion, anything else
MOVE = {"copy", "concatenate", "pad", "slice", "transpose", "bitcast", "dynamic-slice",
        "dynamic-update-slice", "fusion"}  # fmt: skip
RUNTIME = re.compile(r"^\$|Thunk|Pjit|PjRt|Await|Parse|^while|^Handle|^end:")


@dataclasses.dataclass(frozen=True)
class ProfileConfig:
    """The ``ProfileConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        configs: ``model:variant:N`` each (variant: ddpm, ddim<S>, cache<R>).
        plans: traced plans per configuration.
        out_dir: where profile_<backend>.json goes (the bench page reads it).
    """

    configs: tuple[str, ...] = ("cpu:ddpm:1", "cpu:ddim5:1", "paper:ddpm:1", "paper:ddpm:16")
    plans: int = 10
    out_dir: str = "experiments/bench"


def classify(name: str) -> str | None:
    """The op class of a trace event, or None for runtime bookkeeping (not an op)."""
    if RUNTIME.search(name):
        return None
    base = re.sub(r"\.\d+$", "", name)
    if base.startswith("dot"):
        return "matmul"
    if set(base.split("_")) <= MOVE:
        return "data movement"
    return "fusion" if "fusion" in base else "other"


def breakdown(events: list[dict], plans: int) -> dict:
    """ms per plan and op count per plan of each class, from complete ('X') trace events."""
    ms, count = collections.Counter(), collections.Counter()
    for e in events:
        cls = classify(e["name"])
        if cls is not None:
            ms[cls] += e["dur"] / 1e3 / plans
            count[cls] += 1 / plans
    total = sum(ms.values())
    return {
        "op_ms_per_plan": total,
        "classes": {
            c: {"ms": ms[c], "share": ms[c] / total if total else 0.0, "ops": round(count[c])}
            for c in sorted(ms)
        },  # fmt: skip
    }


def profile_one(model: str, variant: str, n: int, plans: int) -> dict:
    dcfg = M.diffusion_preset(model)
    nets, params = M.init_networks(dcfg, jax.random.PRNGKey(0))
    scfg = SamplerConfig(num_candidates=n, analytic_on_x0=True).with_variant(
        variant, dcfg.num_steps
    )
    if scfg.cache_after:
        raise ValueError("profile the full plan (ddpm or ddim<S>); a cached plan is its tail")
    robot = dict(q_default=go2.paper_default_pose(), kp=40.0, kd=1.0, action_scale=0.5)
    plan = jax.jit(make_plan_fn(nets, dcfg, scfg, M.schedule_for(dcfg), M.paper_scaler(), **robot))
    task, cons = default_task(guidance_scale=0.1), no_constraints(dcfg.horizon)
    s = jnp.zeros(49).at[8].set(-1.0).at[9].set(2.0)
    call = lambda i: jax.block_until_ready(plan(params, s, task, cons, jax.random.PRNGKey(i)))  # noqa: E731
    for i in range(3):
        call(i)
    t0 = time.perf_counter()
    for i in range(plans):
        call(i)
    wall = (time.perf_counter() - t0) / plans
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            for i in range(plans):
                call(i)
        path = glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)[0]
        events = [e for e in json.load(gzip.open(path))["traceEvents"] if e.get("ph") == "X"]
    return {"model": model, "variant": variant, "N": n, "wall_ms": 1e3 * wall,
            **breakdown(events, plans)}  # fmt: skip


def run(cfg: ProfileConfig) -> dict:
    rows = []
    for c in cfg.configs:
        model, variant, n = c.split(":")
        rows.append(profile_one(model, variant, int(n), cfg.plans))
        print(json.dumps(rows[-1]), flush=True)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = {"backend": jax.default_backend(), "jax": jax.__version__, "rows": rows,
           "command": "dmpc bench-profile"}  # fmt: skip
    (out / f"profile_{res['backend']}.json").write_text(json.dumps(res, indent=2) + "\n")
    report.write_sampler_page(out)
    return res
