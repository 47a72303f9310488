"""``dmpc dataset``: roll out the PPO demonstrator in vectorised MJX envs and store trajectories.

Commands are resampled every 5 s (vx and wz uniform, vy = 0, METHOD §8), pushes and domain
randomisation stay on, and Gaussian action noise can widen the state coverage. The pair
(o_t, a_t) is the observation and the action applied at it (the authors' collector is off by one
here; we are not). Format: ``dmpc_jax/data/dataset.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from dmpc_jax.data.dataset import create_arrays, finalize
from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.envs.config import CommandConfig, RewardConfig
from dmpc_jax.envs.go2_joystick import PRIVILEGED_SIZE, Go2Joystick
from dmpc_jax.envs.wrappers import wrap_for_training
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR
from dmpc_jax.robot import go2


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """The ``DatasetConfig`` settings, one ``--cfg.<field>`` flag each.

    Attributes:
        demonstrator: the demonstrator run directory (config.json + ckpt/).
        out: the dataset directory to write.
        n_envs: parallel envs (E).
        n_steps: control steps per env (T).
        chunk: steps per jitted call (progress and memory granularity).
        vx: forward command range, m/s.
        wz: yaw-rate command range, rad/s.
        resample_s: command resampling period, s.
        action_noise: std of Gaussian noise added to the demonstrator's actions.
        env_set: overrides of the collection env's config, ``field.path=json``
            (``config.apply_overrides``), applied after the command and reward settings, e.g.
            ``push.mode=set push.magnitude=[0,1] push.interval_s=[8,10] init_attitude=0.2`` for the
            authors' recovery-rich collection.
        seed: PRNG seed.
    """

    demonstrator: str = DEFAULT_DEMONSTRATOR
    out: str = "data/cpu"
    n_envs: int = 128
    n_steps: int = 8000
    chunk: int = 250
    vx: tuple[float, float] = (-1.0, 1.0)
    wz: tuple[float, float] = (-1.0, 1.0)
    resample_s: float = 5.0
    action_noise: float = 0.0
    env_set: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if self.n_steps % self.chunk:
            raise ValueError(
                f"DatasetConfig.n_steps ({self.n_steps}) must be a multiple of chunk ({self.chunk})"
            )
        if self.n_envs < 1 or self.n_steps < 1:
            raise ValueError("DatasetConfig.n_envs and n_steps must be >= 1")
        if self.action_noise < 0:
            raise ValueError(f"DatasetConfig.action_noise must be >= 0, got {self.action_noise}")


def dataset_preset(name: str) -> DatasetConfig:
    if name == "tiny":
        return DatasetConfig(out="data/tiny", n_envs=4, n_steps=60, chunk=30)
    if name == "cpu":
        return DatasetConfig()
    if name == "paper":
        return DatasetConfig(out="data/paper", n_envs=128, n_steps=30_000, chunk=500)
    raise ValueError(f"unknown dataset preset {name!r}; choose tiny, cpu or paper")


def collect(
    cfg: DatasetConfig, *, policy_bundle=None, overwrite: bool = False, progress: bool = True
) -> dict:
    """Collect a dataset into ``cfg.out``; returns its meta.

    Args:
        policy_bundle: (make_policy, params, demonstrator config); loaded from ``cfg.demonstrator``
            when None.
    """
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"dataset {out} exists; pass --overwrite to replace it")
        shutil.rmtree(out)
    if policy_bundle is None:
        from dmpc_jax.rl.train import load_policy

        policy_bundle = load_policy(Path(cfg.demonstrator))
    make_policy, params, demo_cfg = policy_bundle
    env_cfg = dataclasses.replace(
        demo_cfg.env,
        command=CommandConfig(
            vx=cfg.vx, vy=(0.0, 0.0), wz=cfg.wz, resample_s=cfg.resample_s, zero_prob=0.0
        ),
        # r_t is the paper's reward (METHOD §7): the target of R_nn and of finetuning
        reward=RewardConfig(preset="finetune", clip_negative=False),
    )
    if cfg.env_set:
        from dmpc_jax.config import apply_overrides

        env_cfg = apply_overrides(env_cfg, cfg.env_set)
    env = Go2Joystick(env_cfg)
    wrapped = wrap_for_training(env, env_cfg.episode_steps)
    inference = make_policy(params, deterministic=True)
    term_names = sorted(env_cfg.reward.scales)

    @jax.jit
    def run_chunk(state, key):
        def body(s, k):
            k_pol, k_noise = jax.random.split(k)
            action = inference(s.obs, k_pol)[0]
            action = action + cfg.action_noise * jax.random.normal(k_noise, action.shape)
            nxt = wrapped.step(s, action)
            terminated = nxt.done * (1.0 - nxt.info["truncation"])
            row = {
                "obs": s.obs["state"],
                "privileged": s.obs["privileged_state"],
                "command": s.info["command"],
                "action": action,
                "reward": nxt.reward,
                "reward_terms": jnp.stack([nxt.metrics[f"reward/{n}"] for n in term_names], -1),
                "done": nxt.done > 0,
                "terminated": terminated > 0,
            }
            return nxt, row

        state, rows = jax.lax.scan(body, state, jax.random.split(key, cfg.chunk))
        return state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows)  # [E, chunk, ...]

    e, t = cfg.n_envs, cfg.n_steps
    shapes = {
        "obs": (e, t, obs_lib.OBS_SIZE),
        "action": (e, t, go2.NU),
        "reward": (e, t),
        "reward_terms": (e, t, len(term_names)),
        "command": (e, t, 3),
        "privileged": (e, t, PRIVILEGED_SIZE),
        "done": (e, t),
        "terminated": (e, t),
    }
    arrays = create_arrays(out, shapes)
    key = jax.random.PRNGKey(cfg.seed)
    key, k_reset = jax.random.split(key)
    state = jax.jit(wrapped.reset)(jax.random.split(k_reset, e))
    t0 = time.perf_counter()
    compile_s = None
    for i in tqdm(range(t // cfg.chunk), desc="dataset", unit="chunk", disable=not progress):
        key, k = jax.random.split(key)
        tc = time.perf_counter()
        state, rows = run_chunk(state, k)
        rows = jax.device_get(rows)
        if compile_s is None:
            compile_s = time.perf_counter() - tc
        sl = slice(i * cfg.chunk, (i + 1) * cfg.chunk)
        for name, value in rows.items():
            arrays[name][:, sl] = value
    wall = time.perf_counter() - t0
    done = np.asarray(arrays["done"])
    meta = {
        "created_by": "dmpc dataset",
        "config": {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()
        },
        "env": json.loads(json.dumps(dataclasses.asdict(env_cfg))),
        "obs_layout": {k: [s.start, s.stop] for k, s in obs_lib.OBS_SLICES.items()},
        "joint_order": list(go2.JOINT_NAMES),
        "reward_terms": term_names,
        "ctrl_dt": env_cfg.ctrl_dt,
        "transitions": e * t,
        "episodes_ended": int(done.sum()),
        "falls": int(np.asarray(arrays["terminated"]).sum()),
        "collection_s": wall,
        "first_chunk_with_compile_s": compile_s,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {jax.devices()[0].platform}",
    }
    meta = finalize(out, arrays, meta)
    size = sum(f["bytes"] for f in meta["files"].values())
    print(
        f"dataset {out}: {e * t:,} transitions, {size / 2**20:.1f} MiB, {wall:.0f} s "
        f"({meta['episodes_ended']} episode ends, {meta['falls']} falls)"
    )
    return meta
