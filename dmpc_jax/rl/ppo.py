"""The PPO demonstrator: brax PPO's networks, loss, unroll and normaliser, driven by a resumable loop.

``brax.training.agents.ppo.train`` restores only network parameters and the normaliser from a
checkpoint (the optimizer state and step count restart), so a run killed after hours would not
continue exactly. We therefore assemble brax's own pieces (``ppo_networks``, ``ppo_losses``,
``acting.generate_unroll``, ``running_statistics``, ``gradients.loss_and_pgrad``) into the same
training epoch, and checkpoint the *whole* training state with orbax: parameters, Adam moments,
normaliser, step count and PRNG key. ``train()`` returns ``(make_policy, params, metrics)`` with
brax's params layout ``(normalizer, policy, value)``, so brax inference code works unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from brax.training import acting, gradients
from brax.training.acme import running_statistics, specs
from brax.training.agents.ppo import losses as ppo_losses
from brax.training.agents.ppo import networks as ppo_networks

from dmpc_jax.envs.config import CommandConfig, EnvConfig
from dmpc_jax.envs.go2_joystick import Go2Joystick
from dmpc_jax.envs.wrappers import wrap_for_training


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters (brax PPO's names and meanings).

    Attributes:
        num_timesteps: total env steps to train for.
        num_envs: parallel envs.
        unroll_length: env steps per env between updates (GAE window).
        batch_size: unrolls per minibatch.
        num_minibatches: minibatches per update epoch; batch_size * num_minibatches unrolls are
            collected per training step (must be a multiple of num_envs).
        num_updates_per_batch: passes over the collected batch.
        training_steps_per_epoch: training steps fused into one jitted call (one log/ckpt point).
        learning_rate: Adam step size.
        entropy_cost: entropy bonus weight.
        discounting: gamma.
        gae_lambda: GAE lambda.
        clipping_epsilon: PPO ratio clip.
        reward_scaling: reward multiplier in the loss.
        max_grad_norm: global-norm gradient clip.
        policy_hidden: policy MLP widths.
        value_hidden: value MLP widths (asymmetric critic on ``privileged_state``).
        checkpoint_every_epochs: orbax checkpoint interval, epochs.
        seed: PRNG seed.
    """

    num_timesteps: int = 60_000_000
    num_envs: int = 256
    unroll_length: int = 20
    batch_size: int = 256
    num_minibatches: int = 8
    num_updates_per_batch: int = 4
    training_steps_per_epoch: int = 10
    learning_rate: float = 3e-4
    entropy_cost: float = 1e-2
    discounting: float = 0.97
    gae_lambda: float = 0.95
    clipping_epsilon: float = 0.2
    reward_scaling: float = 1.0
    max_grad_norm: float = 1.0
    policy_hidden: tuple[int, ...] = (256, 128, 128)
    value_hidden: tuple[int, ...] = (256, 128, 128)
    checkpoint_every_epochs: int = 5
    seed: int = 0

    def __post_init__(self):
        if (self.batch_size * self.num_minibatches) % self.num_envs:
            raise ValueError(
                f"PPOConfig: batch_size * num_minibatches ({self.batch_size * self.num_minibatches})"
                f" must be a multiple of num_envs ({self.num_envs})"
            )
        for name in (
            "num_timesteps",
            "num_envs",
            "unroll_length",
            "batch_size",
            "num_minibatches",
            "num_updates_per_batch",
            "training_steps_per_epoch",
            "checkpoint_every_epochs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"PPOConfig.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def env_steps_per_training_step(self) -> int:
        return self.batch_size * self.num_minibatches * self.unroll_length

    @property
    def env_steps_per_epoch(self) -> int:
        return self.env_steps_per_training_step * self.training_steps_per_epoch

    @property
    def num_epochs(self) -> int:
        return -(-self.num_timesteps // self.env_steps_per_epoch)


@dataclasses.dataclass(frozen=True)
class DemonstratorConfig:
    """A demonstrator run: the env it trains on and the PPO settings.

    Attributes:
        env: the env it trains on (randomisation, pushes, noise, commands, reward).
        ppo: the PPO settings.
        init_from: another demonstrator run whose newest training state (networks, normaliser,
            Adam moments, step count) this run starts from instead of a fresh init, e.g. the
            shipped demonstrator trained on under a wider randomisation; its networks must
            have this run's sizes. Empty: a fresh init. ``num_timesteps`` counts this run's
            own steps; the logged ``env_steps`` go on from the source's.
    """

    env: EnvConfig = EnvConfig(
        command=CommandConfig(vx=(-1.5, 1.5), vy=(-0.5, 0.5), wz=(-1.0, 1.0))
    )
    ppo: PPOConfig = PPOConfig()
    init_from: str = ""


def demonstrator_preset(name: str) -> DemonstratorConfig:
    base = DemonstratorConfig()
    if name == "tiny":
        ppo = PPOConfig(
            num_timesteps=4 * 4 * 4 * 2 * 3, num_envs=4, unroll_length=4, batch_size=4,
            num_minibatches=2, num_updates_per_batch=1, training_steps_per_epoch=1,
            policy_hidden=(16,), value_hidden=(16,), checkpoint_every_epochs=1,
        )  # fmt: skip
        return dataclasses.replace(
            base, env=dataclasses.replace(base.env, episode_length_s=1.0), ppo=ppo
        )
    if name == "cpu":
        return base
    if name == "paper":
        ppo = PPOConfig(
            num_timesteps=200_000_000, num_envs=8192, batch_size=256, num_minibatches=32,
            training_steps_per_epoch=5, checkpoint_every_epochs=2,
            policy_hidden=(512, 256, 128), value_hidden=(512, 256, 128),
        )  # fmt: skip
        return dataclasses.replace(base, ppo=ppo)
    raise ValueError(f"unknown demonstrator preset {name!r}; choose tiny, cpu or paper")


@flax.struct.dataclass
class TrainingState:
    """Everything a resumed run needs to continue exactly (the env state is reset on resume)."""

    optimizer_state: Any
    params: ppo_losses.PPONetworkParams
    normalizer_params: running_statistics.RunningStatisticsState
    training_steps: jax.Array  # int32 scalar: completed training steps
    key: jax.Array


def make_networks(env: Go2Joystick, cfg: PPOConfig) -> ppo_networks.PPONetworks:
    obs_size = {k: v for k, v in env.observation_size.items()}
    return ppo_networks.make_ppo_networks(
        obs_size,
        env.action_size,
        preprocess_observations_fn=running_statistics.normalize,
        policy_hidden_layer_sizes=cfg.policy_hidden,
        value_hidden_layer_sizes=cfg.value_hidden,
        policy_obs_key="state",
        value_obs_key="privileged_state",
    )


def make_trainer(env: Go2Joystick, cfg: PPOConfig):
    """(init(key) -> TrainingState, epoch(ts, env_state) -> (ts, env_state, metrics), networks).

    ``epoch`` is one jitted call of ``cfg.training_steps_per_epoch`` training steps, each as in
    brax PPO: unroll, update the normaliser, ``num_updates_per_batch`` passes of minibatch SGD.
    """
    nets = make_networks(env, cfg)
    wrapped = wrap_for_training(env, env.cfg.episode_steps)
    optimizer = optax.chain(
        optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate)
    )
    loss_fn = functools.partial(
        ppo_losses.compute_ppo_loss,
        ppo_network=nets,
        entropy_cost=cfg.entropy_cost,
        discounting=cfg.discounting,
        reward_scaling=cfg.reward_scaling,
        gae_lambda=cfg.gae_lambda,
        clipping_epsilon=cfg.clipping_epsilon,
        normalize_advantage=True,
    )
    loss_and_pgrad = gradients.loss_and_pgrad(loss_fn, pmap_axis_name=None, has_aux=True)
    make_policy = ppo_networks.make_inference_fn(nets)

    def init(key) -> TrainingState:
        k_pol, k_val, key = jax.random.split(key, 3)
        params = ppo_losses.PPONetworkParams(
            policy=nets.policy_network.init(k_pol), value=nets.value_network.init(k_val)
        )
        obs_spec = {
            k: specs.Array(v, jnp.dtype("float32")) for k, v in env.observation_size.items()
        }
        return TrainingState(
            optimizer_state=optimizer.init(params),
            params=params,
            normalizer_params=running_statistics.init_state(obs_spec),
            training_steps=jnp.zeros((), jnp.int32),
            key=key,
        )

    def reset_envs(key):
        return wrapped.reset(jax.random.split(key, cfg.num_envs))

    def minibatch_step(carry, data, normalizer_params):
        opt_state, params, key = carry
        key, k_loss = jax.random.split(key)
        (_, metrics), grads = loss_and_pgrad(params, normalizer_params, data, k_loss)
        updates, opt_state = optimizer.update(grads, opt_state)
        return (opt_state, optax.apply_updates(params, updates), key), metrics

    def sgd_step(carry, _, data, normalizer_params):
        opt_state, params, key = carry
        key, k_perm, k_grad = jax.random.split(key, 3)
        shuffled = jax.tree.map(
            lambda x: jax.random.permutation(k_perm, x).reshape(
                (cfg.num_minibatches, -1) + x.shape[1:]
            ),
            data,
        )
        (opt_state, params, _), metrics = jax.lax.scan(
            functools.partial(minibatch_step, normalizer_params=normalizer_params),
            (opt_state, params, k_grad),
            shuffled,
        )
        return (opt_state, params, key), metrics

    def training_step(carry, _):
        ts, env_state = carry
        key, k_unroll, k_sgd = jax.random.split(ts.key, 3)
        policy = make_policy((ts.normalizer_params, ts.params.policy, ts.params.value))

        def unroll(c, _):
            s, k = c
            k, k_next = jax.random.split(k)
            s, data = acting.generate_unroll(
                wrapped, s, policy, k, cfg.unroll_length,
                extra_fields=("truncation", "episode_metrics", "episode_done"),
            )  # fmt: skip
            return (s, k_next), data

        (env_state, _), data = jax.lax.scan(
            unroll,
            (env_state, k_unroll),
            None,
            length=cfg.batch_size * cfg.num_minibatches // cfg.num_envs,
        )
        # [n_unrolls, T, num_envs, ...] -> [n_unrolls * num_envs, T, ...]
        data = jax.tree.map(lambda x: jnp.swapaxes(x, 1, 2), data)
        data = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), data)
        normalizer = running_statistics.update(ts.normalizer_params, data.observation)
        (opt_state, params, _), loss_metrics = jax.lax.scan(
            functools.partial(sgd_step, data=data, normalizer_params=normalizer),
            (ts.optimizer_state, ts.params, k_sgd),
            None,
            length=cfg.num_updates_per_batch,
        )
        # episode statistics of the episodes that ended in this batch
        done = data.extras["state_extras"]["episode_done"]
        ep = data.extras["state_extras"]["episode_metrics"]
        n_done = jnp.sum(done)
        episode = {
            f"episode/{k}": jnp.sum(v * done) / jnp.maximum(n_done, 1.0) for k, v in ep.items()
        }
        episode["episode/count"] = n_done
        metrics = {f"train/{k}": jnp.mean(v) for k, v in loss_metrics.items()}
        metrics.update(episode)
        ts = TrainingState(opt_state, params, normalizer, ts.training_steps + 1, key)
        return (ts, env_state), metrics

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def epoch(ts, env_state):
        (ts, env_state), metrics = jax.lax.scan(
            training_step, (ts, env_state), None, length=cfg.training_steps_per_epoch
        )
        count = jnp.maximum(metrics["episode/count"], 1e-9)
        out = {k: jnp.mean(v) for k, v in metrics.items() if k.startswith("train/")}
        for k, v in metrics.items():
            if k.startswith("episode/") and k != "episode/count":
                out[k] = jnp.sum(v * count) / jnp.sum(count)  # weight steps by episodes ended
        out["episode/count"] = jnp.sum(metrics["episode/count"])
        return ts, env_state, out

    return init, jax.jit(reset_envs), epoch, make_policy


def params_tuple(ts: TrainingState):
    """brax's inference params layout: (normalizer, policy, value)."""
    return (ts.normalizer_params, ts.params.policy, ts.params.value)
