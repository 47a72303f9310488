"""The PyTorch baseline of ``make bench`` computes the same function as our JAX networks (same
weights): otherwise the speed ratio would compare different work. Skipped without torch (a
failure in CI: DMPC_REQUIRE_EXTRAS)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import skip_without_extra

from dmpc_jax.diffusion import model as M

try:
    import torch
except ImportError:
    skip_without_extra("the bench extra (pip install -e '.[bench]') is absent: no torch")


@pytest.mark.slow
def test_torch_networks_match_jax():
    from dmpc_jax.bench.torch_ref import from_jax

    cfg = M.diffusion_preset("tiny")
    _, params = M.init_networks(cfg, jax.random.PRNGKey(0))
    nets = M.network_defs(cfg)
    # non-zero biases and norm parameters, so a misplaced one shows
    params = jax.tree.map(
        lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(p.size), p.shape), params
    )
    unet, value = from_jax(cfg, params, M.TRANSITION_DIM)
    # every weight in torch's own layout: a strided one is copied by each conv call, which made
    # the baseline 2-3.5x slower than the authors' code it stands for
    strided = [
        n for net in (unet, value) for n, p in net.named_parameters() if not p.is_contiguous()
    ]
    assert not strided, strided
    x = jax.random.normal(jax.random.PRNGKey(1), (3, cfg.horizon, M.TRANSITION_DIM))
    k = jnp.array([0, 1, 3])
    xt = torch.from_numpy(np.asarray(x).transpose(0, 2, 1).copy())
    kt = torch.from_numpy(np.asarray(k))
    with torch.no_grad():
        y_t = unet(xt, kt).numpy().transpose(0, 2, 1)
        v_t = value(xt, kt).numpy()
    np.testing.assert_allclose(y_t, M.apply_denoiser(nets, params["denoiser"], x, k), atol=2e-4)
    np.testing.assert_allclose(v_t, M.apply_value(nets, params["value"], x, k), atol=2e-4)


def test_floors_of_a_row():
    """Weight bytes per plan: U-Net once and the value net twice per step, plus one ranking
    pass; each floor in ms, and the row's distance to the higher one."""
    from dmpc_jax.bench.floors import add_floors, weight_bytes_per_plan

    params = {"denoiser": {"w": np.zeros((1000,))}, "value": {"w": np.zeros((10, 10))}}
    assert weight_bytes_per_plan(params, 10) == 4.0 * (10 * (1000 + 2 * 100) + 100)
    row = {"gflop_per_call": 2.0, "gflop_per_s": 100.0, "steps": 10, "p50_ms": 30.0}
    add_floors(row, params, peak=200e9, bandwidth=4.82e6)
    assert row["floor_compute_ms"] == 10.0
    assert abs(row["floor_memory_ms"] - 1e3 * 48400 / 4.82e6) < 1e-9  # ~10.04 ms
    assert abs(row["over_floor"] - 30.0 / row["floor_memory_ms"]) < 1e-12


def test_profile_breakdown_classes_ops_and_skips_runtime_events():
    """Trace events -> ms and op counts per plan by class; runtime bookkeeping is not an op."""
    from dmpc_jax.bench.profile import breakdown, classify

    assert classify("dot.2177") == "matmul"
    assert classify("concatenate.12") == classify("pad_slice_fusion.3") == "data movement"
    assert classify("select_tanh_fusion.1") == classify("bitcast_reduce_fusion.2") == "fusion"
    assert classify("dot_add_fusion.4") == "matmul"
    assert classify("ThunkExecutor::Execute") is None and classify("$profiler.py:1 trace") is None
    assert classify("while.107") is None and classify("rng-bit-generator.1") == "other"
    events = [{"name": "dot.1", "dur": 3000}, {"name": "dot.2", "dur": 1000},
              {"name": "add_fusion.1", "dur": 2000}, {"name": "ThunkExecutor::Execute", "dur": 9e6}]  # fmt: skip
    b = breakdown(events, plans=2)
    assert b["op_ms_per_plan"] == 3.0
    assert b["classes"]["matmul"] == {"ms": 2.0, "share": 2.0 / 3.0, "ops": 1}
    assert b["classes"]["fusion"]["ms"] == 1.0
