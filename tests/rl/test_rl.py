"""The resumable PPO demonstrator loop: a killed run continues with its step count, optimizer
state and normaliser intact, and its metrics log shows no reset."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from dmpc_jax.checkpointing import checkpoint_manager, restore_state
from dmpc_jax.config import ConfigError, save_json
from dmpc_jax.rl.ppo import PPOConfig, demonstrator_preset
from dmpc_jax.rl.train import normalizer_count, train


def _adam_count(ts) -> int:
    counts = [
        int(np.asarray(s.count))
        for s in jax.tree.leaves(
            ts.optimizer_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState)
        )
        if isinstance(s, optax.ScaleByAdamState)
    ]
    assert len(counts) == 1
    return counts[0]


def _endless_tiny():
    """The tiny preset with a step budget it will not reach: the process only ends when killed."""
    cfg = demonstrator_preset("tiny")
    return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_timesteps=10**9))


def _kill_after_checkpoint(root: Path, cfg, epoch: int) -> None:
    """Run `dmpc demonstrator --config` in a subprocess and SIGKILL it once a checkpoint at or
    past `epoch` is on disk (it checkpoints every epoch and keeps the newest two)."""
    save_json(cfg, root / "cfg.json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dmpc_jax.cli", "demonstrator", "--config", str(root / "cfg.json"),
         "--run", "tiny", "--root", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    ckpt = root / "tiny" / "ckpt"

    def saved() -> int:
        steps = [int(p.name) for p in ckpt.glob("*") if p.name.isdigit()] if ckpt.exists() else []
        return max(steps, default=0)

    try:
        while saved() < epoch:
            try:
                proc.wait(timeout=0.05)
                pytest.fail("the training process ended before it could be killed")
            except subprocess.TimeoutExpired:
                pass
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """A tiny run killed with SIGKILL after its second checkpoint, then resumed for 2 epochs
    in this process (one subprocess compile and one in-process compile for the whole module)."""
    root = tmp_path_factory.mktemp("rl")
    cfg = _endless_tiny()
    _kill_after_checkpoint(root, cfg, epoch=2)
    run = root / "tiny"
    latest = checkpoint_manager(run).latest_step()
    before = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    _, _, ts = train(cfg, run, resume=True, max_epochs=2, progress=False)
    return cfg, run, latest, before, ts


def test_killed_run_resumes_without_reset(resumed_run):
    cfg, run, latest, lines_before, ts = resumed_run
    assert latest is not None and latest >= 2
    # the CLI run wrote its command (the in-process resume was given none)
    assert (run / "commands.txt").read_text().splitlines() == [
        f"dmpc demonstrator --config {run.parent / 'cfg.json'} --run tiny --root {run.parent}"
    ]
    assert lines_before and lines_before[-1]["epoch"] >= latest
    p = cfg.ppo
    steps = latest + 2  # one training step per epoch in the tiny preset
    assert int(ts.training_steps) == steps
    # Adam's step counter and the normaliser's sample count continue from the checkpoint
    assert _adam_count(ts) == steps * p.num_updates_per_batch * p.num_minibatches
    assert normalizer_count(ts) == steps * p.env_steps_per_training_step
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in log] == list(range(1, latest + 3))
    env_steps = [m["env_steps"] for m in log]
    assert env_steps == sorted(env_steps) and len(set(env_steps)) == len(env_steps)
    walls = [m["time/wall_s"] for m in log]
    assert walls == sorted(walls)
    # brax's PPO losses (its ppo_losses, networks and acting, as rl/ppo.py assembles them) train
    # on our env with the pinned jax: every logged loss finite in the killed and resumed parts
    losses = [(k, v) for m in log for k, v in m.items() if "loss" in k]
    assert {"train/policy_loss", "train/v_loss"} <= {k for k, _ in losses}
    assert all(np.isfinite(v) for _, v in losses)


def test_checkpoint_round_trip_is_bit_exact_and_guards_config(resumed_run):
    cfg, run, _, _, ts = resumed_run
    restored = restore_state(checkpoint_manager(run), ts)  # the checkpoint written at the end
    for a, b in zip(jax.tree.leaves(ts), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, run, max_epochs=1, progress=False)
    other = dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, learning_rate=1.0))
    with pytest.raises(ConfigError, match="ppo"):
        train(other, run, resume=True, max_epochs=1, progress=False)


def test_a_run_started_from_another_continues_its_training_state(resumed_run, tmp_path):
    """``init_from``: a new run under another randomisation (the joint damping widened) starts
    from the source run's newest state: its step count, normaliser and Adam moments go on."""
    cfg, run, _, _, ts = resumed_run
    env = dataclasses.replace(cfg.env, randomization=dataclasses.replace(
        cfg.env.randomization, joint_damping_scale=(0.05, 1.2)))  # fmt: skip
    child = dataclasses.replace(
        cfg, env=env, init_from=str(run),
        ppo=dataclasses.replace(cfg.ppo, num_timesteps=cfg.ppo.env_steps_per_epoch),
    )  # fmt: skip
    _, _, got = train(child, tmp_path / "child", progress=False)
    p = cfg.ppo
    steps = int(ts.training_steps) + p.training_steps_per_epoch
    assert int(got.training_steps) == steps
    assert _adam_count(got) == steps * p.num_updates_per_batch * p.num_minibatches
    assert normalizer_count(got) == steps * p.env_steps_per_training_step
    log = [json.loads(x) for x in (tmp_path / "child" / "metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["env_steps"]) for m in log] == [
        (1, steps * p.env_steps_per_training_step)
    ]
    with pytest.raises(FileNotFoundError, match="init_from"):
        train(dataclasses.replace(child, init_from=str(tmp_path / "nope")), tmp_path / "c2")


def test_truncated_checkpoint_is_a_clear_error(resumed_run, tmp_path):
    _, run, _, _, ts = resumed_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    step = checkpoint_manager(copy).latest_step()
    files = [
        f for f in (copy / "ckpt" / str(step)).rglob("*") if f.is_file() and f.stat().st_size > 0
    ]
    assert files
    for f in files:  # truncate every file of the checkpoint to half its size
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(RuntimeError, match="could not be restored"):
        restore_state(checkpoint_manager(copy), ts, step)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        restore_state(checkpoint_manager(tmp_path / "empty"), ts)


def test_ppo_config_rejects_bad_batching():
    with pytest.raises(ValueError, match="multiple of num_envs"):
        PPOConfig(num_envs=3, batch_size=4, num_minibatches=1)
