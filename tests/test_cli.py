"""The dmpc command line: one sub-command per stage, unknown flags rejected, training stages
configured by a preset (or a JSON file) plus any ``--cfg.*`` override."""

import pytest

from dmpc_jax.cli import SUBCOMMANDS, main


def test_subcommands_listed():
    assert {"demo", "bench-env", "demonstrator", "eval-policy", "dataset", "pretrain"} <= set(
        SUBCOMMANDS
    )


def test_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench-env", "--cfg.batchez", "4"])
    assert e.value.code != 0


def test_unknown_preset_is_rejected():
    with pytest.raises(SystemExit) as e:
        main(["demonstrator", "--preset", "huge"])
    assert e.value.code != 0


def test_cfg_overrides_apply_on_top_of_the_preset(monkeypatch):
    """``dmpc dataset --preset tiny --cfg.n-envs 8`` is the tiny preset with 8 envs (the preset
    used to drop every --cfg override)."""
    import dataclasses

    import dmpc_jax.data.collect as collect_mod

    seen = {}
    monkeypatch.setattr(collect_mod, "collect", lambda cfg, **kw: seen.update(cfg=cfg))
    main(["dataset", "--preset", "tiny", "--cfg.n-envs", "8", "--cfg.seed", "3"])
    want = dataclasses.replace(collect_mod.dataset_preset("tiny"), n_envs=8, seed=3)
    assert seen["cfg"] == want
    main(["dataset", "--cfg.n-envs", "8"])  # no preset: the default one (cpu)
    assert seen["cfg"] == dataclasses.replace(collect_mod.dataset_preset("cpu"), n_envs=8)


def test_config_file_sets_the_defaults_and_shorthands_still_apply(monkeypatch, tmp_path):
    import dataclasses

    import dmpc_jax.diffusion.train as train_mod
    from dmpc_jax.config import save_json
    from dmpc_jax.diffusion.config import pretrain_preset

    seen = {}
    monkeypatch.setattr(train_mod, "pretrain", lambda cfg, run, **kw: seen.update(cfg=cfg, run=run))
    base = dataclasses.replace(pretrain_preset("tiny"), learning_rate=5e-4)
    save_json(base, tmp_path / "c.json")
    main(["pretrain", "--config", str(tmp_path / "c.json"), "--cfg.grad-clip", "0.5",
          "--num-steps", "8", "--root", str(tmp_path), "--run", "r"])  # fmt: skip
    assert seen["cfg"] == dataclasses.replace(base, grad_clip=0.5, num_steps=8)
    assert seen["run"] == tmp_path / "r"
    with pytest.raises(SystemExit, match="does not exist"):
        main(["pretrain", "--config", str(tmp_path / "missing.json")])


def test_robot_path_tasks_resolve_from_names_and_files(tmp_path):
    """``dmpc sim2sim`` / ``dmpc deploy`` take a task and a switch by suite name or TaskSpec file."""
    from dmpc_jax.cli import resolve_task
    from dmpc_jax.config import save_json
    from dmpc_jax.deploy.robot import DeployConfig
    from dmpc_jax.deploy.sim2sim import Sim2SimConfig
    from dmpc_jax.scenario.tasks import get_task

    for cls in (Sim2SimConfig, DeployConfig):
        c = cls(task="energy", switch_to="height_low", switch_at=5.0)
        assert (c.task, c.switch_to, c.switch_at) == ("energy", "height_low", 5.0)
    from dmpc_jax.cli import robot_task_specs

    assert resolve_task("") is None
    assert robot_task_specs(Sim2SimConfig()) == ()
    assert robot_task_specs(Sim2SimConfig(task="energy")) == (get_task("energy").spec,)
    assert robot_task_specs(DeployConfig(switch_to="energy")) == (None, get_task("energy").spec)
    assert resolve_task("energy") == get_task("energy").spec
    spec = get_task("height_low").spec
    save_json(spec, tmp_path / "t.json")
    assert resolve_task(str(tmp_path / "t.json")) == spec


def test_eval_sweep_writes_where_cfg_out_dir_says(monkeypatch):
    """``dmpc eval-sweep --cfg.out-dir D`` writes into D (it used to write experiments/mpc_sweep
    whatever --cfg.out-dir said); --out and --cfg.out-dir that disagree are an error."""
    from pathlib import Path

    from dmpc_jax.cli.evaluate import eval_sweep
    from dmpc_jax.evaluate import sweep
    from dmpc_jax.evaluate.planner_eval import EvalConfig

    seen = []
    monkeypatch.setattr(
        sweep, "run_sweep", lambda cfg, variants, demonstrator, out: seen.append(out)
    )
    eval_sweep(EvalConfig(out_dir="here"), variants=("11/4",))
    eval_sweep(EvalConfig(), variants=("11/4",))
    assert seen == [Path("here"), Path("experiments/mpc_sweep")]
    with pytest.raises(ValueError, match="disagree"):
        eval_sweep(EvalConfig(out_dir="here"), variants=("11/4",), out="there")


@pytest.mark.slow  # starts processes
def test_dmpc_starts_without_the_optional_warp_backend_message():
    # mujoco.mjx prints "Failed to import warp" when its optional GPU backend is absent
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "dmpc_jax.cli", "--help"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert "finetune" in out.stdout
    assert "warp" not in out.stdout + out.stderr


@pytest.mark.slow  # starts processes
def test_cfg_flags_carry_their_field_docs_in_help():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "dmpc_jax.cli", "finetune", "--help"],
                         capture_output=True, text=True, check=True, env={"COLUMNS": "200"})  # fmt: skip
    assert "parallel envs of the planner rollouts" in out.stdout  # --cfg.n-envs
    assert "softmax temperature of the weights" in out.stdout  # --cfg.temperature


def test_dataset_concat_puts_two_datasets_side_by_side(tmp_path, capsys):
    from helpers import synthetic_dataset

    from dmpc_jax.data.dataset import load_dataset

    a, b = synthetic_dataset(tmp_path / "a", E=2), synthetic_dataset(tmp_path / "b", E=3)
    main(["dataset-concat", "--out", str(tmp_path / "c"), "--sources", str(a), str(b)])
    assert load_dataset(tmp_path / "c").n_envs == 5
    assert "5 envs x 20 steps from 2 datasets" in capsys.readouterr().out
