"""``make bench``: throughput and latency of the guided sampler, against a PyTorch baseline run in
the same process on the same device.

Grid: N candidates, sampler variant (``ddpm10``: K = 10 DDPM steps; ``ddim5``: 5 strided DDIM
steps; ``cache2``: the last 2 steps from a cached partial sample), horizon H and robots per call.
For each: compile time (kept apart), p50 / p99 latency of one call over repeated runs after
warm-up, plans/s and trajectories/s, and FLOP/s achieved against the device's matmul peak measured
in the same run, and the two floors of each row, both measured in the same run: the compute floor
(FLOPs / matmul peak) and the weight-streaming floor (weight bytes read per plan / measured memory
read bandwidth: at small N every reverse step streams the U-Net's weights, and the value net's
twice for the guidance gradient). FLOPs are counted analytically: every matrix product in the compiled function's
jaxpr (our convolutions are matmuls), scan bodies times their length. The baseline
(``bench/torch_ref.py``) is the same networks with the same weights, sampled eagerly step by step
from Python with autograd guidance, as the authors' code does; it runs one robot per call.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.bench import report
from dmpc_jax.bench.floors import (
    add_floors,
    count_matmul_flops,
    matmul_peak_flops,
    memory_bandwidth,
)
from dmpc_jax.diffusion import model as M
from dmpc_jax.planner.constraints import no_constraints
from dmpc_jax.planner.rewards import default_task
from dmpc_jax.planner.sampler import SamplerConfig, make_plan_fn, step_indices
from dmpc_jax.robot import go2

VARIANTS = {
    "ddpm10": SamplerConfig(method="ddpm"),
    "ddim5": SamplerConfig(method="ddim", ddim_steps=5),
    "cache2": SamplerConfig(method="ddpm", cache_after=8),
}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """The ``BenchConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        model: diffusion preset of the U-Net (``paper``: 16.8 M parameters; random weights).
        candidates: N values of the main grid.
        variants: sampler variants (ddpm10, ddim5, cache2).
        horizons: H values (the first is the main grid; the others at ``extra_h_candidates``).
        extra_h_candidates: N values run at the other horizons.
        robots: robots per call (vmapped) run at N = ``robots_candidates`` (JAX only).
        robots_candidates: N of the robots rows.
        extra_models: further diffusion presets (e.g. ``cpu``, the shipped planner's size) run at
            the first horizon with ``extra_model_candidates``.
        pinned_candidates: N values of the extra models also run in a child process pinned to one
            CPU (how the deploy runner runs its planner: ``deploy/planner_process.planner_cpus``).
        torch: also run the PyTorch baseline (skipped with a message if torch is absent).
        torch_threads: intra-op threads of the baseline (0: torch's default).
        torch_compile_candidates: N values of the main model's first variant and horizon also run
            with ``torch.compile``d networks (a second baseline; its compile time is reported
            apart; empty: none).
        authors: a checkout of the authors' release: their own sampler (``bench/authors.py``)
            timed as a row beside ours at the first horizon, DDPM-10, N in
            ``authors_candidates`` ("": not run).
        authors_candidates: N values of the authors' rows.
        repeats: timed calls per configuration (fewer if ``max_seconds`` runs out).
        max_seconds: time budget of the timed calls of one configuration.
        out_dir: where the page, results.json and the plot go.
    """

    model: str = "paper"
    candidates: tuple[int, ...] = (1, 4, 16, 64)
    variants: tuple[str, ...] = ("ddpm10", "ddim5", "cache2")
    horizons: tuple[int, ...] = (24, 32)
    extra_h_candidates: tuple[int, ...] = (16,)
    robots: tuple[int, ...] = (8,)
    robots_candidates: int = 16
    extra_models: tuple[str, ...] = ("cpu",)
    extra_model_candidates: tuple[int, ...] = (1, 16)
    pinned_candidates: tuple[int, ...] = (1,)
    torch: bool = True
    torch_threads: int = 0
    torch_compile_candidates: tuple[int, ...] = (1, 16)
    authors: str = ""
    authors_candidates: tuple[int, ...] = (1, 4, 16)
    repeats: int = 20
    max_seconds: float = 20.0
    out_dir: str = "experiments/bench"

    def __post_init__(self):
        bad = set(self.variants) - set(VARIANTS)
        if bad:
            raise ValueError(f"unknown variant(s) {sorted(bad)}; known: {sorted(VARIANTS)}")


def gpu_preset() -> BenchConfig:
    return BenchConfig(candidates=(1, 4, 16, 64, 256, 1024), robots=(8, 64, 512))


# ------------------------------------------------------------------ timing


def _time_calls(fn, repeats: int, max_seconds: float) -> np.ndarray:
    fn()
    fn()  # warm-up
    times, t_end = [], time.perf_counter() + max_seconds
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > t_end and len(times) >= 3:
            break
    return np.asarray(times)


def _s_now() -> jnp.ndarray:
    s = np.zeros(49, np.float32)
    s[6:9] = [0.0, 0.0, -1.0]
    s[9] = 2.0  # command 1.0 m/s
    return jnp.asarray(s)


def bench_jax(nets, params, dcfg, variant: str, n: int, robots: int, cfg: BenchConfig) -> dict:
    scfg = dataclasses.replace(VARIANTS[variant], num_candidates=n)
    robot = dict(q_default=go2.paper_default_pose(), kp=40.0, kd=1.0, action_scale=0.5)
    plan = make_plan_fn(nets, dcfg, scfg, M.schedule_for(dcfg), M.paper_scaler(), **robot)
    task, cons = default_task(nn_weight=1.0, guidance_scale=0.1), no_constraints(dcfg.horizon)
    s_now = jnp.broadcast_to(_s_now(), (robots, 49))
    cache = None
    if scfg.cache_after:
        full = jax.jit(jax.vmap(lambda s, k: plan(params, s, task, cons, k)))
        cache = full(s_now, jax.random.split(jax.random.PRNGKey(0), robots)).cache

    def call(s, keys, cache):  # cache None: a full plan (vmap maps over no leaves)
        return jax.vmap(lambda s, k, c: plan(params, s, task, cons, k, cache=c).action)(
            s, keys, cache
        )

    keys = jax.random.split(jax.random.PRNGKey(1), robots)
    t0 = time.perf_counter()
    compiled = jax.jit(call).lower(s_now, keys, cache).compile()
    compile_s = time.perf_counter() - t0
    flops = count_matmul_flops(jax.make_jaxpr(call)(s_now, keys, cache).jaxpr)
    times = _time_calls(
        lambda: jax.block_until_ready(compiled(s_now, keys, cache)), cfg.repeats, cfg.max_seconds
    )
    p50 = float(np.median(times))
    return {
        "impl": "jax", "variant": variant, "N": n, "H": dcfg.horizon, "robots": robots,
        "steps": int(len(step_indices(dcfg, scfg)) - scfg.cache_after),
        "compile_s": compile_s, "p50_ms": 1e3 * p50, "p99_ms": 1e3 * float(np.percentile(times, 99)),
        "calls": len(times), "plans_per_s": robots / p50, "trajectories_per_s": robots * n / p50,
        "gflop_per_call": flops / 1e9, "gflop_per_s": flops / p50 / 1e9,
    }  # fmt: skip


def _pinned_row(model: str, variant: str, n: int, cfg: BenchConfig) -> dict:
    """``bench_jax`` of one configuration in a child process pinned to the last CPU."""
    import subprocess

    cpu = max(os.sched_getaffinity(0))
    args = json.dumps({"model": model, "variant": variant, "n": n,
                       "repeats": cfg.repeats, "max_seconds": cfg.max_seconds})  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-m", "dmpc_jax.bench.sampler", args], capture_output=True, text=True,
        check=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )  # fmt: skip
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row.update(model=model, pinned_cpu=cpu)
    return row


def _pinned_main(args: str) -> None:
    a = json.loads(args)
    dcfg = M.diffusion_preset(a["model"])
    nets, params = M.init_networks(dcfg, jax.random.PRNGKey(0))
    cfg = BenchConfig(repeats=a["repeats"], max_seconds=a["max_seconds"])
    print(json.dumps(bench_jax(nets, params, dcfg, a["variant"], a["n"], 1, cfg)))


def _torch_compiled(torch_nets, dcfg, variant: str, n: int, cfg: BenchConfig, row: dict) -> dict:
    """The baseline with ``torch.compile``d networks: p50 and the first call (compile) apart;
    the reason when it does not run here."""
    import torch

    t0 = time.perf_counter()
    try:
        nets = tuple(torch.compile(m) for m in torch_nets)
        bench_torch(*nets, dcfg, variant, n, dataclasses.replace(cfg, repeats=1, max_seconds=0))
        compile_s = time.perf_counter() - t0
        t = bench_torch(*nets, dcfg, variant, n, cfg)
    except Exception as e:  # noqa: BLE001 (reported on the page instead of a row)
        return {"torch_compile_error": f"{type(e).__name__}: {e}"[:200]}
    return {"torch_compile_p50_ms": t["p50_ms"], "torch_compile_s": compile_s,
            "speedup_vs_torch_compile": t["p50_ms"] / row["p50_ms"]}  # fmt: skip


def bench_torch(unet, value, dcfg, variant: str, n: int, cfg: BenchConfig) -> dict:
    import torch

    from dmpc_jax.bench.torch_ref import TorchSampler

    scfg = VARIANTS[variant]
    steps = step_indices(dcfg, scfg)
    sched = M.schedule_for(dcfg)
    x_cache = None
    if scfg.cache_after:
        steps = steps[scfg.cache_after :]
        x_cache = torch.randn(n, M.TRANSITION_DIM, dcfg.horizon)
    sampler = TorchSampler(unet, value, sched, steps, scfg.method, M.ACTION_DIM)
    s_now = torch.from_numpy(np.asarray(_s_now()))

    def call():
        x = None if x_cache is None else x_cache.clone()
        sampler.plan(s_now, n, dcfg.horizon, 0.1, x)

    times = _time_calls(call, cfg.repeats, cfg.max_seconds)
    p50 = float(np.median(times))
    return {
        "impl": "torch", "variant": variant, "N": n, "H": dcfg.horizon, "robots": 1,
        "steps": int(len(steps)), "compile_s": 0.0, "p50_ms": 1e3 * p50,
        "p99_ms": 1e3 * float(np.percentile(times, 99)), "calls": len(times),
        "plans_per_s": 1 / p50, "trajectories_per_s": n / p50,
    }  # fmt: skip


def bench_authors(plan, n: int, cfg: BenchConfig) -> dict:
    """p50 / p99 of the authors' plan (``authors.build_plan``) for one robot with N candidates."""
    state = np.asarray(_s_now())
    times = _time_calls(lambda: plan(state, n), cfg.repeats, cfg.max_seconds)
    return {"p50_ms": 1e3 * float(np.median(times)),
            "p99_ms": 1e3 * float(np.percentile(times, 99)), "calls": len(times)}  # fmt: skip


def run(cfg: BenchConfig) -> dict:
    authors_plan = None
    if cfg.authors:  # a missing or wrong checkout fails here, before anything is timed
        from dmpc_jax.bench import authors

        authors.check_checkout(cfg.authors)
    try:
        import torch

        from dmpc_jax.bench.torch_ref import from_jax

        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        have_torch = cfg.torch
    except ImportError as e:
        print(f"PyTorch baseline skipped: {e}")
        have_torch = False
    if cfg.authors:
        authors_plan = authors.build_plan(cfg.authors)
    backend = jax.default_backend()
    device = str(jax.devices()[0].device_kind)
    peak = matmul_peak_flops()
    print(f"device {device} ({backend}); fp32 matmul peak {peak / 1e9:.0f} GFLOP/s", flush=True)
    bandwidth = memory_bandwidth()
    print(f"memory read bandwidth {bandwidth / 1e9:.1f} GB/s", flush=True)
    rows = []
    grids = [(cfg.model, h) for h in cfg.horizons] + [
        (m, cfg.horizons[0]) for m in cfg.extra_models
    ]
    for i, (model, h) in enumerate(grids):
        dcfg = dataclasses.replace(M.diffusion_preset(model), horizon=h)
        nets, params = M.init_networks(dcfg, jax.random.PRNGKey(0))
        if i == 0:
            sizes = {k: int(sum(x.size for x in jax.tree.leaves(params[k]))) for k in params}
        torch_nets = from_jax(dcfg, params, M.TRANSITION_DIM) if have_torch else None
        ns = cfg.candidates if i == 0 else cfg.extra_h_candidates
        ns = cfg.extra_model_candidates if model != cfg.model else ns
        for variant in cfg.variants:
            for n in ns:
                row = bench_jax(nets, params, dcfg, variant, n, 1, cfg)
                row["model"] = model
                add_floors(row, params, peak, bandwidth)
                if torch_nets is not None:
                    t = bench_torch(*torch_nets, dcfg, variant, n, cfg)
                    row["torch_p50_ms"], row["torch_p99_ms"] = t["p50_ms"], t["p99_ms"]
                    row["speedup_vs_torch"] = t["p50_ms"] / row["p50_ms"]
                    first = i == 0 and variant == cfg.variants[0]
                    if first and n in cfg.torch_compile_candidates:
                        row.update(_torch_compiled(torch_nets, dcfg, variant, n, cfg, row))
                theirs = (  # their play config: the paper U-Net, H = 24, DDPM-10
                    authors_plan is not None and model == cfg.model == "paper"
                    and h == authors.HORIZON and variant == "ddpm10"
                )  # fmt: skip
                if theirs and n in cfg.authors_candidates:
                    a = bench_authors(authors_plan, n, cfg)
                    row["authors_p50_ms"], row["authors_p99_ms"] = a["p50_ms"], a["p99_ms"]
                    row["speedup_vs_authors"] = a["p50_ms"] / row["p50_ms"]
                    if "torch_p50_ms" in row:  # the reimplementation against the real thing
                        row["torch_over_authors"] = row["torch_p50_ms"] / a["p50_ms"]
                rows.append(row)
                print(json.dumps(row), flush=True)
        if model != cfg.model and cfg.pinned_candidates and len(os.sched_getaffinity(0)) > 1:
            for variant in cfg.variants:
                for n in cfg.pinned_candidates:
                    row = _pinned_row(model, variant, n, cfg)
                    add_floors(row, params, peak, bandwidth)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        if i == 0:
            for b in cfg.robots:
                row = bench_jax(nets, params, dcfg, "ddpm10", cfg.robots_candidates, b, cfg)
                row["model"] = model
                rows.append(add_floors(row, params, peak, bandwidth))
                print(json.dumps(row), flush=True)
    result = {
        "command": "dmpc bench " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else None,
        "device": device,
        "backend": backend,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "jax": jax.__version__,
        "torch": __import__("torch").__version__ if have_torch else None,
        "torch_threads": __import__("torch").get_num_threads() if have_torch else None,
        "model": cfg.model,
        "authors": (
            {
                "checkout": str(cfg.authors),
                "commit": authors.COMMIT,
                "stand_ins": list(authors.STAND_INS),
            }
            if cfg.authors
            else None
        ),  # fmt: skip
        "unet_params": sizes["denoiser"],
        "value_params": sizes["value"],
        "matmul_peak_gflop_per_s": peak / 1e9,
        "memory_bandwidth_gb_per_s": bandwidth / 1e9,
        "config": dataclasses.asdict(cfg),
        "rows": rows,
    }
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_{backend}.json").write_text(json.dumps(result, indent=2) + "\n")
    report.write_sampler_page(out)
    return result


if __name__ == "__main__":  # one pinned configuration (``_pinned_row``)
    import sys

    _pinned_main(sys.argv[1])
