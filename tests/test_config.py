"""Bad configs fail early with an error that names the field."""

import json

import pytest

from dmpc_jax.config import ConfigError, from_dict, load_json, resolve_run_dir, save_json, to_dict
from dmpc_jax.envs.config import CommandConfig, EnvConfig, PushConfig, RewardConfig
from dmpc_jax.robot.go2 import ModelConfig


def test_round_trip_through_json(tmp_path):
    cfg = EnvConfig(command=CommandConfig(vx=(-1.5, 1.5)), reward=RewardConfig(preset="finetune"))
    save_json(cfg, tmp_path / "c.json")
    assert load_json(EnvConfig, tmp_path / "c.json") == cfg


def test_unknown_field_is_named():
    data = to_dict(EnvConfig())
    data["push"]["magnitud"] = [0.1, 0.2]
    with pytest.raises(ConfigError, match=r"push\.magnitud"):
        from_dict(EnvConfig, data)
    with pytest.raises(ConfigError, match="unknown config field ctrl_dtt"):
        from_dict(EnvConfig, {"ctrl_dtt": 0.02})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"command\.vx"):
        from_dict(EnvConfig, {"command": {"vx": "fast"}})
    with pytest.raises(ConfigError, match="sim_dt: expected a number"):
        from_dict(EnvConfig, {"sim_dt": "0.004"})


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: EnvConfig(ctrl_dt=-0.02), "ctrl_dt"),
        (lambda: EnvConfig(sim_dt=-0.001), "sim_dt"),
        (lambda: EnvConfig(sim_dt=0.003), "sim_dt"),  # 0.02 / 0.003: not a whole number of substeps
        (lambda: CommandConfig(vx=(1.0, -1.0)), "vx is empty"),
        (lambda: PushConfig(interval_s=(3.0, 2.0)), "interval_s"),
        (lambda: EnvConfig(kp=-1.0), "kp"),
        (lambda: EnvConfig(default_pose="crouch"), "default_pose"),
    ],
)
def test_impossible_values_are_rejected(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_impossible_values_from_json_are_rejected(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"sim_dt": 0.003}))
    with pytest.raises(ConfigError, match="sim_dt"):
        load_json(EnvConfig, path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_json(EnvConfig, path)


def test_unknown_reward_term_and_terrain():
    with pytest.raises(ValueError, match="unknown term 'tracking'"):
        RewardConfig(overrides=(("tracking", 1.0),))
    with pytest.raises(ValueError, match="terrain"):
        ModelConfig(terrain="lava")


def test_substeps_derived():
    assert EnvConfig().n_substeps == 5
    assert EnvConfig(sim_dt=0.005).n_substeps == 4
    assert EnvConfig().episode_steps == 1000


def test_run_dir_refuses_to_clobber(tmp_path):
    run = resolve_run_dir(tmp_path, "r", resume=False, overwrite=False)
    (run / "x").write_text("1")
    with pytest.raises(FileExistsError, match="--resume"):
        resolve_run_dir(tmp_path, "r", resume=False, overwrite=False)
    assert resolve_run_dir(tmp_path, "r", resume=True, overwrite=False) == run
    assert (run / "x").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_run_dir(tmp_path, "nope", resume=True, overwrite=False)
