"""Cosine DDPM schedule with precomputed forward and posterior coefficients (Diffuser's math).

Index convention: k = 0 .. K-1, with k = K-1 the noisiest step; sampling runs k = K-1 .. 0.
Nichol & Dhariwal (2021), eq. 17: abar(t) = cos^2(((t/T) + s) / (1 + s) * pi/2) / abar(0),
beta_k = 1 - abar_k / abar_{k-1}, clipped at 0.999. Posterior q(x_{k-1} | x_k, x0) (Ho et al. 2020,
eq. 7): mean = c1_k x0 + c2_k x_k, variance = beta_k (1 - abar_{k-1}) / (1 - abar_k).
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class Schedule:
    """Per-step coefficients, each [K] float32."""

    betas: jax.Array
    alphas_cumprod: jax.Array
    alphas_cumprod_prev: jax.Array
    sqrt_alphas_cumprod: jax.Array
    sqrt_one_minus_alphas_cumprod: jax.Array
    posterior_variance: jax.Array
    posterior_log_variance_clipped: jax.Array
    posterior_mean_coef1: jax.Array  # multiplies x0
    posterior_mean_coef2: jax.Array  # multiplies x_k

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0]


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """beta_k of the cosine schedule, float64 [K]."""
    steps = num_steps + 1
    x = np.linspace(0, steps, steps)
    abar = np.cos(((x / steps) + s) / (1 + s) * np.pi * 0.5) ** 2
    abar = abar / abar[0]
    betas = 1 - (abar[1:] / abar[:-1])
    return np.clip(betas, 0, max_beta)


def make_schedule(num_steps: int, s: float = 0.008) -> Schedule:
    if num_steps < 1:
        raise ValueError(f"number of diffusion steps must be >= 1, got {num_steps}")
    betas = cosine_betas(num_steps, s)
    alphas = 1.0 - betas
    acp = np.cumprod(alphas)
    acp_prev = np.concatenate([[1.0], acp[:-1]])
    post_var = betas * (1.0 - acp_prev) / (1.0 - acp)
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return Schedule(
        betas=f(betas),
        alphas_cumprod=f(acp),
        alphas_cumprod_prev=f(acp_prev),
        sqrt_alphas_cumprod=f(np.sqrt(acp)),
        sqrt_one_minus_alphas_cumprod=f(np.sqrt(1.0 - acp)),
        posterior_variance=f(post_var),
        posterior_log_variance_clipped=f(np.log(np.maximum(post_var, 1e-20))),
        posterior_mean_coef1=f(betas * np.sqrt(acp_prev) / (1.0 - acp)),
        posterior_mean_coef2=f((1.0 - acp_prev) * np.sqrt(alphas) / (1.0 - acp)),
    )


def q_sample(sched: Schedule, x0: jax.Array, k: jax.Array, noise: jax.Array) -> jax.Array:
    """x_k ~ q(x_k | x0) = sqrt(abar_k) x0 + sqrt(1 - abar_k) noise. k: [B] int, x0: [B, ...]."""
    shape = (-1,) + (1,) * (x0.ndim - 1)
    return (
        sched.sqrt_alphas_cumprod[k].reshape(shape) * x0
        + sched.sqrt_one_minus_alphas_cumprod[k].reshape(shape) * noise
    )


def posterior_step(sched: Schedule, x0_hat, x_k, k, noise):
    """x_{k-1} = c1_k x0_hat + c2_k x_k + sigma_k z, with z = 0 at k = 0 (unbatched k)."""
    mean = sched.posterior_mean_coef1[k] * x0_hat + sched.posterior_mean_coef2[k] * x_k
    std = jnp.exp(0.5 * sched.posterior_log_variance_clipped[k])
    return mean + jnp.where(k > 0, std, 0.0) * noise


def ddim_step(sched: Schedule, x0_hat, x_k, k, k_prev):
    """Deterministic DDIM (eta = 0) from step k to k_prev < k (k_prev = -1: the clean sample).

    Song et al. (2021), eq. 12: x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps_hat,
    eps_hat = (x_k - sqrt(abar_k) x0) / sqrt(1 - abar_k).
    """
    eps = (x_k - sched.sqrt_alphas_cumprod[k] * x0_hat) / sched.sqrt_one_minus_alphas_cumprod[k]
    abar_prev = jnp.where(k_prev >= 0, sched.alphas_cumprod[jnp.maximum(k_prev, 0)], 1.0)
    return jnp.sqrt(abar_prev) * x0_hat + jnp.sqrt(1.0 - abar_prev) * eps


def ddim_timesteps(num_steps: int, num_sample_steps: int) -> np.ndarray:
    """Strided step indices, noisiest first: e.g. K=10, S=5 -> [9, 7, 5, 3, 1]."""
    if not 1 <= num_sample_steps <= num_steps:
        raise ValueError(f"DDIM steps must be in [1, {num_steps}], got {num_sample_steps}")
    stride = num_steps / num_sample_steps
    return np.array(
        [int(round(num_steps - 1 - i * stride)) for i in range(num_sample_steps)], np.int32
    )
