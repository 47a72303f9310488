"""A rollout's probe: another policy's answer on the very observation the controller acted on."""

import jax
import jax.numpy as jnp
import numpy as np

from dmpc_jax.envs.rollout import make_rollout


def test_the_probe_sees_the_observation_the_controller_acted_on(env):
    def policy(obs, key):  # a function of the observation alone
        return 0.3 * jnp.tanh(obs["state"][..., :12] + obs["state"][..., 12:24])

    rollout = make_rollout(env, policy, n_steps=8, batch=2, probe=policy)
    _, trace = rollout(jax.random.PRNGKey(0), jnp.array([0.5, 0.0, 0.0]))
    action, probe = np.asarray(trace["action"]), np.asarray(trace["probe_action"])
    assert action.shape == probe.shape == (8, 2, 12)
    np.testing.assert_array_equal(probe, action)  # the same observation, not the next one
    assert not np.allclose(action[1:], action[:-1])  # and the observation does move
