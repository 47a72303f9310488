"""The PyTorch baseline of ``make bench`` computes the same function as our JAX networks (same
weights): otherwise the speed ratio would compare different work. Skipped without torch (a
failure in CI: DMPC_REQUIRE_EXTRAS)."""

import jax
import jax.numpy as jnp
import numpy as np
from helpers import skip_without_extra

from dmpc_jax.diffusion import model as M

try:
    import torch
except ImportError:
    skip_without_extra("the bench extra (pip install -e '.[bench]') is absent: no torch")


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
    x = jax.random.normal(jax.random.PRNGKey(1), (3, cfg.horizon, M.TRANSITION_DIM))
    k = jnp.array([0, 1, 3])
    xt = torch.from_numpy(np.asarray(x).transpose(0, 2, 1).copy())
    kt = torch.from_numpy(np.asarray(k))
    with torch.no_grad():
        y_t = unet(xt, kt).numpy().transpose(0, 2, 1)
        v_t = value(xt, kt).numpy()
    np.testing.assert_allclose(y_t, M.apply_denoiser(nets, params["denoiser"], x, k), atol=2e-4)
    np.testing.assert_allclose(v_t, M.apply_value(nets, params["value"], x, k), atol=2e-4)
