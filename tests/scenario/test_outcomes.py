"""Episode outcomes on hand-made traces: Wilson intervals, the three success rules, fall records and
hard-bound verdicts that fail when a plan breaks a bound."""

import numpy as np
import pytest

from dmpc_jax.evaluate.planner_eval import verdict
from dmpc_jax.planner.task import BoxSpec, TaskSpec, build_constraints
from dmpc_jax.report.markdown import format_falls, format_rate
from dmpc_jax.robot import go2
from dmpc_jax.scenario import outcomes
from dmpc_jax.scenario.tasks import TASKS

Q0 = go2.paper_default_pose().astype(np.float32)
CAUSES = ("roll", "pitch", "upside_down", "base_contact", "knee_contact", "nonfinite")


def test_wilson_interval_hand_worked():
    # p = 0.5, n = 100: centre 0.5, half-width 1.96 sqrt(0.0025 + 1.96^2 / 40000) / 1.0384
    # = 0.0962 -> [0.4038, 0.5962]
    np.testing.assert_allclose(outcomes.wilson_interval(50, 100), (0.4038, 0.5962), atol=1e-4)
    # all or nothing: not degenerate; 64/64 -> lower bound 64 / (64 + 1.96^2) = 0.9434
    np.testing.assert_allclose(outcomes.wilson_interval(64, 64), (0.9434, 1.0), atol=1e-4)
    np.testing.assert_allclose(outcomes.wilson_interval(0, 64), (0.0, 0.0566), atol=1e-4)
    lo, hi = outcomes.wilson_interval(192, 384)  # the default episode count: +-5.0 at worst
    assert hi - lo < 0.100
    with pytest.raises(ValueError, match="successes"):
        outcomes.wilson_interval(5, 4)
    assert format_rate(outcomes.rate(np.array([1, 1, 0, 0], bool))).startswith("50.0% [")


def _trace(T=10, B=3):
    done = np.zeros((T, B), bool)
    done[4:, 1] = True  # env 1 fails at step 4
    done[8:, 2] = True  # env 2 fails at step 8, after leaving the box at step 6
    qpos = np.zeros((T, B, 19), np.float32)
    qpos[6:, 2, 0] = 3.5
    tr = {"done_any": done, "qpos": qpos,
          "state/roll": np.zeros((T, B)), "state/pitch": np.full((T, B), 0.3)}  # fmt: skip
    for c in CAUSES:
        tr[f"fall/{c}"] = np.zeros((T, B))
    tr["fall/knee_contact"][4, 1] = 1.0
    tr["fall/pitch"][8, 2] = tr["fall/upside_down"][8, 2] = 1.0
    tr["state/pitch"][8, 2] = 1.9
    return tr


def test_success_rules_and_box_exit():
    tr = _trace()
    np.testing.assert_array_equal(outcomes.success(tr, "strict"), [True, False, False])
    np.testing.assert_array_equal(outcomes.success(tr, "paper"), [True, False, False])
    # the authors' count: env 2 left the 3.3 m box (step 6) before it failed (step 8)
    np.testing.assert_array_equal(outcomes.success(tr, "box"), [True, False, True])
    np.testing.assert_array_equal(outcomes.box_exit_steps(tr), [10, 10, 6])
    assert [outcomes.rollout_model(r) for r in outcomes.RULES] == ["strict", "paper", "paper"]
    with pytest.raises(ValueError, match="rule"):
        outcomes.rollout_model("lenient")


def test_falls_record_cause_time_and_attitude():
    f = outcomes.falls(_trace(), dt=0.02, causes=CAUSES)
    assert f["count"] == 2
    assert f["by_cause"]["knee_contact"] == 1 and f["by_cause"]["pitch"] == 1
    assert f["by_cause"]["upside_down"] == 1 and f["by_cause"]["roll"] == 0
    e1, e2 = f["events"]
    assert e1 == {"episode": 1, "time_s": 0.1, "causes": ["knee_contact"], "roll": 0.0,
                  "pitch": 0.3}  # fmt: skip
    assert e2["causes"] == ["pitch", "upside_down"] and e2["pitch"] == 1.9
    assert "knee_contact 1" in format_falls(f)
    none = {k: v[:, :1] for k, v in _trace().items()}  # env 0 only: it never fails
    assert format_falls(outcomes.falls(none, 0.02, CAUSES)) == "no falls"


def _planner_trace(T=6, B=2, H=24):
    """A planner trace that breaks no bound: zero actions, planned rows at the default pose."""
    return {
        "done_any": np.zeros((T, B), bool),
        "action": np.zeros((T, B, 12), np.float32),
        "plan/row": np.zeros((T, B, 61), np.float32),
        "plan/index": np.arange(T) % 11,
        "qpos": np.concatenate([np.zeros((T, B, 7)), np.broadcast_to(Q0, (T, B, 12))], -1),
        "qvel": np.zeros((T, B, 18), np.float32),
    }


def _report(spec, tr):
    c = build_constraints(spec, 24, q_default=Q0, action_scale=0.5)
    return outcomes.constraint_report(tr, c.lower, c.upper, {"q_default": Q0})


def test_state_bound_counts_executed_planned_states_and_fails_the_verdict():
    qdot_cap = TASKS["qdot_cap"]
    tr = _planner_trace()
    ok = _report(qdot_cap.spec, tr)
    assert ok["constraint_violations"] == 0 and ok["measured_over_frac"] == {"qdot": 0.0}
    assert verdict(qdot_cap, {"task": {"success_rate": 1.0, **ok}})["moved"] is True
    # the plan's executed row 3 of env 0 plans 2 rad/s on one joint (row units: qdot * 0.05)
    tr["plan/row"][2, 0, 12 + 24] = 2.0 * 0.05
    tr["qvel"][:, :, 6:8] = 1.5  # the robot's joints run past the cap on 2 of 12 joints
    bad = _report(qdot_cap.spec, tr)
    assert bad["planned_state_violations"] == 1 and bad["constraint_violations"] == 1
    assert bad["measured_over_frac"]["qdot"] == pytest.approx(2 / 12)
    assert verdict(qdot_cap, {"task": {"success_rate": 1.0, **bad}})["moved"] is False
    # row 0's state is the measured one (inpainted), not a plan: not counted
    tr["plan/index"][:] = 0
    assert _report(qdot_cap.spec, tr)["planned_state_violations"] == 0


def test_q_bound_and_action_bound_count_what_was_executed():
    spec = TaskSpec(boxes=(BoxSpec("q", lo=-0.5, hi=0.5, joints=("hip",)),))
    tr = _planner_trace()
    assert _report(spec, tr)["constraint_violations"] == 0
    tr["plan/row"][1, 1, 12 + 12] = 0.9 - Q0[0]  # planned FL hip at 0.9 rad
    assert _report(spec, tr)["planned_state_violations"] == 1
    narrow = TASKS["narrow_range"]
    tr = _planner_trace()
    assert _report(narrow.spec, tr)["action_violations"] == 0
    tr["action"][4, 0, 0] = 1.0  # hip target 0.1 + 0.5: outside q_default +- 0.1
    tr["done_any"][5:, 1] = True
    r = _report(narrow.spec, tr)
    assert r["action_violations"] == 1 and r["planned_state_violations"] == 0
    assert verdict(narrow, {"task": {"success_rate": 1.0, **r}})["moved"] is False
    tr["done_any"][4:, 0] = True  # after a fall nothing counts
    assert _report(narrow.spec, tr)["action_violations"] == 0


def test_paired_counts_episodes_won_and_lost_with_an_exact_sign_test():
    from dmpc_jax.scenario.outcomes import paired

    a = np.array([1, 1, 0, 0, 0, 1, 0, 0], bool)
    b = np.array([1, 0, 1, 1, 1, 1, 0, 1], bool)
    r = paired(a, b)
    assert (r["won"], r["lost"], r["ties"]) == (4, 1, 3)
    # 5 discordant pairs split 4:1 -> P(X <= 1) = (1 + 5) / 32, two-sided 12 / 32
    assert r["p_value"] == pytest.approx(12 / 32)
    assert paired(a, a) == {"won": 0, "lost": 0, "ties": 8, "p_value": 1.0}
    # 20 won, 0 lost: 2 / 2^20
    many = paired(np.zeros(20, bool), np.ones(20, bool))
    assert many["p_value"] == pytest.approx(2 / 2**20)
    with pytest.raises(ValueError, match="same keys"):
        paired(a, b[:4])


def test_fall_times_are_the_end_of_the_failing_step_everywhere():
    # episode 0 fails in its first step, episode 1 at step 2, episode 2 never: [T=4, B=3]
    done = np.zeros((4, 3), bool)
    done[0:, 0] = True
    done[2:, 1] = True
    trace = {"done_any": done, "state/roll": np.zeros((4, 3)), "state/pitch": np.zeros((4, 3)),
             "fall/roll": done.astype(float)}  # fmt: skip
    assert outcomes.fall_times_s(trace, 0.02) == [0.02, 0.06]
    events = outcomes.falls(trace, 0.02, ("roll",))["events"]
    assert sorted(e["time_s"] for e in events) == outcomes.fall_times_s(trace, 0.02)


def test_peak_joint_speed_counts_episodes_past_the_runner_bound_before_their_fall():
    from dmpc_jax.scenario.metrics import peak_joint_speed

    peak = np.array([[10.0, 20.0, 5.0], [31.0, 25.0, 40.0], [12.0, 50.0, 6.0]])  # [T, B]
    done = np.array([[False, False, False], [False, False, True], [False, True, True]])
    out = peak_joint_speed({"state/peak_joint_speed": peak, "done_any": done})
    # episodes 1 and 2 pass 30 only from the step of their fall on, which does not count
    assert out == {
        "peak_joint_speed_median": 25.0,
        "peak_joint_speed_max": 31.0,
        "over_joint_speed_bound": pytest.approx(1 / 3),
    }
