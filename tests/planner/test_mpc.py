"""Receding-horizon execution: chunk switching indices and the asynchronous timeline."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmpc_jax.planner.mpc import MPCConfig, mpc_init, mpc_step

H, B = 24, 2


def _fake_planner():
    """A planner whose action rows encode (plan made at time t, row): value = 1000 * t + row,
    where t is read from the observation (obs[:, 0] = t)."""

    def plan_batch(obs, key):
        t = obs[:, 0]
        rows = jnp.arange(H, dtype=jnp.float32)
        a = 1000.0 * t[:, None] + rows[None]
        return jnp.broadcast_to(a[:, :, None], (obs.shape[0], H, 12))

    return plan_batch


def _run(cfg, steps):
    plan = _fake_planner()
    obs = lambda t: jnp.full((B, 49), float(t))  # noqa: E731
    step = jax.jit(chex.assert_max_traces(lambda s, o, k: mpc_step(cfg, plan, s, o, k), n=1))
    state = mpc_init(cfg, plan, obs(0), jax.random.PRNGKey(0))
    out = []
    for t in range(steps):
        a, state = step(state, obs(t), jax.random.PRNGKey(t))
        v = int(a[0, 0])
        out.append((v // 1000, v % 1000))  # (time the plan was made, row executed)
        assert np.all(np.asarray(a) == v)  # every robot and joint executes the same row
    return out, state


def test_async_timeline_switches_at_the_margin():
    out, state = _run(MPCConfig(execute=11, margin=4, mode="async"), 25)
    expected = [(0, r) for r in range(11)]  # plan A from o_0: rows 0..10 at t = 0..10
    expected += [(7, r) for r in range(4, 11)]  # plan B from o_7 enters at row 4, t = 11..17
    expected += [(14, r) for r in range(4, 11)]  # plan C from o_14, t = 18..24
    assert out == expected
    assert int(state.plans) == 1 + 3  # initial plan + plans at t = 7, 14, 21


def test_sync_mode_executes_whole_chunks():
    out, _ = _run(MPCConfig(execute=5, mode="sync"), 12)
    assert out == [(0, r) for r in range(5)] + [(5, r) for r in range(5)] + [(10, 0), (10, 1)]


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_stateful_planner_memory_is_carried_between_plans(mode):
    """A stateful planner gets None on the first plan and its own last memory afterwards; the
    memory records the time of the plan that made it, so each plan sees its predecessor's."""
    cfg = MPCConfig(execute=11, margin=4, mode=mode)
    seen = []

    def plan_batch(obs, key, memory):
        t = obs[:, 0]
        prev = jnp.full_like(t, -1.0) if memory is None else memory
        jax.debug.callback(lambda p, t: seen.append((int(p[0]), int(t[0]))), prev, t)
        return _fake_planner()(obs, key), t

    obs = lambda t: jnp.full((B, 49), float(t))  # noqa: E731
    step = jax.jit(lambda s, o, k: mpc_step(cfg, plan_batch, s, o, k, stateful=True))
    state = mpc_init(cfg, plan_batch, obs(0), jax.random.PRNGKey(0), stateful=True)
    for t in range(25):
        _, state = step(state, obs(t), jax.random.PRNGKey(t))
    jax.effects_barrier()
    times = [0, 7, 14, 21] if mode == "async" else [0, 11, 22]
    assert seen == list(zip([-1] + times[:-1], times, strict=True))
    np.testing.assert_array_equal(np.asarray(state.memory), times[-1])


def test_one_plan_every_e_minus_d_steps():
    assert MPCConfig(11, 4).plans_every == 7
    assert MPCConfig(11, 4, "sync").plans_every == 11


def test_bad_configs():
    with pytest.raises(ValueError, match="margin"):
        MPCConfig(execute=4, margin=4)
    with pytest.raises(ValueError, match="horizon"):
        MPCConfig(execute=30).check_horizon(24)


def test_closed_loop_rollout_in_mjx_follows_the_timeline(env):
    """The MPC controller inside a jitted MJX rollout: the executed actions are the planned rows
    of the timeline, and each plan sees the observation of its own step."""
    from dmpc_jax.envs.rollout import make_rollout
    from dmpc_jax.planner.closed_loop import planner_controller

    seen = []

    def plan_one(args, s_now, key):
        # rows encode their index; record the observation shape each plan is given
        seen.append(s_now.shape)
        return jnp.broadcast_to((0.01 * jnp.arange(H, dtype=jnp.float32))[:, None], (H, 12))

    cfg = MPCConfig(execute=11, margin=4)
    rollout = make_rollout(env, planner_controller(cfg, plan_one), n_steps=20, batch=2)
    _, trace = rollout(jax.random.PRNGKey(0), jnp.array([0.5, 0.0, 0.0]))
    rows = np.round(np.asarray(trace["action"])[:, 0, 0] / 0.01).astype(int)
    np.testing.assert_array_equal(rows, list(range(11)) + list(range(4, 11)) + [4, 5])
    assert seen and all(s == (49,) for s in seen)
    assert np.isfinite(np.asarray(trace["qpos"])).all()


def test_planner_rollout_task_switch_no_recompile_and_deterministic(env):
    """The diffusion planner (tiny, random init) inside the jitted MJX rollout: a new task
    (weights, guidance, bounds) is new arrays in the same executable; the same key gives the same
    episode bit for bit; and a hard bound on the action holds in every executed action."""
    from dmpc_jax.diffusion import model as M
    from dmpc_jax.planner.load import TrainedPlanner
    from dmpc_jax.planner.sampler import SamplerConfig
    from dmpc_jax.planner.task import BoxSpec, RewardWeights, TaskSpec, task_arrays
    from dmpc_jax.robot import go2
    from dmpc_jax.scenario.harness import make_planner_rollout

    dcfg = M.diffusion_preset("tiny")
    nets, params = M.init_networks(dcfg, jax.random.PRNGKey(0))
    robot = dict(q_default=go2.paper_default_pose(), kp=40.0, kd=1.0, action_scale=0.5)
    planner = TrainedPlanner(nets, params, dcfg, M.paper_scaler(), robot, "tiny")
    rollout = make_planner_rollout(
        env, planner, SamplerConfig(num_candidates=2), MPCConfig(execute=6, margin=2), 10, 2
    )
    specs = [
        TaskSpec(guidance_scale=0.0),
        TaskSpec(guidance_scale=0.5, weights=RewardWeights(energy=1.0, posture=1.0)),
        TaskSpec(boxes=(BoxSpec("action", lo=-0.05, hi=0.05),)),
    ]
    cmd = jnp.array([0.5, 0.0, 0.0])
    actions = []
    for spec in specs:
        task, cons, _ = task_arrays(
            spec, dcfg.horizon, q_default=robot["q_default"], action_scale=0.5
        )
        _, trace = rollout(jax.random.PRNGKey(3), cmd, (params, task, cons))
        actions.append(np.asarray(trace["action"]))
    assert rollout._cache_size() == 1  # three tasks, one compilation
    assert not np.array_equal(actions[0], actions[1])  # guidance changed the plans
    assert np.abs(actions[2]).max() <= 0.05 + 1e-6  # the bound held on every executed action
    task, cons, _ = task_arrays(
        specs[1], dcfg.horizon, q_default=robot["q_default"], action_scale=0.5
    )
    _, again = rollout(jax.random.PRNGKey(3), cmd, (params, task, cons))
    np.testing.assert_array_equal(np.asarray(again["action"]), actions[1])
    assert rollout._cache_size() == 1


def test_inpaint_committed_passes_the_in_flight_rows_of_the_running_chunk():
    """With ``inpaint_committed`` the plan started at index E - D gets the running chunk's rows
    E - D .. E - 1 (the actions executed while it is computed) as its prefix; this fake planner
    returns that prefix's first row everywhere, so plan B's executed rows read plan A's row 7."""
    cfg = MPCConfig(execute=11, margin=4, mode="async", inpaint_committed=True)
    base = _fake_planner()

    def plan_batch(obs, key, prefix=None):
        if prefix is None:  # the first plan, at reset
            return base(obs, key)
        assert prefix.shape == (B, 4, 12)
        return jnp.broadcast_to(prefix[:, :1], (B, H, 12))

    obs = lambda t: jnp.full((B, 49), float(t))  # noqa: E731
    step = jax.jit(lambda s, o, k: mpc_step(cfg, plan_batch, s, o, k))
    state = mpc_init(cfg, plan_batch, obs(0), jax.random.PRNGKey(0))
    out, last = [], []
    for t in range(18):
        a, state = step(state, obs(t), jax.random.PRNGKey(t))
        out.append(int(a[0, 0]))
        last.append(int(state.last))
    assert out == list(range(11)) + [7] * 7
    assert last == list(range(11)) + list(range(4, 11))  # the executed row index, recorded
    with pytest.raises(ValueError, match="async"):
        MPCConfig(mode="sync", inpaint_committed=True)
