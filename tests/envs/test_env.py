"""The Go2 joystick env: observation layout, rollouts, rewards, termination, randomisation, pushes,
latency, recompiles and bad input. All tests share the session's compiled reset/step."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmpc_jax.config import env_preset
from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.envs.go2_joystick import FALL_CAUSES, PRIVILEGED_SIZE, Go2Joystick
from dmpc_jax.envs.wrappers import wrap_for_training


def test_observation_layout_and_shape(env, env_fns):
    reset, _ = env_fns
    s = reset(jax.random.PRNGKey(0))
    assert obs_lib.OBS_SIZE == 49
    chex.assert_shape(s.obs["state"], (49,))
    chex.assert_shape(s.obs["privileged_state"], (PRIVILEGED_SIZE,))
    o, sl = np.asarray(s.obs["state"]), obs_lib.OBS_SLICES
    assert [sl[k].start for k in sl] == [0, 3, 6, 9, 12, 24, 36, 48]
    np.testing.assert_array_equal(o[sl["lin_vel"]], 0.0)  # no estimate on the robot
    np.testing.assert_array_equal(o[sl["friction"]], 0.0)
    # at reset the robot is level: gravity points down in the body frame
    np.testing.assert_allclose(o[sl["gravity"]], [0, 0, -1], atol=1e-5)
    np.testing.assert_allclose(
        o[sl["command"]], np.asarray(s.info["command"]) * np.array([2.0, 2.0, 0.25]), rtol=1e-6
    )
    q = np.asarray(s.pipeline_state.qpos[7:])
    np.testing.assert_allclose(o[sl["joint_pos"]], q - np.asarray(env.q_default), atol=1e-6)
    np.testing.assert_allclose(
        o[sl["joint_vel"]], 0.05 * np.asarray(s.pipeline_state.qvel[6:]), atol=1e-6
    )


def test_projected_gravity_matches_rotation_matrix():
    rng = np.random.default_rng(0)
    quat = rng.normal(size=(5, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    import mujoco

    for qq in quat:
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, qq)
        expected = mat.reshape(3, 3).T @ np.array([0, 0, -1.0])
        np.testing.assert_allclose(obs_lib.projected_gravity(np, qq), expected, atol=1e-12)


@pytest.fixture(scope="module")
def random_rollout(env):
    """8 wrapped envs, 120 random-action steps (episodes of 100 steps: auto-reset included)."""
    w = wrap_for_training(env, env.cfg.episode_steps)
    batch, steps = 8, 120

    @jax.jit
    def run(key):
        state = w.reset(jax.random.split(key, batch))

        def body(s, k):
            s = w.step(s, jax.random.uniform(k, (batch, 12), minval=-1.0, maxval=1.0))
            return s, (s.obs, s.reward, s.metrics, s.done)

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    return run(jax.random.PRNGKey(3))


def test_no_nan_over_random_rollout(random_rollout):
    final, (obs, reward, metrics, done) = random_rollout
    for x in jax.tree.leaves((obs, reward, metrics, final.pipeline_state.qpos)):
        assert np.all(np.isfinite(np.asarray(x)))
    assert np.asarray(done).sum() > 0  # episodes of 100 steps ended and were reset


def test_every_reward_term_is_finite_and_logged(env, random_rollout):
    _, (_, _, metrics, _) = random_rollout
    for term in env.cfg.reward.scales:
        values = np.asarray(metrics[f"reward/{term}"])
        assert np.all(np.isfinite(values)), term
    assert {f"reward/{t}" for t in env.cfg.reward.scales} <= set(metrics)
    # tracking rewards are positive, penalties non-positive
    assert np.asarray(metrics["reward/tracking_lin_vel"]).min() > 0
    assert np.asarray(metrics["reward/torques"]).max() <= 0


def test_termination_when_flipped(env, env_fns):
    reset, step = env_fns
    s = reset(jax.random.PRNGKey(1))
    qpos = s.pipeline_state.qpos.at[3:7].set(jnp.array([0.0, 1.0, 0.0, 0.0]))  # roll by pi
    qpos = qpos.at[2].set(0.5)
    flipped = s.replace(pipeline_state=s.pipeline_state.replace(qpos=qpos))
    assert float(step(flipped, jnp.zeros(12)).done) == 1.0
    assert float(step(s, jnp.zeros(12)).done) == 0.0


def _posed(state, *, z=0.6, quat=(1.0, 0.0, 0.0, 0.0), qvel=None):
    d = state.pipeline_state
    qpos = d.qpos.at[2].set(z).at[3:7].set(jnp.asarray(quat))
    return state.replace(pipeline_state=d.replace(qpos=qpos, qvel=d.qvel if qvel is None else qvel))


def _about(axis, angle):
    q = np.zeros(4)
    q[0], q[1 + axis] = np.cos(angle / 2), np.sin(angle / 2)
    return q


def _causes(out) -> set[str]:
    return {c for c in FALL_CAUSES if float(out.metrics[f"fall/{c}"]) > 0.5}


def test_each_fall_cause_triggers_in_a_constructed_state(env, env_fns):
    reset, step = env_fns
    s = reset(jax.random.PRNGKey(1))
    zero = jnp.zeros(12)
    up = step(_posed(s, z=0.6), zero)  # level, in the air: nothing holds
    assert _causes(up) == set() and float(up.done) == 0.0
    rolled = step(_posed(s, quat=_about(0, 1.2)), zero)
    assert _causes(rolled) == {"roll"} and float(rolled.done) == 1.0
    np.testing.assert_allclose(float(rolled.metrics["state/roll"]), 1.2, atol=0.02)
    # a nose-over: the atan2 pitch passes pi/2 (the arcsin form never did); ZYX roll reads pi
    over = step(_posed(s, quat=_about(1, 1.8)), zero)
    assert {"pitch", "upside_down"} <= _causes(over) and float(over.done) == 1.0
    assert float(over.metrics["state/pitch"]) > np.pi / 2
    assert "upside_down" in _causes(step(_posed(s, quat=_about(0, np.pi)), zero))
    belly = step(_posed(s, z=0.04), zero)  # level, base box through the floor
    assert "base_contact" in _causes(belly) and float(belly.done) == 1.0
    kneel = step(_posed(s, z=0.15), zero)  # base and nose clear of the floor, front knees on it
    assert _causes(kneel) == {"knee_contact"} and float(kneel.done) == 1.0
    nan = step(_posed(s, qvel=s.pipeline_state.qvel.at[0].set(jnp.nan)), zero)
    assert "nonfinite" in _causes(nan) and float(nan.done) == 1.0


def test_paper_rule_env_records_contacts_without_ending_on_them():
    import dataclasses

    from dmpc_jax.config import env_preset
    from dmpc_jax.envs.go2_joystick import Go2Joystick

    feet = Go2Joystick(env_preset("tiny"))
    paper = Go2Joystick(
        dataclasses.replace(env_preset("tiny"), contacts="full", terminate_on_contact=False)
    )
    assert set(feet.terminating_causes) == set(FALL_CAUSES)
    assert set(paper.terminating_causes) == {"roll", "pitch", "upside_down", "nonfinite"}
    assert paper.mj_model.ngeom == feet.mj_model.ngeom  # the same geoms, all of them colliding
    assert (paper.mj_model.geom_contype > 0).sum() > (feet.mj_model.geom_contype > 0).sum()


def test_randomisation_varies_per_env(env):
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(2), 8))
    dr = states.info["dr"]
    for name in ("friction", "added_mass", "motor_strength", "damping_scale"):
        assert np.std(np.asarray(dr[name])) > 0, name
    r = env.cfg.randomization
    assert np.all(
        (np.asarray(dr["friction"]) >= r.friction[0])
        & (np.asarray(dr["friction"]) <= r.friction[1])
    )
    assert np.std(np.asarray(states.info["command"]), axis=0).min() > 0


def test_randomised_model_changes_physics(env):
    dr = {
        "friction": jnp.array(0.5),
        "added_mass": jnp.array(2.0),
        "com_offset": jnp.array([0.01, -0.01]),
        "motor_strength": jnp.array(0.9),
        "damping_scale": jnp.array(1.1),
    }
    m = env._randomized_model(dr)
    b = env._base_id
    assert float(m.body_mass[b]) == pytest.approx(float(env.mjx_model.body_mass[b]) + 2.0, rel=1e-6)
    np.testing.assert_allclose(np.asarray(m.actuator_gainprm[:, 0]), 0.9 * env.cfg.kp, rtol=1e-6)
    assert float(m.geom_friction[env._foot_ids[0], 0]) == pytest.approx(0.5)


def test_push_changes_base_velocity(env, env_fns):
    reset, step = env_fns
    s = reset(jax.random.PRNGKey(4))
    info_push = dict(s.info, push_countdown=jnp.array(0, jnp.int32))
    info_calm = dict(s.info, push_countdown=jnp.array(100, jnp.int32))
    pushed = step(s.replace(info=info_push), jnp.zeros(12))
    calm = step(s.replace(info=info_calm), jnp.zeros(12))
    push = np.asarray(pushed.info["push"])
    lo, hi = env.cfg.push.magnitude
    assert lo - 1e-6 <= np.linalg.norm(push) <= hi + 1e-6
    assert np.linalg.norm(np.asarray(calm.info["push"])) == 0.0
    dv = np.asarray(pushed.pipeline_state.qvel[:2] - calm.pipeline_state.qvel[:2])
    assert np.linalg.norm(dv) > 0.5 * lo
    assert np.dot(dv, push) > 0  # in the direction of the push
    assert int(pushed.info["push_countdown"]) > 0  # a new interval was drawn


def test_latency_buffer_delays_observations(env, env_fns):
    reset, step = env_fns
    assert env.cfg.max_latency_steps == 2
    s = reset(jax.random.PRNGKey(5))
    s = s.replace(info=dict(s.info, latency=jnp.array(2, jnp.int32)))
    newest, seen = [], []
    for t in range(5):
        s = step(s, 0.3 * jnp.ones(12) * (-1) ** t)
        newest.append(np.asarray(s.info["obs_hist"][0]))  # the (noisy) measurement of step t
        seen.append(np.asarray(s.obs["state"]))
    for t in range(2, 5):
        np.testing.assert_array_equal(seen[t], newest[t - 2])
    assert not np.array_equal(seen[4], newest[4])


def test_last_action_slot_can_skip_the_latency():
    from dmpc_jax.envs.signals import delayed_observation

    hist = jnp.arange(4 * 49, dtype=jnp.float32).reshape(4, 49)  # newest first
    sl = obs_lib.OBS_SLICES["last_action"]
    np.testing.assert_array_equal(delayed_observation(hist, 2), hist[2])
    fresh = delayed_observation(hist, 2, delay_last_action=False)
    np.testing.assert_array_equal(fresh[sl], hist[0, sl])  # the action just sent
    rest = np.ones(49, bool)
    rest[sl] = False
    np.testing.assert_array_equal(fresh[rest], hist[2][rest])  # everything else stays delayed


def test_step_does_not_recompile(env_fns):
    # the session's step is wrapped in chex.assert_max_traces(n=1) (see conftest): a retrace raises
    reset, step = env_fns
    s = reset(jax.random.PRNGKey(0))
    s1 = step(s, jnp.zeros(12))
    s2 = step(s1, 0.1 * jnp.ones(12))
    assert not np.array_equal(
        np.asarray(s1.pipeline_state.qpos), np.asarray(s2.pipeline_state.qpos)
    )


def test_wrong_action_shape_is_a_clear_error(env, env_fns):
    reset, _ = env_fns
    s = reset(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"shape \(12,\).*\(13,\)"):
        env.step(s, jnp.zeros(13))
    with pytest.raises(ValueError, match="vmap the env"):
        env.step(s, jnp.zeros((4, 12)))


@pytest.mark.slow
def test_resets_start_from_recorded_states_over_the_origin(tmp_path):
    """EnvConfig.init_states: every reset draws one of the recorded states (a base pitched
    nose-down and sunk, as the planner's before its early falls), moved over the origin, with its
    velocity; the observation sees it. A file of the wrong layout is refused."""
    from dmpc_jax.config import apply_overrides

    plain = Go2Joystick(env_preset("tiny"))
    q0 = np.asarray(plain._init_qpos)
    rng = np.random.default_rng(0)
    qpos = np.tile(q0, (3, 1))
    for k, pitch in enumerate((0.05, 0.1, 0.15)):  # nose down about y, base lower, elsewhere
        qpos[k, 3:7] = [np.cos(pitch / 2), 0.0, np.sin(pitch / 2), 0.0]
        qpos[k, :3] = [5.0 * k, -2.0, q0[2] - 0.02 * k]
    qvel = rng.normal(0, 0.3, (3, plain.mj_model.nv)).astype(np.float32)
    np.savez(tmp_path / "states.npz", qpos=qpos, qvel=qvel)
    cfg = apply_overrides(env_preset("tiny"),
                          [f"init_states={tmp_path / 'states.npz'}", "noise.enabled=false"])  # fmt: skip
    env = Go2Joystick(cfg)
    s = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 16))
    got_q, got_v = np.asarray(s.pipeline_state.qpos), np.asarray(s.pipeline_state.qvel)
    want = qpos.copy()
    want[:, :2] = 0.0
    which = [int(np.argmin(np.abs(want - q).sum(1))) for q in got_q]
    np.testing.assert_allclose(got_q, want[which], atol=1e-6)
    np.testing.assert_allclose(got_v, qvel[which], atol=1e-6)
    assert len(set(which)) > 1  # drawn, not always the first
    g = obs_lib.OBS_SLICES["gravity"]
    np.testing.assert_allclose(np.asarray(s.obs["state"][:, g]),
                               obs_lib.projected_gravity(np, got_q[:, 3:7]), atol=1e-5)  # fmt: skip
    np.savez(tmp_path / "bad.npz", qpos=qpos[:, :7], qvel=qvel)
    with pytest.raises(ValueError, match="want qpos"):
        Go2Joystick(apply_overrides(env_preset("tiny"), [f"init_states={tmp_path / 'bad.npz'}"]))
    with pytest.raises(ValueError, match="not a file"):  # when the env is made, not the config
        Go2Joystick(apply_overrides(env_preset("tiny"), [f"init_states={tmp_path / 'none.npz'}"]))


@pytest.mark.slow
def test_recovery_collection_settings_tilt_the_start_and_set_the_velocity():
    """The authors' data-collection disturbances: initial roll/pitch in +-init_attitude and pushes
    that *set* the base's horizontal velocity to U(-v, v)^2."""
    from dmpc_jax.config import apply_overrides

    cfg = apply_overrides(
        env_preset("tiny"),
        ["init_attitude=0.3", "push.mode=set", "push.magnitude=[0,1]", "noise.enabled=false"],
    )
    env = Go2Joystick(cfg)
    reset = jax.jit(jax.vmap(env.reset))
    s = reset(jax.random.split(jax.random.PRNGKey(0), 64))
    roll, pitch = obs_lib.roll_pitch(np, np.asarray(s.pipeline_state.qpos[:, 3:7]))
    # roll is the ZYX roll; the gravity-based pitch is atan(tan(p) / cos(r)) <= 0.313 here
    assert np.abs(roll).max() <= 0.3 + 1e-5 and np.abs(pitch).max() <= 0.32
    assert np.abs(roll).max() > 0.2 and np.abs(pitch).max() > 0.2  # drawn, not level
    g = obs_lib.OBS_SLICES["gravity"]
    np.testing.assert_allclose(  # the observation sees the tilt
        np.asarray(s.obs["state"][:, g]),
        obs_lib.projected_gravity(np, np.asarray(s.pipeline_state.qpos[:, 3:7])),
        atol=1e-5,
    )
    one = jax.tree.map(lambda x: x[0], s)
    one = one.replace(info=dict(one.info, push_countdown=jnp.array(0, jnp.int32)))
    pushed = jax.jit(env.step)(one, jnp.zeros(12))
    v = np.asarray(pushed.pipeline_state.qvel[:2])
    v_set = np.asarray(one.pipeline_state.qvel[:2] + pushed.info["push"])
    assert np.all(np.abs(v_set) <= 1.0 + 1e-6)
    np.testing.assert_allclose(v, v_set, atol=0.15)  # set, then one control step of physics


def test_peak_joint_speed_is_the_substep_peak_and_prices_the_runner_bound(env, env_fns):
    from dmpc_jax.deploy.safety import SafetyConfig
    from dmpc_jax.envs.config import RewardConfig
    from dmpc_jax.envs.rewards import REWARD_TERMS
    from dmpc_jax.scenario.metrics import JOINT_SPEED_BOUND

    reset, step = env_fns
    s = reset(jax.random.PRNGKey(1))
    assert float(s.metrics["state/peak_joint_speed"]) < 1.0  # joints start at rest
    # a calf spinning at 40 rad/s: damping and PD brake it within the step (to about 7 rad/s after
    # the first 4 ms substep, about 1 rad/s at the step's end)
    kicked = s.pipeline_state.qvel.at[6 + 2].set(40.0)
    out = step(_posed(s, z=0.4, qvel=kicked), jnp.zeros(12))
    peak, end = (
        float(out.metrics["state/peak_joint_speed"]),
        float(jnp.max(jnp.abs(out.pipeline_state.qvel[6:]))),
    )
    assert peak > 3 * end  # the peak is seen inside the control step, not at its end
    assert JOINT_SPEED_BOUND == SafetyConfig().max_joint_speed
    cost = REWARD_TERMS["dof_vel_limits"]
    cfg = RewardConfig(soft_joint_speed=24.0)
    qd_peak = jnp.zeros(12).at[2].set(30.0).at[5].set(20.0)
    assert float(cost({"qd_peak": qd_peak}, cfg)) == pytest.approx(6.0)  # only what passes 24
    assert float(cost({"qd_peak": jnp.full(12, 23.9)}, cfg)) == 0.0
    with pytest.raises(ValueError, match="soft_joint_speed"):
        RewardConfig(soft_joint_speed=0.0)


def test_explicit_pd_at_delay_0_is_the_position_actuator_and_delay_1_lags(env, env_fns):
    import dataclasses

    reset, step = env_fns
    motors = Go2Joystick(dataclasses.replace(env.cfg, pd_delay=(0, 1)))
    assert motors.explicit_pd and not env.explicit_pd
    assert int(motors.mj_model.actuator_ctrllimited.sum()) == 0  # ctrl is a torque now
    m_reset, m_step = jax.jit(motors.reset), jax.jit(motors.step)
    s = reset(jax.random.PRNGKey(4))
    ms = m_reset(jax.random.PRNGKey(4))
    assert ms.info["pd_hist"].shape == (2, 24)
    np.testing.assert_allclose(ms.pipeline_state.qpos, s.pipeline_state.qpos)  # same start
    action = jnp.linspace(-1.0, 1.0, 12)
    ref = step(s, action)
    at0 = m_step(ms.replace(info={**ms.info, "pd_delay": jnp.asarray(0)}), action)
    np.testing.assert_allclose(at0.pipeline_state.qpos, ref.pipeline_state.qpos, atol=1e-4)
    np.testing.assert_allclose(at0.pipeline_state.qvel, ref.pipeline_state.qvel, atol=1e-2)
    at1 = m_step(ms.replace(info={**ms.info, "pd_delay": jnp.asarray(1)}), action)
    # the first substep of delay 1 uses the reset state twice over: the legs start the same way,
    # then lag the position actuator by a step
    lag = np.abs(np.asarray(at1.pipeline_state.qpos - ref.pipeline_state.qpos)[7:]).max()
    assert lag > 1e-3
    with pytest.raises(ValueError, match="pd_delay"):
        dataclasses.replace(env.cfg, pd_delay=(2, 1))


def test_envs_of_one_config_share_one_trace_with_the_same_numbers(env, env_fns, monkeypatch):
    """``reset``/``step`` go through ``envs/traced.py``: a second env built from the same config
    (a resumed run, an evaluator beside the rollouts) reuses the first one's trace, and the
    numbers equal those of the untraced methods bit for bit."""
    import dataclasses

    from dmpc_jax.envs import traced

    cfg = dataclasses.replace(env.cfg, episode_length_s=env.cfg.episode_length_s + 0.37)  # unseen
    a, b, other = Go2Joystick(cfg), Go2Joystick(cfg), env
    assert traced.SameConfig(a) == traced.SameConfig(b) != traced.SameConfig(other)
    calls = []
    real = Go2Joystick._reset
    monkeypatch.setattr(Go2Joystick, "_reset", lambda self, rng: calls.append(1) or real(self, rng))
    key = jax.random.PRNGKey(5)
    jax.make_jaxpr(a.reset)(key)
    jax.make_jaxpr(jax.vmap(b.reset))(jax.random.split(key, 3))
    assert len(calls) == 1
    monkeypatch.undo()
    reset, _ = env_fns  # the session's step counts its traces: jit this test's own
    step = jax.jit(env.step)
    s = reset(key)
    s_raw = jax.jit(env._reset)(key)
    act = jnp.full(12, 0.1)
    for x, y in ((s, s_raw), (step(s, act), jax.jit(env._step)(s_raw, act))):
        chex.assert_trees_all_equal(x.obs, y.obs)
        chex.assert_trees_all_equal(x.pipeline_state.qpos, y.pipeline_state.qpos)
        np.testing.assert_array_equal(x.reward, y.reward)
