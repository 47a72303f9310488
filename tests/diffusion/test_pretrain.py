"""Pretraining: resume continues the step count bit-exactly, data parallelism over 2 forced CPU
devices and over 2 processes (jax.distributed) matches one device, and bad inputs fail clearly."""

import dataclasses
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import synthetic_dataset

from dmpc_jax.checkpointing import checkpoint_manager, restore_state
from dmpc_jax.config import ConfigError
from dmpc_jax.data.dataset import DatasetError
from dmpc_jax.diffusion.config import pretrain_preset
from dmpc_jax.diffusion.train import pretrain


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pre") / "data"
    synthetic_dataset(path, E=4, T=40, done_at=((0, 17), (2, 30)), encode=False)
    return path


@pytest.fixture(scope="module")
def tiny_run(data_dir, tmp_path_factory):
    cfg = dataclasses.replace(pretrain_preset("tiny"), dataset=str(data_dir))
    run = tmp_path_factory.mktemp("pre") / "run"
    pretrain(cfg, run, max_calls=2, progress=False)  # steps 2 and 4 checkpointed
    nets, state = pretrain(cfg, run, resume=True, progress=False)  # continues to 6
    return cfg, run, state


def test_resume_continues_step_count_and_log(tiny_run):
    cfg, run, state = tiny_run
    assert int(state["step"]) == cfg.num_steps == 6
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in log] == [2, 4, 6]
    assert all(np.isfinite(m["loss/denoiser"]) and np.isfinite(m["eval/value"]) for m in log)


def test_checkpoint_restore_is_bit_exact(tiny_run):
    _, run, state = tiny_run
    restored = restore_state(checkpoint_manager(run), state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_resume_with_another_config_is_a_clear_error(tiny_run):
    cfg, run, _ = tiny_run
    other = dataclasses.replace(cfg, learning_rate=1.0)
    with pytest.raises(ConfigError, match="learning_rate"):
        pretrain(other, run, resume=True, progress=False)


def test_resume_may_extend_and_anneal_a_run(tiny_run, tmp_path):
    import shutil

    cfg, run, _ = tiny_run
    ext = tmp_path / "run"
    shutil.copytree(run, ext)
    longer = dataclasses.replace(cfg, num_steps=10, lr_decay_from=6)
    _, state = pretrain(longer, ext, resume=True, progress=False)
    assert int(state["step"]) == 10
    log = [json.loads(x) for x in (ext / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in log] == [2, 4, 6, 8, 10]
    lr = [m["train/lr"] for m in log]
    assert lr[:3] == [pytest.approx(cfg.learning_rate)] * 3  # before the decay
    assert cfg.learning_rate > lr[3] > lr[4] >= 0  # the cosine tail
    assert json.loads((ext / "config.1.json").read_text())["num_steps"] == 6  # old config kept
    assert json.loads((ext / "config.json").read_text())["lr_decay_from"] == 6


def test_resume_cannot_shorten_a_run(tiny_run, tmp_path):
    import shutil

    cfg, run, _ = tiny_run
    short = tmp_path / "run"
    shutil.copytree(run, short)
    before = (short / "config.json").read_text()
    with pytest.raises(ValueError, match="cannot shorten"):
        pretrain(dataclasses.replace(cfg, num_steps=2), short, resume=True, progress=False)
    assert (short / "config.json").read_text() == before  # nothing rewritten


def test_lr_factor_is_a_cosine_tail():
    from dmpc_jax.diffusion.config import lr_factor

    cfg = dataclasses.replace(pretrain_preset("tiny"), num_steps=100, lr_decay_from=60)
    f = [float(lr_factor(cfg, s)) for s in (0, 59, 60, 80, 100)]
    assert f == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0], abs=1e-6)
    assert float(lr_factor(pretrain_preset("tiny"), 10**6)) == 1.0  # None: constant


def test_wrong_dataset_schema_is_a_clear_error(data_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(data_dir, bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["schema_version"] = 99
    (bad / "meta.json").write_text(json.dumps(meta))
    cfg = dataclasses.replace(pretrain_preset("tiny"), dataset=str(bad))
    with pytest.raises(DatasetError, match="schema_version 99"):
        pretrain(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # nothing written for a bad dataset


SCRIPT = """
import dataclasses, json, sys, jax
from dmpc_jax.diffusion.config import pretrain_preset
from dmpc_jax.diffusion.train import pretrain
cfg = dataclasses.replace(pretrain_preset("tiny"), dataset=sys.argv[1])
pretrain(cfg, sys.argv[2], max_calls=2, progress=False)
pretrain(cfg, sys.argv[2], resume=True, progress=False)
print(json.dumps({"devices": jax.device_count()}))
"""

LOGGED = ("loss/denoiser", "loss/value", "eval/a0_mse")


def losses(run) -> np.ndarray:
    """[call, (step, loss/denoiser, loss/value, eval/a0_mse)] of a run's metrics.jsonl."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return np.array([[m["step"], *(m[k] for k in LOGGED)] for m in lines])


@pytest.fixture(scope="module")
def two_device_run(data_dir, tmp_path_factory):
    """tiny_run's schedule (2 calls, then a resume to step 6) on 2 forced CPU devices."""
    run = tmp_path_factory.mktemp("pre2") / "run"
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        # the tests' XLA flags (conftest) kept: its losses are compared with this process's
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2",
    }
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data_dir), str(run)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert json.loads(res.stdout.strip().splitlines()[-1])["devices"] == 2
    return run


def test_data_parallel_over_two_devices_matches_one(tiny_run, two_device_run):
    # the same config, data, seed and resume point as tiny_run (one device, this process)
    _, run, _ = tiny_run
    assert jax.device_count() == 1
    one, two = losses(run), losses(two_device_run)
    np.testing.assert_array_equal(two[:, 0], [2, 4, 6])
    np.testing.assert_allclose(two, one, rtol=1e-5)  # all-reduce order: ~1e-7 seen


@pytest.mark.slow
def test_two_processes_match_two_devices_and_resume_across_a_restart(
    data_dir, tiny_run, two_device_run, tmp_path
):
    """2 processes x 1 CPU device under jax.distributed (gloo), started by `dmpc launch`: the
    same program as 1 process x 2 devices; killed after step 4 (a fresh pair of processes
    resumes from the orbax checkpoint both wrote), the log continues as tiny_run's does."""
    args = ["--preset", "tiny", "--dataset", str(data_dir), "--root", str(tmp_path), "--run", "mp"]
    # the tests' XLA flags kept (launch replaces only the device count): compared with two_device_run
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    for extra in (["--max-calls", "2"], ["--resume"]):
        subprocess.run(
            [sys.executable, "-m", "dmpc_jax.cli", "launch", "--nproc", "2", "--", "pretrain",
             *args, *extra],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
    mp = losses(tmp_path / "mp")
    np.testing.assert_array_equal(mp[:, 0], [2, 4, 6])
    np.testing.assert_allclose(mp, losses(two_device_run), rtol=1e-6)  # bitwise seen
    np.testing.assert_allclose(mp, losses(tiny_run[1]), rtol=1e-5)
    # one config, one log line per call, one checkpoint series: written once, not per process
    assert sorted(p.name for p in (tmp_path / "mp" / "ckpt").iterdir()) == ["4", "6"]
    assert json.loads((tmp_path / "mp" / "config.json").read_text())["num_steps"] == 6


@pytest.mark.slow
def test_launch_stops_the_group_when_a_process_fails(data_dir, tmp_path):
    """Process 0 refuses an existing run directory (no --resume/--overwrite) while process 1
    waits for it at the barrier: the launch fails with the first failing process's status and
    stops the other instead of leaving it waiting."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("a run that is not ours\n")
    res = subprocess.run(
        [sys.executable, "-m", "dmpc_jax.cli", "launch", "--nproc", "2", "--", "pretrain",
         "--preset", "tiny", "--dataset", str(data_dir), "--root", str(tmp_path), "--run", "taken"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode != 0
    assert "FileExistsError" in res.stderr
    # process 0 fails; process 1, at the barrier, may see its peer gone and fail first: either
    # way the launch reports the first failure and stops the rest
    assert re.search(r"dmpc launch: process [01] exited with 1; stopped the other 1", res.stderr)
    assert (tmp_path / "taken" / "keep.txt").exists()  # nothing lost


def test_distributed_env_errors_name_the_missing_variable(monkeypatch):
    from dmpc_jax import distributed as dist

    monkeypatch.setenv(dist.ENV_NUM_PROCESSES, "2")
    monkeypatch.delenv(dist.ENV_PROCESS_ID, raising=False)
    with pytest.raises(dist.DistributedError, match=dist.ENV_PROCESS_ID):
        dist.initialize()
    monkeypatch.setenv(dist.ENV_PROCESS_ID, "0")
    monkeypatch.delenv(dist.ENV_COORDINATOR, raising=False)
    with pytest.raises(dist.DistributedError, match=dist.ENV_COORDINATOR):
        dist.initialize()


def test_launcher_gives_each_process_its_rank_and_devices():
    from dmpc_jax import distributed as dist
    from dmpc_jax.launch import process_env

    base = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_dump_to=/tmp/x"}
    env = process_env(1, 2, 1234, 1, gpu=False, base=base)
    assert env[dist.ENV_PROCESS_ID] == "1" and env[dist.ENV_NUM_PROCESSES] == "2"
    assert env[dist.ENV_COORDINATOR] == "127.0.0.1:1234"
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=1"
    gpu = process_env(1, 2, 1234, 2, gpu=True, base={})
    assert gpu["JAX_LOCAL_DEVICE_IDS"] == "2,3" and "JAX_PLATFORMS" not in gpu


def test_model_quality_evaluation_runs_on_held_out_windows(tiny_run, tmp_path):
    from dmpc_jax.evaluate.model_quality import DiffusionEvalConfig, evaluate_planner

    _, run, _ = tiny_run
    cfg = DiffusionEvalConfig(run_dir=str(run), windows=6, batch=3, out_dir=str(tmp_path / "exp"))
    result = evaluate_planner(cfg)
    assert result["windows"] == 6 and result["held_out_envs"] == 1
    for k in ("first_action_rmse", "one_step_joint_pos_rmse_rad", "one_step_joint_vel_rmse_rad_s"):
        assert np.isfinite(result[k]) and result[k] > 0
    assert "first-action RMSE" in (tmp_path / "exp" / "README.md").read_text()


def test_planner_checkpoint_errors_name_the_problem(tiny_run, tmp_path):
    """The shippable planner/ checkpoint: missing, truncated, or from another config."""
    import shutil

    from dmpc_jax.diffusion.artifact import load_planner_checkpoint

    _, run, state = tiny_run
    nets, ema, _, _ = load_planner_checkpoint(run)  # planner/ (EMA only) is what loads
    for a, b in zip(jax.tree.leaves(ema), jax.tree.leaves(state["ema"]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    missing = tmp_path / "missing"
    shutil.copytree(run, missing)
    shutil.rmtree(missing / "planner")
    shutil.rmtree(missing / "ckpt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_planner_checkpoint(missing)

    truncated = tmp_path / "truncated"
    shutil.copytree(run, truncated)
    files = [p for p in (truncated / "planner").rglob("*") if p.is_file() and p.stat().st_size > 64]
    biggest = max(files, key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])
    with pytest.raises(RuntimeError, match="could not be restored"):
        load_planner_checkpoint(truncated)

    other = tmp_path / "other"
    shutil.copytree(run, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model"]["unet"]["dim"] = 16
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match="another config"):
        load_planner_checkpoint(other)


def test_resume_of_a_shipped_run_without_training_state_refuses(tiny_run, tmp_path):
    """A shipped run has planner/ but no ckpt/: resuming must not silently restart from step 0
    (which would also truncate its metrics)."""
    import shutil

    cfg, run, _ = tiny_run
    shipped = tmp_path / "shipped"
    shutil.copytree(run, shipped)
    shutil.rmtree(shipped / "ckpt")
    before = (shipped / "metrics.jsonl").read_text()
    with pytest.raises(FileNotFoundError, match="no training state"):
        pretrain(cfg, shipped, resume=True, progress=False)
    assert (shipped / "metrics.jsonl").read_text() == before


def test_robot_constants_travel_with_the_run_not_the_dataset(tiny_run, tmp_path):
    """Pretraining writes robot.json, so a shipped run loads without its (git-ignored) dataset;
    a run with neither robot.json nor its dataset's meta.json is a clear error, not a default."""
    import shutil

    from dmpc_jax.diffusion.artifact import robot_constants

    _, run, _ = tiny_run
    written = json.loads((run / "robot.json").read_text())
    assert (
        set(written) == {"q_default", "kp", "kd", "action_scale"}
        and len(written["q_default"]) == 12
    )

    moved = tmp_path / "moved"  # the dataset gone, robot.json kept: loads
    shutil.copytree(run, moved)
    cfg = json.loads((moved / "config.json").read_text())
    cfg["dataset"] = str(tmp_path / "no_such_dataset")
    (moved / "config.json").write_text(json.dumps(cfg))
    robot = robot_constants(moved)
    np.testing.assert_array_equal(robot["q_default"], np.asarray(written["q_default"], np.float32))

    (moved / "robot.json").unlink()  # neither: an error that says what is missing
    with pytest.raises(FileNotFoundError, match="no robot.json"):
        robot_constants(moved)
