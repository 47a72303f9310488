"""Task specs: units of bounds, per-leg/joint selection, horizon-varying rows, file and CLI
overrides, and the evaluation's metric and verdict logic on hand-made traces."""

import json

import numpy as np
import pytest

from dmpc_jax.config import ConfigError, apply_overrides, load_json, save_json
from dmpc_jax.planner import constraints as C
from dmpc_jax.planner.rewards import REWARD_NAMES
from dmpc_jax.planner.task import (
    BoxSpec,
    RateSpec,
    RewardWeights,
    TaskSpec,
    build_constraints,
    task_params,
)
from dmpc_jax.robot import go2

Q0 = go2.paper_default_pose().astype(np.float32)


def _build(spec, h=8):
    return build_constraints(spec, h, q_default=Q0, action_scale=0.5)


def test_weights_follow_reward_names():
    names = [f for f in RewardWeights.__dataclass_fields__]
    assert tuple(names) == REWARD_NAMES
    w = task_params(TaskSpec(weights=RewardWeights(energy=2.0))).weights
    assert float(w[REWARD_NAMES.index("energy")]) == 2.0 and float(w[0]) == 1.0


def test_q_target_box_becomes_action_bounds_on_selected_joints():
    # hip targets of the left legs in [0.0, 0.2] rad: action = (q - q0) / 0.5 with q0 = 0.1
    c = _build(
        TaskSpec(boxes=(BoxSpec("q_target", lo=0.0, hi=0.2, legs=("FL", "RL"), joints=("hip",)),))
    )
    act = C.row_slice("action")
    lo, hi = np.asarray(c.lower)[:, act], np.asarray(c.upper)[:, act]
    fl_hip, rl_hip = go2.JOINT_NAMES.index("FL_hip_joint"), go2.JOINT_NAMES.index("RL_hip_joint")
    np.testing.assert_allclose(lo[:, fl_hip], (0.0 - 0.1) / 0.5, atol=1e-6)
    np.testing.assert_allclose(hi[:, rl_hip], (0.2 - 0.1) / 0.5, atol=1e-6)
    others = np.ones(12, bool)
    others[[fl_hip, rl_hip]] = False
    assert np.isinf(lo[:, others]).all() and np.isinf(hi[:, others]).all()
    assert np.isinf(np.asarray(c.lower)[:, 12:]).all()  # states untouched


def test_q_qdot_units_rows_and_rates():
    spec = TaskSpec(
        boxes=(
            BoxSpec("qdot", lo=-1.0, hi=1.0, rows=(2, 5)),
            BoxSpec("q", hi=-1.2, joints=("calf",)),
        ),
        rates=(RateSpec("q_target", 0.1, joints=("thigh",)),),
    )
    c = _build(spec)
    vel, pos = C.row_slice("joint_vel"), C.row_slice("joint_pos")
    up = np.asarray(c.upper)
    np.testing.assert_allclose(up[2:5, vel], 0.05)  # 1 rad/s x the 0.05 observation scale
    assert np.isinf(up[:2, vel]).all() and np.isinf(up[5:, vel]).all()
    calf = [i for i, n in enumerate(go2.JOINT_NAMES) if "calf" in n]
    np.testing.assert_allclose(up[:, pos][:, calf], np.broadcast_to(-1.2 - Q0[calf], (8, 4)))
    thigh = [i for i, n in enumerate(go2.JOINT_NAMES) if "thigh" in n]
    rate = np.asarray(c.rate)
    np.testing.assert_allclose(rate[thigh], 0.2)  # 0.1 rad of target = 0.2 action units
    assert np.isinf(np.delete(rate, thigh)).all()


def test_bad_specs_name_the_problem():
    with pytest.raises(ConfigError, match="unknown leg"):
        BoxSpec("q", hi=1.0, legs=("XX",))
    with pytest.raises(ConfigError, match="lo 1.0 > hi"):
        BoxSpec("q", lo=1.0, hi=0.0)
    with pytest.raises(ConfigError, match="exceed the plan horizon"):
        _build(TaskSpec(boxes=(BoxSpec("q", hi=1.0, rows=(0, 30)),)))
    with pytest.raises(ConfigError, match="empty"):
        _build(TaskSpec(boxes=(BoxSpec("q", hi=0.0), BoxSpec("q", lo=0.5))))


def test_task_file_and_overrides(tmp_path):
    spec = TaskSpec(name="mine", boxes=(BoxSpec("qdot", lo=-2.0, hi=2.0),))
    save_json(spec, tmp_path / "t.json")
    assert load_json(TaskSpec, tmp_path / "t.json") == spec
    s = apply_overrides(
        spec, ["weights.energy=0.05", "guidance_scale=0.3", 'boxes=[{"field": "q", "hi": 1.0}]']
    )
    assert s.weights.energy == 0.05 and s.guidance_scale == 0.3
    assert s.boxes == (BoxSpec("q", hi=1.0),)
    with pytest.raises(ConfigError, match="unknown field 'weights.power'"):
        apply_overrides(spec, ["weights.power=1"])
    with pytest.raises(ConfigError, match="expected a number"):
        apply_overrides(spec, ["guidance_scale=high"])
    bad = json.loads((tmp_path / "t.json").read_text())
    bad["boxes"][0]["feild"] = "q"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="feild"):
        load_json(TaskSpec, tmp_path / "bad.json")


def test_suite_tasks_build():
    from dmpc_jax.scenario.tasks import TASKS

    for name, t in TASKS.items():
        assert t.spec.name == name
        _build(t.spec, 24)


def test_task_metrics_and_verdict_on_hand_made_traces():
    from dmpc_jax.evaluate.planner_eval import task_metrics, verdict
    from dmpc_jax.scenario.tasks import TASKS

    T, B = 5, 2
    qpos = np.zeros((T, B, 19), np.float32)
    qpos[..., 2] = 0.3
    qpos[..., 7:] = Q0
    qvel = np.zeros((T, B, 18), np.float32)
    qvel[:, :, 6] = np.arange(T)[:, None] * 0.02  # 1 rad/s^2 at dt 0.02 on one joint of 12
    action = np.zeros((T, B, 12), np.float32)
    action[1, 0, 0] = 1.0  # hip target 0.1 + 0.5 = 0.6: outside the narrow band
    done = np.zeros((T, B), bool)
    done[3:, 1] = True  # env 1 falls at step 3
    spec = TASKS["narrow_range"].spec
    cons = _build(spec, 24)
    m = task_metrics(
        {"qpos": qpos, "qvel": qvel, "action": action, "done_any": done,
         "state/mech_power": np.full((T, B), 100.0), "state/forward_vel": np.full((T, B), 10.0)},
        spec, cons, {"q_default": Q0}, 0.02,
    )  # fmt: skip
    assert m["constraint_violations"] == 1
    assert m["energy_J_per_m"] == pytest.approx(10.0)  # 100 W at 10 m/s
    assert m["base_height_m"] == pytest.approx(0.3)
    assert m["joint_acc_rms"] == pytest.approx(np.sqrt(1 / 12), rel=1e-5)
    v = verdict(TASKS["narrow_range"], {"task": {"success_rate": 1.0, **m}})
    assert v["moved"] is False  # one violation fails a hard bound
    low = TASKS["height_low"]
    ok = verdict(low, {"task": {"success_rate": 0.95, "base_height_m": 0.25},
                       "nominal": {"success_rate": 1.0, "base_height_m": 0.29}})  # fmt: skip
    assert ok["moved"] and ok["success_ok"]
    short = verdict(low, {"task": {"success_rate": 0.95, "base_height_m": 0.27},
                          "nominal": {"success_rate": 1.0, "base_height_m": 0.29}})  # fmt: skip
    assert not short["moved"]


def test_sweep_variant_parsing():
    from dmpc_jax.evaluate.sweep import Variant

    assert Variant.parse("20/4") == Variant(20, 4, 0, 1)
    assert Variant.parse("11/4/5/4") == Variant(11, 4, 5, 4)
    assert Variant.parse("11/4/5/4").label == "E=11 D=4 warm=5 N=4"
    for bad in ("20", "a/4", "1/2/3/4/5"):
        with pytest.raises(ValueError, match="E/D"):
            Variant.parse(bad)


def test_eval_page_command_reproduces_the_config():
    """The command on an eval page parses (with the CLI's parser) back to the same config."""
    import shlex

    import tyro

    from dmpc_jax.evaluate.planner_eval import EvalConfig

    cfg = EvalConfig(task="smooth", analytic_on_x0=False, controllers=("task",), execute=20,
                     out_dir="experiments/tasks/x_k/smooth", set=("weights.energy=0.1",))  # fmt: skip
    cmd = cfg.command_line()
    assert "--cfg.no-analytic-on-x0" in cmd and "--cfg.margin" not in cmd
    args = shlex.split(cmd)
    assert args[:2] == ["dmpc", "eval"]

    def parse(cfg: EvalConfig = EvalConfig()) -> EvalConfig:
        return cfg

    assert tyro.cli(parse, args=args[2:]) == cfg


def test_default_suite_names_known_tasks():
    from dmpc_jax.scenario.tasks import SUITE, TASKS

    assert SUITE and set(SUITE) <= set(TASKS) and len(set(SUITE)) == len(SUITE)


def test_overrides_apply_to_the_env_config_too():
    from dmpc_jax.envs.config import EnvConfig

    cfg = apply_overrides(EnvConfig(), ["noise.delay_last_action=false", "push.enabled=false"])
    assert cfg.noise.delay_last_action is False and cfg.push.enabled is False
    assert cfg.noise.enabled and cfg.randomization.enabled  # the rest untouched
    with pytest.raises(ConfigError, match="unknown field"):
        apply_overrides(EnvConfig(), ["noise.delay=false"])
