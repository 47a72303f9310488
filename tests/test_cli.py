"""The dmpc command line: one sub-command per stage, unknown flags rejected."""

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
