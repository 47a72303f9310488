"""The robot loop on an in-process fake transport: stand-up, the E/D plan timeline, and fault
injection (NaN state, state stops for 100 ms, a frozen state tick, a loop overrun, planner stalls,
plan violates limits, a NaN command, exceptions, a failed send): damping from the tick the fault
is seen (a failed send: no further sends), no exception escapes, the event is logged."""

import dataclasses
import threading

import numpy as np
import pytest
from helpers import skip_without_extra

from dmpc_jax.deploy.runner import MODEL_TO_SDK, Runner, RunnerConfig
from dmpc_jax.deploy.safety import SafetyConfig
from dmpc_jax.deploy.transport import FakeTransport, LowCmd, LowState, lowcmd_to_sdk
from dmpc_jax.robot import go2

DT = 0.002
Q0 = np.asarray(go2.paper_default_pose())


def upright(q_model=Q0):
    return LowState(np.array([1.0, 0, 0, 0]), np.zeros(3), q_model[MODEL_TO_SDK].copy(),
                    np.zeros(12))  # fmt: skip


class Planner:
    """A fake plan_fn: a small sinusoid around the default pose; records its calls; can stall or
    return a bad plan on demand."""

    def __init__(self):
        self.calls = []
        self.tasks = []
        self.gate = threading.Event()
        self.gate.set()
        self.bad = False

    def __call__(self, obs, seq, task=0):
        assert obs.shape == (49,) and np.isfinite(obs).all()
        self.calls.append(seq)
        self.tasks.append(task)
        self.gate.wait()
        if self.bad:
            return np.full((24, 12), 9.0)  # q target = q0 + 4.5 rad: beyond every limit
        return 0.1 * np.sin(np.arange(24)[:, None] + np.arange(12)[None] + seq)


def make(stand_s=0.1, **safety):
    tr, pl = FakeTransport(), Planner()
    cfg = RunnerConfig(stand_s=stand_s, live=True, safety=SafetyConfig(**safety))
    return Runner(cfg, tr, pl), tr, pl


def drive(runner, tr, t0, n, state=None, sync_planner=True):
    """n ticks from t0 with a fresh state each tick; waits for the planner thread after each tick
    (deterministic timeline) unless ``sync_planner`` is False."""
    t = t0
    for _ in range(n):
        # the robot counts its LowState tick up (a constant one is a frozen state)
        tr.push_state(dataclasses.replace(state or upright(), tick=round(t / DT)), t)
        runner.tick(t)
        if sync_planner:
            runner.worker.wait_idle(5.0)
        t += DT
    return t


def to_walk(runner, tr):
    t = drive(runner, tr, 0.0, 60)  # stand 0.1 s = 50 ticks, then the first plan
    assert runner.mode == "walk", runner.events
    return t


def test_nothing_is_sent_before_the_first_state_and_stand_up_interpolates():
    runner, tr, _ = make(stand_s=0.1)
    assert runner.tick(0.0) is None and tr.sent == []
    crouch = np.tile([0.0, 1.3, -2.6], 4)
    drive(runner, tr, 0.0, 25, upright(crouch))
    mid = tr.sent[-1].q  # halfway through the stand-up, SDK order
    expected = (0.5 * crouch + 0.5 * Q0)[MODEL_TO_SDK]
    np.testing.assert_allclose(mid, expected, atol=0.05)
    assert runner.mode == "stand"


def test_plan_timeline_asks_at_e_minus_d_and_switches_at_row_d():
    runner, tr, pl = make()
    t = to_walk(runner, tr)
    assert pl.calls == [0]
    # 10 ticks per policy step; first plan rows 0..6, plan 1 asked at row 7, switch at row 11
    t = drive(runner, tr, t, 10 * 7 + 1)
    assert pl.calls == [0, 1]
    drive(runner, tr, t, 10 * 7)
    assert pl.calls == [0, 1, 2]
    assert runner.mode == "walk" and not runner.stats()["faults"]
    cmd = tr.sent[-1]
    assert np.all(cmd.kp == runner.cfg.kp) and np.all(cmd.kd == runner.cfg.kd)


def test_walking_starts_by_blending_from_the_standing_pose_into_the_plan():
    """blend_s = 0.1 s = 5 policy steps: step k executes (k + 1) / 5 of the plan's row k, then
    the plan itself; without a blend the first row is executed at once."""
    for blend_s in (0.0, 0.1):
        tr, pl = FakeTransport(), Planner()
        cfg = RunnerConfig(stand_s=0.1, blend_s=blend_s, live=True)
        runner = Runner(cfg, tr, pl)
        t = to_walk(runner, tr)
        n_walk = len(tr.sent)
        drive(runner, tr, t, 10 * 7)
        plan = pl(np.zeros(49, np.float32), 0)  # the first plan (seq 0)
        for k in range(7):
            share = min((k + 1) / 5, 1.0) if blend_s else 1.0
            want = (Q0 + cfg.action_scale * share * plan[k])[MODEL_TO_SDK]
            # walk tick 0 (sent when entering walk) executes row 0; each row holds 10 ticks
            np.testing.assert_allclose(tr.sent[n_walk - 1 + 10 * k].q, want, atol=1e-9)
        assert not runner.stats()["faults"]
    with pytest.raises(ValueError, match="blend_s"):
        RunnerConfig(blend_s=-1.0)


def test_nan_state_goes_to_damping_within_one_tick():
    runner, tr, _ = make()
    t = to_walk(runner, tr)
    bad = upright()
    bad.q[3] = np.nan
    tr.push_state(bad, t)
    cmd = runner.tick(t)
    assert cmd.is_damping() and tr.sent[-1].is_damping() and runner.mode == "damping"
    assert "NaN" in runner.stats()["faults"][0]
    # latched: good states afterwards keep damping
    drive(runner, tr, t + DT, 5)
    assert all(c.is_damping() for c in tr.sent[-5:])


def test_state_stream_stopping_for_100ms_goes_to_damping_within_one_tick():
    runner, tr, _ = make(stale_state_s=0.05)
    t = to_walk(runner, tr)
    last = t - DT  # the newest state is from the previous tick; now the stream stops
    modes = []
    while t - last <= 0.1:
        cmd = runner.tick(t)
        modes.append(cmd.is_damping())
        t += DT
    first = modes.index(True)
    assert (first + 1) * DT >= 0.05 - 1e-9  # not before the limit...
    assert first * DT <= 0.05 + DT  # ...and within one tick after it
    assert "stale state" in runner.stats()["faults"][0]


def test_planner_stall_goes_to_damping_at_the_switch_tick():
    runner, tr, pl = make()
    t = to_walk(runner, tr)
    pl.gate.clear()  # the planner hangs from the next request on
    t = drive(runner, tr, t, 10 * 7 + 1, sync_planner=False)  # request made at row 7
    assert runner.mode == "walk"
    t = drive(runner, tr, t, 10 * 4, sync_planner=False)  # row 11: the switch, no plan
    assert runner.mode == "damping" and tr.sent[-1].is_damping()
    assert "planner stalled" in runner.stats()["faults"][0]
    pl.gate.set()
    runner.close()


def test_plan_violating_limits_goes_to_damping_and_is_never_executed():
    runner, tr, pl = make()
    t = to_walk(runner, tr)
    pl.bad = True
    drive(runner, tr, t, 10 * 11 + 1)
    assert runner.mode == "damping"
    assert "joint limits" in runner.stats()["faults"][0]
    lo, hi = go2.joint_limits()
    for c in tr.sent:
        if not c.is_damping():
            q = c.q[go2.sdk_to_model()]
            assert (q >= lo).all() and (q <= hi).all()


def test_exceptions_inside_the_tick_and_the_transport_never_escape():
    runner, tr, _ = make()
    t = to_walk(runner, tr)

    def boom():
        raise OSError("DDS reader died")

    tr.latest_state = boom
    cmd = runner.tick(t)  # no exception
    assert cmd.is_damping() and "OSError" in runner.stats()["faults"][0]
    runner2, tr2, _ = make()
    t = to_walk(runner2, tr2)

    def send_fails(c):
        raise RuntimeError("publisher closed")

    calls = []
    tr2.send = lambda c: calls.append(c) or send_fails(c)
    drive(runner2, tr2, t, 5)
    assert runner2.mode == "damping" and "send failed" in runner2.stats()["faults"][0]
    # damping over the failed publisher would fail too: the runner stops sending and says so
    assert (
        len(calls) == 1 and runner2.send_failed and "sending stopped" in runner2.events[-1]["event"]
    )


def test_frozen_state_tick_goes_to_damping_within_one_tick_of_the_limit():
    runner, tr, _ = make(stale_state_s=0.05)
    t = to_walk(runner, tr)
    frozen = dataclasses.replace(upright(), tick=123456)
    damped = []
    for i in range(40):  # the state keeps arriving (fresh receive time) with the same tick
        tr.push_state(frozen, t + i * DT)
        damped.append(runner.tick(t + i * DT).is_damping())
    first = damped.index(True)
    assert 0.05 - DT <= first * DT <= 0.05 + DT
    assert "frozen state" in runner.stats()["faults"][0]
    assert runner.mode == "damping" and tr.sent[-1].is_damping()


def test_loop_overrun_beyond_the_bound_goes_to_damping():
    runner, tr, _ = make(max_tick_gap_s=0.025)
    t = to_walk(runner, tr)
    t = drive(runner, tr, t + 0.02, 1)  # a 22 ms gap: jitter, tolerated
    assert runner.mode == "walk"
    tr.push_state(dataclasses.replace(upright(), tick=999_999), t + 0.03)
    assert runner.tick(t + 0.03).is_damping()  # 32 ms since the last tick
    assert "loop overrun" in runner.stats()["faults"][0]


def test_joint_range_clamp_is_applied_last():
    """At high joint speed near a limit the torque clamp alone would move the target outside
    the joint range; the joint clamp comes after it, so the target stays inside."""
    from dmpc_jax.deploy.safety import Limits

    lim = Limits(SafetyConfig(torque_scale=0.5, joint_margin=0.02))
    j = 2  # a calf: its range ends near -2.7 rad
    q, dq, q_target = Q0.copy(), np.zeros(12), Q0.copy()
    q[j] = lim.lo[j] + 0.05
    dq[j] = -30.0  # fast towards the lower limit: kd dq pulls the torque-clamp window down
    q_target[j] = lim.lo[j] - 1.0
    out = lim.clamp_target(q_target, q, dq, kp=40.0, kd=5.0)
    window_hi = q[j] + (lim.tau_max[j] + 5.0 * dq[j]) / 40.0
    assert window_hi < lim.lo[j] + 0.02  # the torque window lies outside the range here
    assert (out >= lim.lo + 0.02 - 1e-12).all() and (out <= lim.hi - 0.02 + 1e-12).all()


def test_invalid_gains_are_refused_before_the_loop_starts():
    import pytest

    for kp, kd in ((0.0, 1.0), (-5.0, 1.0), (float("nan"), 1.0), (40.0, -1.0)):
        with pytest.raises(ValueError, match="kp|kd"):
            RunnerConfig(kp=kp, kd=kd)
    meta = {"kp": 0.0, "kd": 1.0, "action_scale": 0.5, "q_default": list(Q0)}
    with pytest.raises(ValueError, match="kp must be finite and > 0"):
        RunnerConfig.from_meta(meta)


def test_a_non_finite_command_is_never_sent():
    runner, tr, _ = make()
    t = to_walk(runner, tr)
    good = runner._command

    def nan_target(q, dq):
        cmd = good(q, dq)
        cmd.q[5] = np.nan
        return cmd

    runner._command = nan_target
    drive(runner, tr, t, 3)
    assert all(np.isfinite(c.q).all() for c in tr.sent)
    assert (
        tr.sent[-1].is_damping()
        and "outgoing command q contains NaN" in runner.stats()["faults"][0]
    )


def test_orientation_beyond_limits_and_torque_clamp():
    runner, tr, _ = make(torque_scale=0.5)
    t = to_walk(runner, tr)
    # torque clamp: a far measured pose limits the PD target to tau_max / kp away
    far = Q0 + 0.8
    tr.push_state(upright(far), t)
    cmd = runner.tick(t)
    tau = runner.cfg.kp * (cmd.q - far[MODEL_TO_SDK])
    assert (np.abs(tau) <= 0.5 * go2.torque_limits()[MODEL_TO_SDK] + 1e-6).all()
    tipped = upright()
    tipped.quat_wxyz = np.array([np.cos(0.6), np.sin(0.6), 0, 0])  # roll 1.2 rad
    tr.push_state(tipped, t + DT)
    assert runner.tick(t + DT).is_damping()
    assert "orientation" in runner.stats()["faults"][0]


def test_dry_run_sends_nothing():
    tr, pl = FakeTransport(), Planner()
    runner = Runner(RunnerConfig(stand_s=0.1), tr, pl)  # live defaults to False
    drive(runner, tr, 0.0, 80)
    assert runner.mode == "walk" and runner.sent == 80 and tr.sent == []


def test_lowcmd_message_and_crc_when_the_sdk_is_installed():
    try:
        from dmpc_jax.deploy.transport import _sdk

        sdk = _sdk()
    except Exception as e:  # noqa: BLE001
        skip_without_extra(f"unitree_sdk2py not usable: {e}")
    from dmpc_jax.deploy.transport import lowcmd_from_sdk

    cmd = LowCmd(np.arange(12) * 0.1, np.zeros(12), np.full(12, 40.0), np.ones(12), np.zeros(12))
    msg = lowcmd_to_sdk(sdk, cmd)
    assert msg.crc == sdk["CRC"]().Crc(msg) and list(msg.head) == [0xFE, 0xEF]
    back = lowcmd_from_sdk(msg)
    np.testing.assert_allclose(back.q, cmd.q, rtol=1e-6)
    assert msg.motor_cmd[12].mode == 0


def test_lowstate_crc_is_checked_when_the_sdk_is_installed():
    try:
        from dmpc_jax.deploy.transport import _sdk

        sdk = _sdk()
    except Exception as e:  # noqa: BLE001
        skip_without_extra(f"unitree_sdk2py not usable: {e}")
    from dmpc_jax.deploy.transport import lowstate_crc_ok, lowstate_to_sdk

    msg = lowstate_to_sdk(sdk, dataclasses.replace(upright(), tick=7))
    crc = sdk["CRC"]()
    assert lowstate_crc_ok(crc, msg)
    msg.motor_state[3].q += 0.5  # a corrupted joint reading, CRC left as sent
    assert not lowstate_crc_ok(crc, msg)


def test_building_messages_in_one_thread_leaves_the_crc_checks_of_another_right():
    """The runner builds a LowCmd per tick in its loop while the DDS thread checks each
    LowState's CRC (the simulated robot the other way round). The SDK's CRC singleton reloaded
    its C library at every ``CRC()``, and a check meanwhile returned a signed int: wrong for
    every message whose CRC has its top bit set (2,719 of 20,000 here before the fix)."""
    import threading

    try:
        from dmpc_jax.deploy.transport import _sdk

        sdk = _sdk()
    except Exception as e:  # noqa: BLE001
        skip_without_extra(f"unitree_sdk2py not usable: {e}")
    from dmpc_jax.deploy.transport import lowstate_crc_ok, lowstate_to_sdk

    msg = next(m for t in range(1000)
               if (m := lowstate_to_sdk(sdk, dataclasses.replace(upright(), tick=t))).crc >= 2**31)  # fmt: skip
    cmd = LowCmd(np.zeros(12), np.zeros(12), np.full(12, 40.0), np.ones(12), np.zeros(12))
    crc, stop = sdk["CRC"](), threading.Event()

    def runner_loop():  # a LowCmd, then the SDK's CRC object as every message built gets it
        while not stop.is_set():
            lowcmd_to_sdk(sdk, cmd)
            for _ in range(1000):
                sdk["CRC"]()

    sender = threading.Thread(target=runner_loop)
    sender.start()
    try:
        bad = sum(not lowstate_crc_ok(crc, msg) for _ in range(5000))
    finally:
        stop.set()
        sender.join()
    assert bad == 0


class FakeClock:
    """A plan_fn and its clock: each call 'takes' the next of ``durations_s``."""

    def __init__(self, durations_s):
        self.t, self.durations = 0.0, list(durations_s)

    def __call__(self):
        return self.t

    def plan(self, obs, seq):
        self.t += self.durations[(seq - 1) % len(self.durations)]
        return np.zeros((24, 12))


def test_start_up_budget_refuses_a_slow_machine_with_the_numbers():
    import pytest

    from dmpc_jax.deploy.budget import PlanTooSlow, check_budget, time_plan

    fast = FakeClock([0.030, 0.041, 0.052])
    lat = time_plan(fast.plan, np.zeros(49), 30, clock=fast)
    np.testing.assert_allclose(sorted(set(np.round(lat, 6))), [0.030, 0.041, 0.052])
    ok = check_budget(lat, execute=11, margin=4, policy_dt_s=0.02)
    assert ok.margin == 4 and ok.budget_ms == pytest.approx(80.0) and ok.p99_ms < 80

    slow = FakeClock([0.100, 0.110, 0.130])  # a machine ~3x slower: p99 ~130 ms > 80 ms
    lat = time_plan(slow.plan, np.zeros(49), 30, clock=slow)
    with pytest.raises(PlanTooSlow, match=r"p99 1[23]\d\.\d ms .* > the budget D = 4 x 20 ms = 80"):
        check_budget(lat, execute=11, margin=4, policy_dt_s=0.02)
    auto = check_budget(lat, execute=11, margin=4, policy_dt_s=0.02, auto_margin=True)
    assert auto.margin == 7 and auto.requested_margin == 4 and "raised from 4" in auto.summary()
    # headroom for the loop's own load: p99 64 ms fits 80 ms alone, not with x 1.3 (83 ms)
    lat = np.full(30, 0.064)
    assert check_budget(lat, execute=11, margin=4, policy_dt_s=0.02).margin == 4
    with pytest.raises(PlanTooSlow, match=r"x 1.3 headroom = 83.2 ms"):
        check_budget(lat, execute=11, margin=4, policy_dt_s=0.02, headroom=1.3)
    assert check_budget(lat, 11, 4, 0.02, auto_margin=True, headroom=1.3).margin == 5
    with pytest.raises(PlanTooSlow, match="no D < E = 11 fits"):
        check_budget(np.full(10, 0.25), execute=11, margin=4, policy_dt_s=0.02, auto_margin=True)


def test_planner_in_its_own_process_drives_the_timeline_and_its_death_means_damping():
    """The planner process (spawned) answers on the E/D timeline like the thread; killed, the
    runner goes to damping at the next switch instead of waiting; a factory that fails refuses
    to start with its message."""
    import os
    import signal

    import pytest
    from plan_fakes import broken_plan_fn, sine_plan_fn

    from dmpc_jax.deploy.planner_process import PlannerProcessError, ProcessPlannerWorker

    worker = ProcessPlannerWorker(sine_plan_fn, 49, start_timeout_s=120)
    tr = FakeTransport()
    runner = Runner(RunnerConfig(stand_s=0.1, live=True), tr, worker=worker)
    try:
        t = to_walk(runner, tr)
        t = drive(runner, tr, t, 10 * 11 + 1)  # one switch, served by the process
        assert runner.mode == "walk" and runner.policy_steps > 11 and len(worker.latencies_s) >= 2
        os.kill(worker.pid, signal.SIGKILL)
        drive(runner, tr, t, 10 * 11 + 1)
        assert runner.mode == "damping" and tr.sent[-1].is_damping()
        assert "planner process died" in runner.stats()["faults"][0]
    finally:
        runner.close()
    with pytest.raises(PlannerProcessError, match="no artifact here"):
        ProcessPlannerWorker(broken_plan_fn, 49, start_timeout_s=120)


def test_fault_table_rows_report_detection_and_the_robot_state():
    """The sim2sim fault table (deploy/faults.py) from constructed run records: detection time
    after the injection, damping at the simulator after the detection, a missed fault and a fall
    show as such."""
    from dmpc_jax.deploy.faults import fault_row

    sim = {"fault_t": 10.0, "first_damping_t": 10.052, "lowcmd_out_of_joint_range": 0,
           "lowcmd_over_torque": 0, "lowcmd_max_torque_ratio": 0.6}  # fmt: skip
    events = [{"t": 8.0, "event": "mode ready -> walk"},
              {"t": 10.051, "event": "FAULT in walk: frozen state", "fault": "frozen state"}]  # fmt: skip
    sat = [{"z": 0.12, "roll": 0.05, "pitch": 0.1}]
    r = fault_row("freeze", {"sim": sim, "events": events, "fell": False,
                             "fault": {"injected_t": 9.99}}, sat)  # fmt: skip
    assert r["detected"] == "frozen state" and abs(r["detection_ms"] - 51.0) < 1e-6
    assert abs(r["damping_received_ms"] - 1.0) < 1e-6 and r["sat_down"]
    flipped = [{"z": 0.3, "roll": 0.1, "pitch": 0.0}, {"z": 0.1, "roll": 1.4, "pitch": 0.2}]
    missed = fault_row("stop", {"sim": sim, "events": events[:1], "fell": True,
                                "fault": {"injected_t": 9.99}}, flipped)  # fmt: skip
    assert missed["detected"] is None and missed["detection_ms"] is None
    assert missed["fell"] and not missed["sat_down"]


def test_planner_process_is_pinned_to_the_cpus_asked_for():
    """``planner_cpus``: all (no pinning), last (the last allowed CPU when there are >= 2), a
    list; a CPU this process may not use is refused; the spawned planner runs on what it got."""
    import os

    import pytest
    from plan_fakes import affinity_plan_fn

    from dmpc_jax.deploy.planner_process import ProcessPlannerWorker, planner_cpus

    allowed = sorted(os.sched_getaffinity(0))
    assert planner_cpus("all") is None
    assert planner_cpus("last") == ((allowed[-1],) if len(allowed) >= 2 else None)
    assert planner_cpus(str(allowed[0])) == (allowed[0],)
    with pytest.raises(ValueError, match="not available"):
        planner_cpus(str(max(allowed) + 1))
    with pytest.raises(ValueError, match="expected all, last"):
        planner_cpus("first")
    worker = ProcessPlannerWorker(affinity_plan_fn, 49, start_timeout_s=120, cpus=(allowed[-1],))
    try:
        row = worker.plan_blocking(np.zeros(49, np.float32), 1)[0]
        assert row[row >= 0].tolist() == [allowed[-1]]
    finally:
        worker.close()


def test_task_switch_requests_task_1_from_switch_at_on():
    """``switch_at_s``: plans requested after that much walking ask for task 1, earlier ones
    (and the first plan) for task 0; without it every plan is task 0."""
    tr, pl = FakeTransport(), Planner()
    runner = Runner(RunnerConfig(stand_s=0.1, live=True, switch_at_s=0.3), tr, pl)
    t = to_walk(runner, tr)
    drive(runner, tr, t, 10 * 40)  # 0.8 s of walking: plans every 7 steps (0.14 s)
    assert runner.mode == "walk"
    assert pl.tasks[0] == 0 and pl.tasks[-1] == 1
    assert pl.tasks == sorted(pl.tasks)  # one switch, never back
    assert 1 <= pl.tasks.count(0) < len(pl.tasks)
    runner2, tr2, pl2 = make()
    drive(runner2, tr2, to_walk(runner2, tr2), 10 * 40)
    assert set(pl2.tasks) == {0}


def test_a_run_finishes_with_damping_logged():
    """Runner.finish (the end of dmpc deploy and of every sim2sim run) sends damping for the
    given time, logs when, and stops the planner; a dry run sends nothing."""
    runner, tr, _ = make()
    runner.finish(0.05)
    assert tr.sent and all(c.is_damping() for c in tr.sent)
    assert runner.events[-1]["event"].startswith("finish -> damping")
    dry = Runner(RunnerConfig(stand_s=0.1, live=False), FakeTransport(), Planner())
    dry.finish(0.05)
    assert dry.transport.sent == []


def test_the_runner_sets_the_heap_aside_from_the_garbage_collector():
    """A full collection over a process with JAX loaded took 20-30 ms; the runner freezes what
    exists when it is built (0.004 ms; collecting first stalled the live state reader for
    ~0.1 s: a stale-state fault before standing up), so collections in the loop skip it."""
    import gc

    gc.unfreeze()
    make()
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


class Policy:
    """A fake per-step policy: an action that changes with each call."""

    def __init__(self, bad_at: int | None = None):
        self.calls, self.bad_at = 0, bad_at

    def __call__(self, obs):
        assert obs.shape == (49,) and np.isfinite(obs).all()
        self.calls += 1
        if self.calls == self.bad_at:
            return np.full(12, 9.0)  # beyond every joint limit
        return 0.05 * np.sin(self.calls + np.arange(12))


def test_a_per_step_policy_walks_once_standing_and_acts_every_policy_step():
    tr, pol = FakeTransport(), Policy()
    runner = Runner(RunnerConfig(stand_s=0.1, live=True), tr, policy=pol)
    t = 0.0
    for _ in range(51):  # stand 0.1 s = 50 ticks, then walk at once: no first plan to wait for
        tr.push_state(dataclasses.replace(upright(), tick=round(t / DT)), t)
        runner.tick(t)
        t += DT
    assert runner.mode == "walk" and pol.calls == 1
    n = len(tr.sent)
    for _ in range(10 * 5):
        tr.push_state(dataclasses.replace(upright(), tick=round(t / DT)), t)
        runner.tick(t)
        t += DT
    assert pol.calls == 6  # one call per policy step (10 ticks)
    want = (Q0 + runner.cfg.action_scale * 0.05 * np.sin(6 + np.arange(12)))[MODEL_TO_SDK]
    np.testing.assert_allclose(tr.sent[-1].q, want, atol=1e-9)
    assert len(tr.sent) == n + 50 and not runner.stats()["faults"]
    assert runner.stats()["plan_latency_ms"]["plans"] == 5
    with pytest.raises(ValueError, match="exactly one"):
        Runner(RunnerConfig(), tr, Planner(), policy=pol)


def test_a_policy_action_beyond_the_limits_goes_to_damping_and_is_never_executed():
    tr, pol = FakeTransport(), Policy(bad_at=3)
    runner = Runner(RunnerConfig(stand_s=0.1, live=True), tr, policy=pol)
    t = 0.0
    for _ in range(51 + 30):
        tr.push_state(dataclasses.replace(upright(), tick=round(t / DT)), t)
        runner.tick(t)
        t += DT
    assert runner.mode == "damping" and pol.calls == 3
    assert all(np.all(np.abs(c.q - Q0[MODEL_TO_SDK]) < 1.0) for c in tr.sent if c.kp[0] > 0)


def test_start_up_check_refuses_a_loop_that_cannot_hold_its_pace_with_the_numbers():
    from dmpc_jax.deploy.budget import LoopTooSlow, check_jitter, tick_gaps_during

    steady = np.full(499, 0.002)
    ok = check_jitter(steady, bound_s=0.025)
    assert ok.ticks == 500 and ok.max_ms == pytest.approx(2.0) and "p99 2.00" in ok.summary()
    stalled = steady.copy()
    stalled[100] = 0.0268  # one 26.8 ms gap: the runner would have faulted on it
    with pytest.raises(LoopTooSlow, match=r"max 26.8 ms .*bound 25 ms"):
        check_jitter(stalled, bound_s=0.025)
    with pytest.raises(LoopTooSlow, match="no tick"):
        check_jitter(np.zeros(0), bound_s=0.025)

    # the idle loop runs beside the work and reports its gaps (a fake clock: no timing here)
    t = {"now": 0.0}

    def clock():
        return t["now"]

    def sleep(s):
        t["now"] += s

    def work():
        while t["now"] < 0.2:  # the paced loop advances the fake clock
            import time

            time.sleep(0.001)
        return "done"

    result, gaps = tick_gaps_during(work, 500.0, clock=clock, sleep=sleep)
    assert result == "done" and len(gaps) >= 99
    np.testing.assert_allclose(gaps[: len(gaps) - 1], 0.002, atol=1e-9)


def test_the_first_executed_action_is_marked_once_for_start_up_measurements(tmp_path, monkeypatch):
    """``DMPC_MILESTONES``: the runner marks ``first_step`` when it executes its first planned
    action (walking begins), not while it stands, and only once; unset, it writes nothing."""
    from dmpc_jax import milestones

    log = tmp_path / "milestones.jsonl"
    monkeypatch.setattr(milestones, "_marked", set())
    monkeypatch.setenv(milestones.ENV_VAR, str(log))
    runner, tr, _ = make(stand_s=0.1)
    drive(runner, tr, 0.0, 40)  # still standing
    assert runner.mode == "stand" and milestones.read(log) is None
    t = drive(runner, tr, 0.08, 20)
    assert runner.mode == "walk" and runner.policy_steps >= 1
    first = milestones.read(log)
    drive(runner, tr, t, 30)
    assert first is not None and milestones.read(log) == first
    assert len(log.read_text().splitlines()) == 1
    monkeypatch.delenv(milestones.ENV_VAR)
    milestones.mark("other")
    assert len(log.read_text().splitlines()) == 1


def test_a_joint_speed_fault_names_the_joint_and_its_position():
    from dmpc_jax.deploy.safety import SafetyConfig, state_fault

    q, dq = np.zeros(12), np.zeros(12)
    q[5], dq[5] = -1.5, -33.0  # FR calf
    quat = np.array([1.0, 0.0, 0.0, 0.0])
    assert state_fault(SafetyConfig(), quat, np.zeros(3), q, np.zeros(12)) is None
    msg = state_fault(SafetyConfig(), quat, np.zeros(3), q, dq)
    assert msg == "joint speed 33.0 rad/s beyond 30.0 (FR_calf_joint, q -1.50 rad)"
