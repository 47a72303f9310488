"""Diffusion schedule math, the U-Net, losses and EMA on tiny shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmpc_jax.diffusion import model as M
from dmpc_jax.diffusion.schedule import ddim_timesteps, make_schedule, q_sample


def test_cosine_schedule_k2_hand_worked():
    # K = 2, s = 0.008: abar(t) = cos^2((t + s) / (1 + s) * pi / 2) / abar(0) at t = 0, 1/2, 1
    #   abar(1/2) = cos^2(0.50397 * pi/2) / cos^2(0.0079365 * pi/2) = 0.4938436, abar(1) = 0
    #   beta_0 = 1 - 0.4938436 = 0.5061564; beta_1 = 1 - 0 / 0.4938436 = 1 -> clipped to 0.999
    #   alphas_cumprod = [0.4938436, 0.4938436 * 0.001 = 0.0004938]
    #   posterior variance_1 = 0.999 * (1 - 0.4938436) / (1 - 0.0004938) = 0.5059001
    #   c1_1 = 0.999 * sqrt(0.4938436) / 0.9995062 = 0.7023842
    #   c2_1 = (1 - 0.4938436) * sqrt(0.001) / 0.9995062 = 0.0160140
    s = make_schedule(2)
    np.testing.assert_allclose(s.betas, [0.5061564, 0.999], atol=1e-6)
    np.testing.assert_allclose(s.alphas_cumprod, [0.4938436, 0.0004938], atol=1e-6)
    np.testing.assert_allclose(s.posterior_variance[1], 0.5059001, atol=1e-6)
    np.testing.assert_allclose(s.posterior_mean_coef1, [1.0, 0.7023842], atol=1e-6)
    np.testing.assert_allclose(s.posterior_mean_coef2, [0.0, 0.0160140], atol=1e-6)
    # k = 0: the posterior mean is x0 itself and the variance 0
    assert float(s.posterior_variance[0]) == 0.0


def test_q_sample_and_ddim_indices():
    s = make_schedule(10)
    x0 = jnp.ones((2, 3))
    out = q_sample(s, x0, jnp.array([0, 9]), jnp.zeros((2, 3)))
    np.testing.assert_allclose(out[:, 0], np.sqrt(np.asarray(s.alphas_cumprod)[[0, 9]]), rtol=1e-6)
    np.testing.assert_array_equal(ddim_timesteps(10, 5), [9, 7, 5, 3, 1])
    np.testing.assert_array_equal(ddim_timesteps(10, 10), np.arange(9, -1, -1))
    with pytest.raises(ValueError, match="DDIM steps"):
        ddim_timesteps(10, 11)


def test_unet_paper_size_and_shapes():
    from flax import nnx

    from dmpc_jax.diffusion.unet import TemporalUNet, UNetConfig, ValueNet, count_params

    # shapes only (no 16.8 M-parameter initialisation in the test run)
    unet = nnx.eval_shape(lambda: TemporalUNet(61, UNetConfig(), nnx.Rngs(0)))
    value = nnx.eval_shape(lambda: ValueNet(61, 24, UNetConfig(), nnx.Rngs(0)))
    assert count_params(unet) == pytest.approx(16.8e6, rel=0.01)
    assert count_params(value) == pytest.approx(2.3e6, rel=0.01)
    cfg = M.diffusion_preset("tiny")
    nets, params = M.init_networks(cfg, jax.random.PRNGKey(0))
    x = jnp.ones((3, cfg.horizon, M.TRANSITION_DIM))
    assert M.apply_denoiser(nets, params["denoiser"], x, jnp.arange(3)).shape == x.shape
    assert M.apply_value(nets, params["value"], x, jnp.arange(3)).shape == (3,)


@pytest.mark.slow
def test_state_conditioning_is_opt_in_and_reaches_the_output():
    """UNetConfig.state_cond adds an MLP of the measured state (row 0) to the time embedding;
    off by default, so shipped checkpoints keep their parameter tree."""
    import dataclasses

    cfg = M.diffusion_preset("tiny")
    _, plain = M.init_networks(cfg, jax.random.PRNGKey(0))
    assert "state_mlp" not in plain["denoiser"]
    cond = dataclasses.replace(cfg, unet=dataclasses.replace(cfg.unet, state_cond=True))
    nets, params = M.init_networks(cond, jax.random.PRNGKey(0))
    assert params["denoiser"]["state_mlp"]["fc1"]["kernel"].shape[0] == M.OBS_DIM
    x = jax.random.normal(jax.random.PRNGKey(1), (2, cond.horizon, M.TRANSITION_DIM))
    k = jnp.array([1, 3])
    zeroed = {
        **params["denoiser"],
        "state_mlp": jax.tree.map(jnp.zeros_like, params["denoiser"]["state_mlp"]),
    }
    out = M.apply_denoiser(nets, params["denoiser"], x, k)
    assert not np.allclose(out, M.apply_denoiser(nets, zeroed, x, k))
    # through the embedding, s_0 moves the far end of the plan
    far = jax.grad(lambda x: M.apply_denoiser(nets, params["denoiser"], x, k)[:, -1].sum())(x)
    far0 = jax.grad(lambda x: M.apply_denoiser(nets, zeroed, x, k)[:, -1].sum())(x)
    assert not np.allclose(far[:, 0, M.ACTION_DIM :], far0[:, 0, M.ACTION_DIM :])


@pytest.mark.parametrize(
    "kernel,kw,ref_kw",
    [
        (5, {}, {"padding": [(2, 2)]}),
        (1, {"use_bias": False}, {"use_bias": False}),
        (3, {"stride": 2, "padding": (1, 1)}, {"strides": (2,), "padding": [(1, 1)]}),
        (4, {"stride": 2, "transpose": True}, {"strides": (2,), "padding": "SAME"}),
    ],
)
def test_matmul_conv_equals_flax_conv(kernel, kw, ref_kw):
    """Our im2col Conv1d computes what nnx.Conv / nnx.ConvTranspose compute with the same
    parameters (odd and even lengths, strided, transposed)."""
    from flax import nnx

    from dmpc_jax.diffusion.unet import Conv1d

    ref_cls = nnx.ConvTranspose if kw.get("transpose") else nnx.Conv
    ref = ref_cls(6, 4, (kernel,), rngs=nnx.Rngs(0), **ref_kw)
    ours = Conv1d(6, 4, kernel, nnx.Rngs(1), **kw)
    ours.kernel[...] = ref.kernel[...]
    if ref.bias is not None:
        ref.bias[...] = jnp.arange(4.0)
        ours.bias[...] = ref.bias[...]
    for h in (5, 6):
        x = jax.random.normal(jax.random.PRNGKey(h), (2, h, 6))
        np.testing.assert_allclose(ours(x), ref(x), atol=1e-5)


def test_loss_weights():
    cfg = M.DiffusionConfig(
        horizon=8, num_steps=4, unet=M.UNetConfig(dim=8, dim_mults=(1, 2), value_dim=16)
    )
    w = np.asarray(M.loss_weights(cfg))
    assert w.shape == (8, 61)
    np.testing.assert_array_equal(w[0, :12], 10.0)  # first action
    np.testing.assert_array_equal(w[0, 12:], 0.0)  # inpainted state: no loss
    disc = 0.99 ** np.arange(8) / np.mean(0.99 ** np.arange(8))
    np.testing.assert_allclose(w[1:, 20], disc[1:], rtol=1e-6)


@pytest.mark.slow
def test_weighted_loss_equals_plain_loss_under_uniform_weights():
    cfg = M.diffusion_preset("tiny")
    nets, params = M.init_networks(cfg, jax.random.PRNGKey(0))
    sched, w = M.schedule_for(cfg), M.loss_weights(cfg)
    tau = jax.random.normal(jax.random.PRNGKey(1), (4, cfg.horizon, M.TRANSITION_DIM))
    key = jax.random.PRNGKey(2)
    plain, _ = M.diffusion_loss(nets, params, sched, w, tau, key)
    ones, _ = M.diffusion_loss(nets, params, sched, w, tau, key, jnp.ones(4))
    assert float(plain) == float(ones)
    double, _ = M.diffusion_loss(nets, params, sched, w, tau, key, 2.0 * jnp.ones(4))
    np.testing.assert_allclose(double, 2 * plain, rtol=1e-6)


def test_paper_scaler_and_round_trip():
    sc = M.paper_scaler()
    assert sc["scale"][12 + 3] == 0.5  # ang vel
    assert sc["scale"][12 + 9] == 0.5  # command
    a = jax.random.normal(jax.random.PRNGKey(0), (5, 12))
    o = jax.random.normal(jax.random.PRNGKey(1), (5, 49))
    a2, o2 = M.from_diffusion(sc, M.to_diffusion(sc, a, o))
    np.testing.assert_allclose(a2, a, atol=1e-6)
    np.testing.assert_allclose(o2, o, atol=1e-6)


def test_config_rejects_bad_horizon():
    with pytest.raises(ValueError, match="multiple of 8"):
        M.DiffusionConfig(horizon=20)


def test_ema_update():
    ema = {"a": jnp.zeros(3)}
    out = M.ema_update(ema, {"a": jnp.ones(3)}, 0.9)
    np.testing.assert_allclose(out["a"], 0.1, rtol=1e-6)
