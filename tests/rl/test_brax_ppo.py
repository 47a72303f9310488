"""brax PPO runs unpatched with our pins and our env (jax 0.9.2: ``device_put_replicated`` exists)."""

import functools

import jax
import numpy as np
from brax.training.agents.ppo import networks as ppo_networks
from brax.training.agents.ppo import train as ppo

from dmpc_jax.envs.wrappers import wrap_for_training


def test_brax_ppo_trains_one_tiny_epoch(env):
    progress = []
    network_factory = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=(16,),
        value_hidden_layer_sizes=(16,),
        policy_obs_key="state",
        value_obs_key="privileged_state",  # asymmetric actor-critic
    )
    make_policy, params, metrics = ppo.train(
        environment=env,
        num_timesteps=64,
        num_envs=4,
        episode_length=20,
        unroll_length=4,
        batch_size=4,
        num_minibatches=4,
        num_updates_per_batch=1,
        num_evals=1,
        run_evals=False,  # the evaluator is another MJX compile; training is what we prove here
        normalize_observations=True,
        wrap_env_fn=wrap_for_training,
        network_factory=network_factory,
        progress_fn=lambda step, m: progress.append((step, m)),
        seed=0,
    )
    normalizer, policy_params, _ = params
    assert progress[-1][0] >= 64
    assert "training/policy_loss" in metrics and np.isfinite(metrics["training/policy_loss"])
    assert np.all(np.isfinite(np.asarray(jax.tree.leaves(policy_params)[0])))
    assert int(normalizer.count) > 0
    obs = env.reset(jax.random.PRNGKey(0)).obs
    action, _ = make_policy(params, deterministic=True)(obs, jax.random.PRNGKey(1))
    assert action.shape == (12,)
