import jax.numpy as jnp
import numpy as np
import pytest

from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.evaluate.offline_fidelity import perturb, zero_constant_slots


def _level_obs(pitch=0.0):
    s = np.zeros(obs_lib.OBS_SIZE, np.float32)
    g = obs_lib.OBS_SLICES["gravity"]
    s[g] = [np.sin(pitch), 0.0, -np.cos(pitch)]
    return jnp.asarray(s)


@pytest.mark.parametrize("start", [0.0, 0.2])
def test_pitch_perturbation_adds_to_the_pitch_the_observation_reads(start):
    s = perturb(_level_obs(start)[None], pitch=0.1)
    g = np.asarray(s[0, obs_lib.OBS_SLICES["gravity"]])
    assert np.arctan2(g[0], -g[2]) == pytest.approx(start + 0.1, abs=1e-6)
    assert np.linalg.norm(g) == pytest.approx(1.0, abs=1e-6)


def test_pitch_rate_perturbation_is_in_observation_units():
    s = perturb(_level_obs()[None], pitch_rate=1.0)
    w = np.asarray(s[0, obs_lib.OBS_SLICES["ang_vel"]])
    np.testing.assert_allclose(w, [0.0, obs_lib.ANG_VEL_SCALE, 0.0])


def test_constant_slots_are_zeroed_and_nothing_else():
    s = jnp.arange(2 * obs_lib.OBS_SIZE, dtype=jnp.float32).reshape(2, -1) + 1.0
    z = np.asarray(zero_constant_slots(s))
    for name, sl in obs_lib.OBS_SLICES.items():
        if name in ("lin_vel", "friction"):
            assert not z[:, sl].any()
        else:
            np.testing.assert_array_equal(z[:, sl], np.asarray(s)[:, sl])


def test_planner_states_come_from_its_own_closed_loop(env):
    """States for the closed-loop fidelity check: the tiny random-init planner in the MJX loop,
    only robots still standing, each with the held command in its observation."""
    import jax

    from dmpc_jax.diffusion import model as M
    from dmpc_jax.evaluate.offline_fidelity import OfflineConfig, planner_states
    from dmpc_jax.planner.load import TrainedPlanner
    from dmpc_jax.planner.task import TaskSpec
    from dmpc_jax.robot import go2

    dcfg = M.diffusion_preset("tiny")
    nets, params = M.init_networks(dcfg, jax.random.PRNGKey(0))
    robot = dict(q_default=go2.paper_default_pose(), kp=40.0, kd=1.0, action_scale=0.5)
    planner = TrainedPlanner(nets, params, dcfg, M.paper_scaler(), robot, "tiny")
    cfg = OfflineConfig(states=3, states_from="planner", warmup_s=0.0, command=(0.7, 0.0, 0.0))
    args = planner.task_args(TaskSpec(name="nominal", command=cfg.command))
    s = np.asarray(planner_states(cfg, env, planner, args, jax.random.PRNGKey(0)))
    assert s.shape == (3, obs_lib.OBS_SIZE) and np.isfinite(s).all()
    cmd = s[:, obs_lib.OBS_SLICES["command"]]
    np.testing.assert_allclose(cmd[:, 0], 0.7 * 2.0, rtol=1e-5)  # vx in observation units
