"""The sampler benchmark's roofline: matmul FLOPs counted from a jaxpr, the device's measured
matmul peak and memory read bandwidth, and each row's compute and weight-streaming floors."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np


def count_matmul_flops(jaxpr) -> float:
    """2 * M * N * K summed over every dot_general in a (closed) jaxpr, sub-jaxprs included."""
    total = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lc, _), (lb, _) = eqn.params["dimension_numbers"]
            a = eqn.invars[0].aval.shape
            out = eqn.outvars[0].aval.shape
            contract = np.prod([a[i] for i in lc]) if lc else 1
            total += 2.0 * float(np.prod(out)) * float(contract)
            continue
        mult = float(eqn.params.get("length", 1)) if eqn.primitive.name == "scan" else 1.0
        subs = []
        for v in eqn.params.values():
            if hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):
                subs.append(v.jaxpr)
            elif hasattr(v, "eqns"):
                subs.append(v)
            elif isinstance(v, tuple):
                subs += [
                    b.jaxpr if hasattr(b, "jaxpr") else b
                    for b in v
                    if hasattr(b, "eqns") or hasattr(b, "jaxpr")
                ]
        if eqn.primitive.name == "cond":
            total += max((count_matmul_flops(s) for s in subs), default=0.0)
        else:
            total += mult * sum(count_matmul_flops(s) for s in subs)
    return total


def _best_seconds(f, x, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of the jitted ``f(x)`` after one warm-up call."""
    f = jax.jit(f)
    jax.block_until_ready(f(x))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(x))
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak_flops(n: int = 2048, repeats: int = 5) -> float:
    """Achieved fp32 FLOP/s of a large jitted matmul on the default device (the roofline)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    return 2.0 * n**3 / _best_seconds(lambda a: a @ a, a, repeats)


def memory_bandwidth(nbytes: int = 1 << 29, repeats: int = 5) -> float:
    """Achieved read bandwidth (bytes/s) of a jitted sum over a buffer far larger than the caches."""
    x = jnp.ones((nbytes // 4,), jnp.float32)
    return nbytes / _best_seconds(jnp.sum, x, repeats)


def weight_bytes_per_plan(params: dict, steps: int) -> float:
    """fp32 weight bytes one plan reads at least once per network call: the U-Net at every step,
    the value net twice per step (forward and backward of the guidance gradient) and once to rank
    the candidates."""
    size = lambda tree: 4.0 * sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
    return steps * (size(params["denoiser"]) + 2 * size(params["value"])) + size(params["value"])


def add_floors(row: dict, params: dict, peak: float, bandwidth: float) -> dict:
    """The row's compute and weight-streaming floors (ms) and its p50 over the nearer (higher)."""
    row["floor_compute_ms"] = 1e3 * row["gflop_per_call"] * 1e9 / peak
    row["floor_memory_ms"] = 1e3 * weight_bytes_per_plan(params, row["steps"]) / bandwidth
    row["over_floor"] = row["p50_ms"] / max(row["floor_compute_ms"], row["floor_memory_ms"])
    row["gflop_per_s_over_peak"] = row["gflop_per_s"] * 1e9 / peak
    return row
