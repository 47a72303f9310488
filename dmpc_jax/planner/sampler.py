"""The guided diffusion sampler: one pure, jit-compiled plan step (METHOD §3).

``make_plan_fn(...)`` returns ``plan(params, s_now, task, constraints, key, cache=None)``:

    x_K ~ N(0, I); x_K[0, state] = s_now                                 (N candidates, vmapped)
    for k in steps (K-1 .. 0, or a strided DDIM subset, or the last few from a cache; lax.scan):
        g = grad_x [a_nn R_nn(x, k) + sum_i a_i R_i(x)]       weights and targets: runtime arrays
        x = x + lambda * g   (lambda * posterior variance_k optionally)
        x[0, state] = s_now;  x = Proj_C(x)
        x0 = f_theta(x, k)
        x = posterior step (DDPM, noise z = 0 at k = 0) or DDIM step to the next index
        x[0, state] = s_now
    x = Proj_C(x); rank the N candidates by the same reward; return the best

Shapes are static config (N, H, K, steps); weights, bounds, command (inside s_now), guidance
scale and key are arrays, so changing a task never recompiles. With a zero guidance scale the
reward gradient is multiplied by 0 exactly, reproducing the unguided sampler bit for bit.
Clean-estimate guidance (``analytic_on_x0``): the analytic terms are functions of a clean
trajectory (forward kinematics, torques), so evaluated on the noisy x_k at high noise their
gradient says little; with this option R_nn still guides x_k, and the analytic terms take a
gradient step on the denoiser's estimate instead, ``x0 = x0 + lambda * grad R_an(x0)``, before the
posterior step (no backpropagation through the denoiser).
Early-step caching: ``plan`` also returns the candidates after ``cache_after`` steps; passing them
back as ``cache`` starts from there and runs only the remaining steps. ``make_cached_plan_fn``
carries that cache from plan to plan with METHOD §3's refresh rule (a full plan on the first call,
after ``reset``, and when the command moved by more than ``cache_refresh`` in diffusion scale), as
one compiled function whose ``lax.cond`` runs only the branch it takes (one robot per call).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.diffusion.model import (
    ACTION_DIM,
    TRANSITION_DIM,
    DiffusionConfig,
    Networks,
    apply_denoiser,
    apply_value,
    from_diffusion,
    inpaint,
)
from dmpc_jax.diffusion.schedule import (
    Schedule,
    ddim_step,
    ddim_timesteps,
    posterior_step,
    q_sample,
)
from dmpc_jax.envs.obs import OBS_SLICES
from dmpc_jax.planner.constraints import Constraints, project, to_diffusion_space
from dmpc_jax.planner.rewards import TaskParams, compute_analytic_rewards


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """The ``SamplerConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        num_candidates: N plans sampled per call; the best is returned.
        method: ``ddpm`` (every step) or ``ddim`` (deterministic, strided).
        ddim_steps: steps of the DDIM path (really skips: 5 of 10 calls the denoiser 5 times).
        cache_after: steps after which the partial sample is returned for caching (0: no cache).
            With a cache, later plans run only the remaining steps from it (``make_cached_plan_fn``):
            cache_after = 8 of K = 10 is METHOD §3's "cache-2".
        cache_refresh: a cached plan is replaced by a full one when the command (diffusion scale)
            moved by more than this since the cache was made (METHOD §3: 0.5).
        cache_max_age: also refresh after this many plans from one cache (0: never by age).
        warm_start: reverse steps skipped when the plan starts from the previous plan (``warm=``):
            the previous trajectory, shifted to now, is noised to the level of step
            ``steps[warm_start]`` and denoised from there (SDEdit-style). 0: always start from noise.
            Measured on the cpu planner: it lowers closed-loop success (32% -> 11% at E = 20,
            warm_start = 5; experiments/mpc_sweep), so it is off everywhere by default.
        variance_scaled_guidance: multiply the guidance step by the posterior variance of step k.
        analytic_on_x0: take the analytic rewards' gradient step on the clean estimate x0_hat of
            every step (R_nn keeps guiding x_k) instead of on x_k (module docstring).
    """

    num_candidates: int = 16
    method: Literal["ddpm", "ddim"] = "ddpm"
    ddim_steps: int = 5
    cache_after: int = 0
    cache_refresh: float = 0.5
    cache_max_age: int = 0
    warm_start: int = 0
    variance_scaled_guidance: bool = False
    analytic_on_x0: bool = False

    def __post_init__(self):
        if self.num_candidates < 1:
            raise ValueError(
                f"SamplerConfig.num_candidates must be >= 1, got {self.num_candidates}"
            )
        if self.method not in ("ddpm", "ddim"):
            raise ValueError(f"SamplerConfig.method must be ddpm or ddim, got {self.method!r}")
        if self.cache_refresh < 0 or self.cache_max_age < 0:
            raise ValueError("SamplerConfig.cache_refresh and cache_max_age must be >= 0")

    def variant(self, num_steps: int) -> str:
        """The name of this sampling path (``with_variant``'s inverse): ``ddpm``, ``ddim<S>`` or
        ``cache<R>``."""
        if self.method == "ddim":
            return f"ddim{self.ddim_steps}" + (
                f"+cache@{self.cache_after}" if self.cache_after else ""
            )
        return f"cache{num_steps - self.cache_after}" if self.cache_after else "ddpm"

    def with_variant(self, variant: str, num_steps: int) -> SamplerConfig:
        """This config on the sampling path ``variant``: ``ddpm`` (all K steps), ``ddim<S>``
        (S strided DDIM steps) or ``cache<R>`` (DDPM, later plans run the last R steps from a
        cache: cache_after = K - R)."""
        m = re.fullmatch(r"(ddpm)|ddim(\d+)|cache(\d+)", variant)
        if m is None:
            raise ValueError(f"sampler variant {variant!r}: expected ddpm, ddim<S> or cache<R>")
        if m[2]:
            return dataclasses.replace(self, method="ddim", ddim_steps=int(m[2]), cache_after=0)
        cache = num_steps - int(m[3]) if m[3] else 0
        if m[3] and not 0 < cache < num_steps:
            raise ValueError(f"sampler variant {variant!r}: R must be in [1, {num_steps - 1}]")
        return dataclasses.replace(self, method="ddpm", cache_after=cache)


# The real-time default (issue "A real-time planner"; experiments/realtime): DDIM with 5 strided
# steps, one candidate. On the shipped cpu planner its closed-loop success is within the interval
# of DDPM-10's on the same keys (walk_1.0, 128 episodes: 26.6% [19.7, 34.8] vs 25.8% [19.0, 34.0],
# tracking error 0.233 vs 0.241 m/s) at about half the latency; cache-2 is faster still but
# stops tracking the command (0.68 m/s error). make export, sim2sim and deploy use it.
REALTIME_VARIANT = "ddim5"
REALTIME_CANDIDATES = 1


@flax.struct.dataclass
class PlanOutput:
    tau: jax.Array  # [H, Dx] best plan, diffusion space
    action: jax.Array  # [H, 12] best plan's actions, env units
    obs: jax.Array  # [H, 49] best plan's states, env units
    reward: jax.Array  # [N] candidate rewards
    best: jax.Array  # index of the best candidate
    cache: jax.Array  # [N, H, Dx] candidates after cache_after steps (zeros if no cache)

    @property
    def rows(self) -> jax.Array:
        """[H, 12 + 49] the best plan in env units, rows [a_h, s_h] (trajectory layout)."""
        return jnp.concatenate([self.action, self.obs], axis=-1)


def step_indices(dcfg: DiffusionConfig, scfg: SamplerConfig) -> np.ndarray:
    """The denoising step indices of one full plan, noisiest first."""
    if scfg.method == "ddim":
        return ddim_timesteps(dcfg.num_steps, scfg.ddim_steps)
    return np.arange(dcfg.num_steps - 1, -1, -1, dtype=np.int32)


def make_plan_fn(
    nets: Networks,
    dcfg: DiffusionConfig,
    scfg: SamplerConfig,
    sched: Schedule,
    scaler: dict,
    *,
    q_default,
    kp: float,
    kd: float,
    action_scale: float,
    denoiser_fn=None,
    guided: bool = True,
):
    """Build ``plan(params, s_now, task, constraints, key, cache=None) -> PlanOutput``.

    Args:
        nets, dcfg, sched, scaler: the trained model's graph, config, schedule and scaling.
        q_default, kp, kd, action_scale: robot constants the analytic rewards need.
        denoiser_fn: override of the denoiser call (tests count its calls).
        guided: False builds the plain sampler that never evaluates the reward gradient (the
            reference that a zero guidance scale must reproduce).
    Returns:
        A pure function (not yet jitted), with s_now [49] the current observation in env units
        and constraints in env units.
    """
    steps = step_indices(dcfg, scfg)
    n_cache, n_warm = scfg.cache_after, scfg.warm_start
    for name, n in (("cache_after", n_cache), ("warm_start", n_warm)):
        if not 0 <= n < len(steps):
            raise ValueError(f"SamplerConfig.{name} must be in [0, {len(steps) - 1}], got {n}")
    if n_cache and n_warm:
        raise ValueError("SamplerConfig.cache_after and warm_start are alternatives; set one")
    denoise = denoiser_fn or (lambda p, x, k: apply_denoiser(nets, p["denoiser"], x, k))
    q_default = jnp.asarray(q_default, jnp.float32)
    scaler = {k: jnp.asarray(v) for k, v in scaler.items()}
    shape = (dcfg.horizon, TRANSITION_DIM)

    def analytic_fn(x, task: TaskParams):
        action, obs = from_diffusion(scaler, x)
        terms = compute_analytic_rewards(
            action, obs, task, q_default=q_default, kp=kp, kd=kd, action_scale=action_scale
        )
        return jnp.dot(task.weights[1:], terms)

    def reward_fn(params, x, k, task: TaskParams, analytic: bool = True):
        """Total reward of one trajectory x [H, Dx] (diffusion space) at step k (``analytic``
        False: the learned term alone)."""
        r_nn = apply_value(nets, params["value"], x[None], jnp.full((1,), k))[0]
        r = task.weights[0] * r_nn
        return r + analytic_fn(x, task) if analytic else r

    def condition(x, cond):
        """Inpaint the current state into row 0 and, when given, the committed actions into
        rows 0 .. P-1 (``plan(..., prefix=)``)."""
        s_z, prefix_z = cond
        x = inpaint(x, s_z)
        if prefix_z is not None:
            x = x.at[..., : prefix_z.shape[0], :ACTION_DIM].set(prefix_z)
        return x

    def one_step(params, x, cond, task, c_z, k):
        scale = task.guidance_scale
        if scfg.variance_scaled_guidance:
            scale = scale * sched.posterior_variance[k]
        on_x0 = scfg.analytic_on_x0
        if guided:
            g = jax.grad(reward_fn, argnums=1)(params, x, k, task, not on_x0)
            x = x + scale * g
        x = project(condition(x, cond), c_z)
        x0 = denoise(params, x[None], jnp.full((1,), k))[0]
        if guided and on_x0:
            x0 = x0 + scale * jax.grad(analytic_fn)(x0, task)
        return x, x0

    def run_steps(params, cond, task, c_z, key, x, idx: np.ndarray):
        """Reverse steps ``steps[idx]`` from x, as one ``lax.scan`` (one compiled step body)."""
        if len(idx) == 0:
            return x
        ks = jnp.asarray(steps[idx], jnp.int32)
        nxt = np.append(steps, -1)[idx + 1]  # DDIM target index; -1: the clean sample
        k_next = jnp.asarray(nxt, jnp.int32)

        def body(x, inputs):
            k, k_nxt, k_noise = inputs
            x, x0 = one_step(params, x, cond, task, c_z, k)
            if scfg.method == "ddpm":
                x = posterior_step(sched, x0, x, k, jax.random.normal(k_noise, x.shape))
            else:
                x = ddim_step(sched, x0, x, k, k_nxt)
            return condition(x, cond), None

        x, _ = jax.lax.scan(body, x, (ks, k_next, jax.random.split(key, len(idx))))
        return x

    def candidate(params, cond, task, c_z, key, x_start, start: int):
        x = condition(x_start, cond)
        k_a, k_b = jax.random.split(key)
        idx = np.arange(start, len(steps))
        if n_cache and start < n_cache:  # stop after cache_after steps to keep the partial sample
            x = run_steps(params, cond, task, c_z, k_a, x, idx[idx < n_cache])
            cached = x
            x = run_steps(params, cond, task, c_z, k_b, x, idx[idx >= n_cache])
        else:
            cached = jnp.zeros_like(x)
            x = run_steps(params, cond, task, c_z, k_b, x, idx)
        return project(x, c_z), cached

    def plan(
        params, s_now, task: TaskParams, constraints: Constraints, key, cache=None, warm=None,
        prefix=None,
    ):  # fmt: skip
        """``warm`` [H, Dx]: a trajectory (diffusion space) whose row 0 is now, e.g. the previous
        plan shifted (``shift_plan``); used when ``scfg.warm_start`` > 0. ``prefix`` [P, 12]:
        actions (env units) already committed for the next P steps (the receding horizon's
        in-flight actions), inpainted into rows 0 .. P-1 like the current state."""
        s_z = (s_now - scaler["shift"][ACTION_DIM:]) * scaler["scale"][ACTION_DIM:]
        prefix_z = None
        if prefix is not None:
            prefix_z = (prefix - scaler["shift"][:ACTION_DIM]) * scaler["scale"][:ACTION_DIM]
        cond = (s_z, prefix_z)  # what every reverse step inpaints
        c_z = to_diffusion_space(constraints, scaler)
        keys = jax.random.split(key, scfg.num_candidates + 1)
        if warm is not None and n_warm:
            if cache is not None:
                raise ValueError("plan: pass cache or warm, not both")
            noise = jax.random.normal(keys[0], (scfg.num_candidates,) + shape)
            k = jnp.full((scfg.num_candidates,), steps[n_warm], jnp.int32)
            x_start = q_sample(sched, jnp.broadcast_to(warm, noise.shape), k, noise)
            start = n_warm
        elif cache is None:
            x_start = jax.random.normal(keys[0], (scfg.num_candidates,) + shape)
            start = 0
        else:
            x_start, start = cache, n_cache
        xs, cached = jax.vmap(lambda x0, k: candidate(params, cond, task, c_z, k, x0, start))(
            x_start, keys[1:]
        )
        rewards = jax.vmap(lambda x: reward_fn(params, x, 0, task))(xs)
        best = jnp.argmax(rewards)
        action, obs = from_diffusion(scaler, xs[best])
        return PlanOutput(xs[best], action, obs, rewards, best, cached)

    return plan


@flax.struct.dataclass
class PlanCache:
    """The early-step cache carried from plan to plan (``make_cached_plan_fn``).

    x: [N, H, Dx] candidates after ``cache_after`` steps; command: [3] the command (diffusion
    scale) they were sampled for; age: plans made from them since (int32; -1: empty, the next
    plan is a full one)."""

    x: jax.Array
    command: jax.Array
    age: jax.Array

    @classmethod
    def empty(cls, num_candidates: int, horizon: int) -> PlanCache:
        return cls(
            jnp.zeros((num_candidates, horizon, TRANSITION_DIM), jnp.float32),
            jnp.zeros((3,), jnp.float32),
            jnp.full((), -1, jnp.int32),
        )


def make_cached_plan_fn(plan, scfg: SamplerConfig, scaler: dict, *, axis_name: str | None = None):
    """``plan_cached(params, s_now, task, constraints, key, cache) -> (PlanOutput, PlanCache)``
    around ``plan`` (``make_plan_fn`` with ``scfg.cache_after`` > 0).

    A full plan (all steps, its partial sample kept) when ``cache`` is None or empty, when the
    command in ``s_now`` moved by more than ``scfg.cache_refresh`` (max over vx, vy, wz, diffusion
    scale) since the cache was made, or when the cache served ``scfg.cache_max_age`` plans; else
    the last ``K - cache_after`` steps from the cached candidates, with ``s_now`` inpainted. A
    reset (or a new task) is an empty cache: ``PlanCache.empty``. With a fresh cache and the same
    key the cached plan equals the full plan bit for bit (same noise for the remaining steps).

    ``axis_name``: the name of a ``vmap`` over robots around this function. A per-robot ``cond``
    under vmap would run both branches for every robot; with the axis named, the full plans run
    only on the calls where some robot refreshes (then each robot keeps its own branch's plan).
    """
    if not scfg.cache_after:
        raise ValueError("make_cached_plan_fn needs SamplerConfig.cache_after > 0")
    sl = OBS_SLICES["command"]
    shift = jnp.asarray(scaler["shift"])[ACTION_DIM:][sl]
    scale = jnp.asarray(scaler["scale"])[ACTION_DIM:][sl]

    def plan_cached(params, s_now, task, constraints, key, cache: PlanCache | None = None):
        command = (s_now[sl] - shift) * scale
        if cache is None:  # static: the first plan of a run
            out = plan(params, s_now, task, constraints, key)
            return out, PlanCache(out.cache, command, jnp.zeros((), jnp.int32))
        refresh = (cache.age < 0) | (jnp.max(jnp.abs(command - cache.command)) > scfg.cache_refresh)
        if scfg.cache_max_age:
            refresh = refresh | (cache.age >= scfg.cache_max_age)
        full = lambda: plan(params, s_now, task, constraints, key)  # noqa: E731
        from_cache = lambda: plan(params, s_now, task, constraints, key, cache=cache.x)  # noqa: E731
        if axis_name is None:
            out = jax.lax.cond(refresh, full, from_cache)
        else:
            some = jax.lax.psum(refresh.astype(jnp.int32), axis_name) > 0
            pick = lambda: jax.tree.map(lambda a, b: jnp.where(refresh, a, b), full(), from_cache())  # noqa: E731
            out = jax.lax.cond(some, pick, from_cache)
        new = PlanCache(
            jnp.where(refresh, out.cache, cache.x),
            jnp.where(refresh, command, cache.command),
            jnp.where(refresh, 0, cache.age + 1).astype(jnp.int32),
        )
        return out.replace(cache=new.x), new

    return plan_cached


def shift_plan(tau: jax.Array, shift: int) -> jax.Array:
    """The plan ``tau`` [..., H, Dx] as seen ``shift`` steps later: row h <- row h + shift, the
    rows past the horizon repeat the last one."""
    h = tau.shape[-2]
    rows = np.minimum(np.arange(h) + shift, h - 1)
    return tau[..., rows, :]
