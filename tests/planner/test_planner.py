"""The guided sampler and its pieces on a tiny random-init model: determinism, zero guidance,
guidance direction, projections, DDIM step counts, no recompiles, forward kinematics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROBOT  # the tiny model and its plan functions are conftest fixtures

from dmpc_jax.diffusion import model as M
from dmpc_jax.planner import constraints as C
from dmpc_jax.planner.rewards import (
    REWARD_NAMES,
    compute_analytic_rewards,
    default_task,
    planned_base_height,
)
from dmpc_jax.planner.sampler import SamplerConfig, make_plan_fn
from dmpc_jax.robot import go2

Q_DEFAULT = ROBOT["q_default"]


def _s_now():
    s = np.zeros(49, np.float32)
    s[6:9] = [0, 0, -1]  # level
    s[9] = 2.0 * 0.8  # vx command 0.8 m/s (scaled as in the observation)
    return jnp.asarray(s)


def _plan(model, plans, guided=True):
    return plans[0 if guided else 1], model[2], C.no_constraints(model[0].horizon)


def test_same_key_same_plan_bitwise(model, plans):
    plan, params, cons = _plan(model, plans)
    task = default_task(guidance_scale=0.1, joint_vel=1.0)
    a = plan(params, _s_now(), task, cons, jax.random.PRNGKey(3))
    b = plan(params, _s_now(), task, cons, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(np.asarray(a.tau), np.asarray(b.tau))
    c = plan(params, _s_now(), task, cons, jax.random.PRNGKey(4))
    assert not np.array_equal(np.asarray(a.tau), np.asarray(c.tau))


@pytest.mark.slow
def test_zero_guidance_on_x0_reproduces_the_unguided_sampler(model, plans):
    cfg, nets, params, sched, scaler = model
    scfg = SamplerConfig(num_candidates=4, analytic_on_x0=True)
    on_x0 = jax.jit(make_plan_fn(nets, cfg, scfg, sched, scaler, **ROBOT))
    plain, _, cons = _plan(model, plans, guided=False)
    task = default_task(guidance_scale=0.0, joint_vel=1.0, energy=1.0)
    a = on_x0(params, _s_now(), task, cons, jax.random.PRNGKey(0))
    b = plain(params, _s_now(), task, cons, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(a.tau), np.asarray(b.tau))


def test_zero_guidance_reproduces_the_unguided_sampler(model, plans):
    guided, params, cons = _plan(model, plans)
    plain, _, _ = _plan(model, plans, guided=False)
    task = default_task(guidance_scale=0.0, joint_vel=1.0, energy=1.0)
    for seed in range(3):
        a = guided(params, _s_now(), task, cons, jax.random.PRNGKey(seed))
        b = plain(params, _s_now(), task, cons, jax.random.PRNGKey(seed))
        np.testing.assert_array_equal(np.asarray(a.tau), np.asarray(b.tau))


@pytest.mark.slow
@pytest.mark.parametrize("on_x0", [False, True])
def test_guidance_raises_the_analytic_reward(model, on_x0):
    """On x_k (METHOD) or on the clean estimate x0_hat (``analytic_on_x0``)."""
    # An identity denoiser (x0_hat = x_k) stands in for a trained one: a random-init network
    # ignores its input, so no guidance could show through it. What is tested is the guidance
    # step itself: its sign, scale and inpainting.
    cfg, nets, params, sched, scaler = model
    fn = make_plan_fn(
        nets, cfg, SamplerConfig(num_candidates=1, analytic_on_x0=on_x0), sched, scaler, **ROBOT,
        denoiser_fn=lambda p, x, k: x,
    )  # fmt: skip
    plan, cons = jax.jit(fn), C.no_constraints(cfg.horizon)

    def joint_vel_reward(out, task):
        terms = compute_analytic_rewards(out.action, out.obs, task, **ROBOT)
        return float(terms[REWARD_NAMES.index("joint_vel") - 1])

    off = default_task(nn_weight=0.0, guidance_scale=0.0, joint_vel=1.0)
    on = default_task(nn_weight=0.0, guidance_scale=1e-4, joint_vel=1.0)
    keys = [jax.random.PRNGKey(i) for i in range(8)]
    r_off = [joint_vel_reward(plan(params, _s_now(), off, cons, k), off) for k in keys]
    r_on = [joint_vel_reward(plan(params, _s_now(), on, cons, k), on) for k in keys]
    assert all(a > b for a, b in zip(r_on, r_off, strict=True)), (r_on, r_off)


def _random_constraints(key, horizon):
    k1, k2, k3 = jax.random.split(key, 3)
    c = C.no_constraints(horizon)
    # boxes that vary over h but always contain [-0.5, 0.5], and rates large enough to move
    # between any two of them: a feasible set, so every bound must hold exactly
    lo = jax.random.uniform(k1, (horizon, 12), minval=-1.0, maxval=-0.5)
    hi = jax.random.uniform(k2, (horizon, 12), minval=0.5, maxval=1.0)
    c = c.replace(lower=c.lower.at[:, :12].set(lo), upper=c.upper.at[:, :12].set(hi))
    c = C.box(c, "joint_vel", -0.05, 0.05)
    return C.rate_limit(c, "action", jax.random.uniform(k3, (12,), minval=0.6, maxval=1.0))


def test_projection_satisfies_bounds_and_is_idempotent():
    for seed in range(5):
        key = jax.random.PRNGKey(seed)
        c = _random_constraints(key, 8)
        x = 3.0 * jax.random.normal(jax.random.fold_in(key, 1), (8, 61))
        # make row 0's action feasible so the rate limit can hold from it
        x = x.at[0, :12].set(jnp.clip(x[0, :12], c.lower[0, :12], c.upper[0, :12]))
        p = C.project(x, c)
        assert float(C.violation(p, c)) <= 1e-6
        np.testing.assert_array_equal(np.asarray(C.project(p, c)), np.asarray(p))
        np.testing.assert_array_equal(np.asarray(p[0, 12:]), np.asarray(x[0, 12:]))  # s_0 untouched


def test_projection_prefers_the_box_when_the_rate_cannot_hold():
    c = C.rate_limit(C.box(C.no_constraints(3), "action", -0.1, 0.1), "action", 0.01)
    x = jnp.zeros((3, 61)).at[0, :12].set(5.0)  # row 0 far outside (clipped first)
    p = C.project(x, c)
    assert float(jnp.max(jnp.abs(p[:, :12]))) <= 0.1 + 1e-7


def test_returned_plan_satisfies_hard_bounds(model, plans):
    cfg = model[0]
    plan, params, _ = _plan(model, plans)
    c = C.box(
        C.no_constraints(cfg.horizon), "joint_vel", -1.0 * 0.05, 1.0 * 0.05
    )  # |qd| <= 1 rad/s
    c = C.box(c, "action", -0.3, 0.3)
    out = plan(
        params, _s_now(), default_task(guidance_scale=0.1, joint_vel=1.0), c, jax.random.PRNGKey(0)
    )
    assert float(jnp.max(jnp.abs(out.action))) <= 0.3 + 1e-6
    assert (
        float(
            jnp.max(
                jnp.abs(
                    out.obs[
                        1:, C.row_slice("joint_vel").start - 12 : C.row_slice("joint_vel").stop - 12
                    ]
                )
            )
        )
        <= 0.05 + 1e-6
    )


@pytest.mark.slow
def test_denoiser_call_count(model):
    """K = 10: DDIM with 5 steps runs the denoiser 5 times (really skips). That DDPM runs every
    step is counted by the cached-plan and warm-start tests below (K = 4: [3, 2, 1, 0])."""
    method, steps, expected = "ddim", 5, [9, 7, 5, 3, 1]
    import dataclasses

    cfg = dataclasses.replace(model[0], num_steps=10)
    nets, params, scaler = model[1], model[2], model[4]
    calls = []

    def counting(p, x, k):  # runs when the denoiser runs (the steps are a lax.scan)
        jax.debug.callback(lambda k: calls.append(int(k)), k[0])
        return M.apply_denoiser(nets, p["denoiser"], x, k)

    scfg = SamplerConfig(num_candidates=1, method=method, ddim_steps=5)
    fn = make_plan_fn(nets, cfg, scfg, M.schedule_for(cfg), scaler, **ROBOT, denoiser_fn=counting)
    traces = []

    def traced(*a):
        traces.append(1)  # runs once per trace
        return make(*a)

    make = fn
    fn = jax.jit(traced)
    out = fn(params, _s_now(), default_task(), C.no_constraints(cfg.horizon), jax.random.PRNGKey(0))
    jax.block_until_ready(out)
    jax.effects_barrier()
    assert len(calls) == steps
    assert calls == expected
    other = default_task(guidance_scale=0.3, joint_vel=1.0)  # another task and command: no retrace
    jax.block_until_ready(fn(params, _s_now().at[9].set(0.4), other, C.no_constraints(cfg.horizon),
                             jax.random.PRNGKey(1)))  # fmt: skip
    assert len(traces) == 1  # one compile per configuration


def _counting_plan(model, scfg):
    """(plan fn whose denoiser records each step index into ``calls``, calls, default args).
    Unguided: what is counted is which denoising steps run (the cache, the warm start), and a
    program with a host callback is compiled on every test run (JAX never writes it to the
    persistent cache), so it carries no guidance gradient. Guided cached plans are tested through
    the cached export (``tests/deploy/test_export.py``)."""
    cfg, nets, params, sched, scaler = model
    calls = []

    def counting(p, x, k):
        jax.debug.callback(lambda k: calls.append(int(k)), k[0])
        return M.apply_denoiser(nets, p["denoiser"], x, k)

    fn = make_plan_fn(nets, cfg, scfg, sched, scaler, **ROBOT, guided=False, denoiser_fn=counting)
    args = (params, _s_now(), default_task(), C.no_constraints(cfg.horizon), jax.random.PRNGKey(0))
    return fn, calls, args


def _cached(model):
    """A jitted cache-carrying plan (cache after 3 of K = 4 steps) that raises if retraced, the
    denoiser step indices it ran, and default args. (``cache_max_age`` is tested through the
    cached export, ``tests/deploy/test_export.py``.)"""
    from dmpc_jax.planner.sampler import make_cached_plan_fn

    scfg = SamplerConfig(num_candidates=2, cache_after=3)
    fn, calls, args = _counting_plan(model, scfg)
    cached = make_cached_plan_fn(fn, scfg, model[4])
    traces = []

    def once_per_signature(*a):  # the first call (no cache) and calls with a cache: two traces
        traces.append(1)
        assert len(traces) <= 2, "the cached plan was retraced"
        return cached(*a)

    return jax.jit(once_per_signature), calls, args


@pytest.fixture(scope="module")
def cached_plan(model):
    """``_cached(model)`` compiled once for the module's tests (``calls`` cleared per test)."""
    plan, calls, args = _cached(model)
    yield plan, calls, args
    calls.clear()


def _with_command(s_now, vx):
    return s_now.at[9].set(2.0 * vx)


def test_cached_plan_equals_full_plan_when_fresh(model, cached_plan):
    """Same key, fresh cache: the plan from the cache is the full plan bit for bit, and runs only
    the last step; the memory ages by one."""
    from dmpc_jax.planner.sampler import PlanCache

    plan, calls, (params, s_now, task, cons, key) = cached_plan
    jax.effects_barrier()
    calls.clear()
    full, cache = plan(params, s_now, task, cons, key)
    jax.effects_barrier()
    assert (
        calls == [3, 2, 1, 0] and int(cache.age) == 0
    )  # all steps (the vmapped candidates call back once per step)
    assert cache.x.shape == (2, model[0].horizon, M.TRANSITION_DIM)  # N = 2 after 3 of 4 steps
    calls.clear()
    again, cache2 = plan(params, s_now, task, cons, key, cache)
    jax.effects_barrier()
    assert calls == [0]  # the last step only
    np.testing.assert_array_equal(np.asarray(again.tau), np.asarray(full.tau))
    assert int(cache2.age) == 1
    np.testing.assert_array_equal(np.asarray(cache2.x), np.asarray(cache.x))
    # an empty cache (reset) is a full plan again, through the same compiled function
    calls.clear()
    empty = PlanCache.empty(2, model[0].horizon)
    reset, cache3 = plan(params, s_now, task, cons, key, empty)
    jax.effects_barrier()
    assert calls == [3, 2, 1, 0] and int(cache3.age) == 0
    np.testing.assert_array_equal(np.asarray(reset.tau), np.asarray(full.tau))


def test_command_change_over_the_threshold_refreshes_the_cache(model, cached_plan):
    """vx 0.8 -> 0.82 m/s stays under 0.5 in diffusion scale (the cache is kept); 0.8 -> 2.0
    moves it by more (a full plan, a new cache made at the new command)."""
    plan, calls, (params, s_now, task, cons, key) = cached_plan
    _, cache = plan(params, s_now, task, cons, key)
    scale = float(model[4]["scale"][M.ACTION_DIM + 9])
    assert abs(0.02 * 2 * scale) < 0.5 < abs(1.2 * 2 * scale)  # premise of this test
    calls.clear()
    _, kept = plan(params, _with_command(s_now, 0.82), task, cons, key, cache)
    jax.effects_barrier()
    assert calls == [0] and int(kept.age) == 1
    calls.clear()
    _, fresh = plan(params, _with_command(s_now, 2.0), task, cons, key, kept)
    jax.effects_barrier()
    assert calls == [3, 2, 1, 0] and int(fresh.age) == 0
    assert not np.array_equal(np.asarray(fresh.x), np.asarray(cache.x))
    np.testing.assert_allclose(
        float(fresh.command[0]),
        (2 * 2.0 - float(model[4]["shift"][M.ACTION_DIM + 9])) * scale,
        rtol=1e-6,
    )


@pytest.mark.slow
def test_batched_cache_refreshes_each_robot_as_alone(model, cached_plan):
    """Two robots vmapped with the axis named, one refreshing (its command changed) and one not:
    each gets the plan and cache it would get alone (the module's compiled ``cached_plan``, the
    same sampler config); with no robot refreshing, no full plan runs. The batch starts from two
    empty caches (a reset): both robots plan in full through the one cache-carrying program."""
    from dmpc_jax.planner.sampler import PlanCache, make_cached_plan_fn

    cfg, nets, params, sched, scaler = model
    scfg = SamplerConfig(num_candidates=2, cache_after=3)
    fn, calls, (_, s_now, task, cons, key) = _counting_plan(model, scfg)
    alone, alone_calls, _ = cached_plan
    batched = jax.jit(jax.vmap(
        make_cached_plan_fn(fn, scfg, scaler, axis_name="r"), in_axes=(None, 0, None, None, 0, 0),
        axis_name="r",
    ))  # fmt: skip
    keys = jax.random.split(key, 2)
    s0 = jnp.stack([s_now, s_now])
    empty = jax.tree.map(lambda a: jnp.stack([a, a]), PlanCache.empty(2, cfg.horizon))
    _, cache = batched(params, s0, task, cons, keys, empty)
    assert np.asarray(cache.age).tolist() == [0, 0]
    s1 = jnp.stack([s_now, _with_command(s_now, 2.0)])
    out, new = batched(params, s1, task, cons, keys, cache)
    for i in range(2):
        c_i = jax.tree.map(lambda a, i=i: a[i], cache)
        o, n = alone(params, s1[i], task, cons, keys[i], c_i)
        np.testing.assert_array_equal(np.asarray(out.tau[i]), np.asarray(o.tau))
        np.testing.assert_array_equal(np.asarray(new.x[i]), np.asarray(n.x))
    assert np.asarray(new.age).tolist() == [1, 0]
    jax.effects_barrier()
    calls.clear()
    alone_calls.clear()  # the module's plan: its next test starts from an empty count
    batched(params, s0, task, cons, keys, new)  # robot 1 back at 0.8 m/s refreshes too
    jax.effects_barrier()
    assert sorted(calls) == [0, 0, 1, 2, 3]  # the full branch (4 steps) and the cached one (1)
    calls.clear()
    _, steady = batched(params, s0, task, cons, keys, cache)
    jax.effects_barrier()
    assert calls == [0]  # nobody refreshes: the cached step only
    assert np.asarray(steady.age).tolist() == [1, 1]


def test_sampler_variants():
    base = SamplerConfig(num_candidates=16)
    assert base.with_variant("ddim5", 10) == SamplerConfig(
        num_candidates=16, method="ddim", ddim_steps=5
    )
    assert base.with_variant("cache2", 10).cache_after == 8
    assert base.with_variant("ddpm", 10) == base
    for name in ("ddpm", "ddim5", "cache2"):
        assert base.with_variant(name, 10).variant(10) == name
    for bad in ("ddim", "cache10", "cache0", "ddpm10x"):
        with pytest.raises(ValueError, match="sampler variant"):
            base.with_variant(bad, 10)


@pytest.mark.slow
def test_warm_start_denoises_from_the_shifted_previous_plan(model):
    """warm_start = 2 of K = 4: a plan given ``warm`` runs the last two steps only, starting from
    the warm trajectory noised to step 1; without ``warm`` it runs all four."""
    from dmpc_jax.planner.sampler import shift_plan

    cfg, nets, _, sched, scaler = model
    scfg = SamplerConfig(num_candidates=1, warm_start=2)
    fn, calls, args = _counting_plan(model, scfg)
    cold = jax.block_until_ready(fn(*args))
    jax.effects_barrier()
    assert calls == [3, 2, 1, 0]  # cold
    calls.clear()
    warm = shift_plan(cold.tau, 7)
    jax.block_until_ready(fn(*args, warm=warm))
    jax.effects_barrier()
    assert calls == [1, 0]

    # the start really is the warm trajectory: with an identity denoiser (x0_hat = x_k) the plan
    # is the warm trajectory scaled and noised (correlated with it), a cold plan is not
    ident = make_plan_fn(nets, cfg, scfg, sched, scaler, **ROBOT, guided=False,
                         denoiser_fn=lambda p, x, k: x)  # fmt: skip
    tau = jax.random.normal(jax.random.PRNGKey(1), (cfg.horizon, M.TRANSITION_DIM))
    corr = lambda a: np.corrcoef(np.asarray(a.tau)[1:].ravel(), np.asarray(tau)[1:].ravel())[0, 1]  # noqa: E731
    assert corr(ident(*args, warm=tau)) > 0.5
    assert abs(corr(ident(*args))) < 0.2


def test_shift_plan_rows():
    from dmpc_jax.planner.sampler import shift_plan

    tau = jnp.arange(6.0)[:, None] * jnp.ones((1, 3))
    np.testing.assert_array_equal(np.asarray(shift_plan(tau, 2))[:, 0], [2, 3, 4, 5, 5, 5])
    np.testing.assert_array_equal(np.asarray(shift_plan(tau, 0)), np.asarray(tau))


def test_warm_start_and_cache_are_exclusive(model):
    cfg, nets, params, sched, scaler = model
    with pytest.raises(ValueError, match="alternatives"):
        make_plan_fn(nets, cfg, SamplerConfig(cache_after=1, warm_start=1), sched, scaler, **ROBOT)
    with pytest.raises(ValueError, match="warm_start"):
        make_plan_fn(nets, cfg, SamplerConfig(warm_start=4), sched, scaler, **ROBOT)


def test_changing_task_bounds_or_command_does_not_recompile(model, plans):
    cfg, params = model[0], model[2]
    plan = plans[0]  # wrapped in chex.assert_max_traces(n=1): a retrace raises
    cons = C.no_constraints(cfg.horizon)
    plan(params, _s_now(), default_task(), cons, jax.random.PRNGKey(0))
    plan(params, _s_now().at[9].set(0.2), default_task(guidance_scale=0.3, energy=2.0, base_height=1.0),
         C.box(cons, "action", -0.2, 0.2), jax.random.PRNGKey(1))  # fmt: skip


def test_upright_reward_scores_the_planned_tilt():
    from dmpc_jax.envs import obs as obs_lib

    task = default_task()
    obs = np.zeros((24, 49), np.float32)
    obs[:, obs_lib.OBS_SLICES["gravity"]] = [0.0, 0.0, -1.0]
    action = np.zeros((24, 12), np.float32)
    i = REWARD_NAMES.index("upright") - 1
    level = float(compute_analytic_rewards(action, obs, task, **ROBOT)[i])
    obs[:, obs_lib.OBS_SLICES["gravity"]] = [np.sin(0.3), 0.0, -np.cos(0.3)]  # pitched 0.3 rad
    tilted = float(compute_analytic_rewards(action, obs, task, **ROBOT)[i])
    assert level == 0.0 and tilted == pytest.approx(-(np.sin(0.3) ** 2), rel=1e-5)


def test_forward_kinematics_base_height_matches_mujoco():
    pose = go2.home_qpos()[7:]
    obs = np.zeros((1, 49), np.float32)
    obs[0, 6:9] = [0, 0, -1]
    obs[0, 12:24] = pose - Q_DEFAULT
    h = float(planned_base_height(jnp.asarray(obs), jnp.asarray(Q_DEFAULT))[0])
    assert h == pytest.approx(go2.standing_height(pose), abs=2e-3)


def test_unknown_reward_term_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown reward term"):
        default_task(energyy=1.0)


def test_committed_actions_are_inpainted_into_the_first_rows(model, plans):
    """``prefix``: the receding horizon's in-flight actions hold in rows 0 .. P-1 of the plan
    (like the inpainted state), and the rest of the plan is conditioned on them."""
    _, params, cons = _plan(model, plans, guided=False)
    plain = plans[1]
    prefix = jnp.linspace(-0.5, 0.5, 4 * 12, dtype=jnp.float32).reshape(4, 12)
    key = jax.random.PRNGKey(7)
    task = default_task()
    with_prefix = plain(params, _s_now(), task, cons, key, prefix=prefix)
    free = plain(params, _s_now(), task, cons, key)
    np.testing.assert_allclose(np.asarray(with_prefix.action[:4]), np.asarray(prefix), atol=1e-5)
    np.testing.assert_allclose(np.asarray(with_prefix.obs[0]), np.asarray(_s_now()), atol=1e-5)
    assert not np.allclose(np.asarray(with_prefix.action[4:]), np.asarray(free.action[4:]))


@pytest.mark.slow
def test_standardize_scaling_keeps_the_condition_and_the_bounds_in_env_units(model):
    """With a dataset mean/std scaler (shift != 0) the inpainted state, the committed actions and
    the hard bounds still hold in env units."""
    cfg, nets, params, sched, _ = model
    rng = np.random.default_rng(0)
    dx = M.ACTION_DIM + 49
    stats = {
        "action": {"mean": rng.normal(0, 0.2, 12), "std": rng.uniform(0.2, 0.6, 12)},
        "obs": {"mean": rng.normal(0, 0.1, 49), "std": rng.uniform(0.0, 0.5, 49)},
    }
    scaler = M.standardize_scaler(stats)
    assert scaler["shift"].shape == scaler["scale"].shape == (dx,)
    plan = jax.jit(make_plan_fn(nets, cfg, SamplerConfig(num_candidates=2), sched, scaler, **ROBOT))
    c = C.box(C.no_constraints(cfg.horizon), "joint_vel", -0.05, 0.05)
    c = C.box(c, "action", -0.3, 0.3)
    prefix = jnp.full((2, 12), 0.1, jnp.float32)
    out = plan(
        params, _s_now(), default_task(guidance_scale=0.1, energy=1.0), c, jax.random.PRNGKey(1),
        prefix=prefix,
    )  # fmt: skip
    np.testing.assert_allclose(np.asarray(out.obs[0]), np.asarray(_s_now()), atol=1e-5)
    np.testing.assert_allclose(np.asarray(out.action[:2]), np.asarray(prefix), atol=1e-5)
    assert float(jnp.max(jnp.abs(out.action))) <= 0.3 + 1e-5
    qd = C.row_slice("joint_vel")
    assert float(jnp.max(jnp.abs(out.obs[1:, qd.start - 12 : qd.stop - 12]))) <= 0.05 + 1e-5
    assert np.isfinite(np.asarray(out.obs)).all()
