"""Real DDS on loopback: the native-MuJoCo Go2 process and the deploy runner exchange rt/lowstate
and rt/lowcmd; the runner stands the robot up from lying down. Skipped, with the reason, where
unitree_sdk2py or its DDS library cannot be loaded (a failure in CI: DMPC_REQUIRE_EXTRAS)."""

import contextlib
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import skip_without_extra

DOMAIN = 57  # away from the default domain 0 of a real robot or another run


@contextlib.contextmanager
def simulated_robot(log, fault: str = "none"):
    """(the simulated robot's process, a DDS transport that has received its first state), both
    stopped on exit; skips (fails in CI) without the SDK. One DDS domain per test process."""
    from dmpc_jax.deploy.transport import DdsTransport, TransportUnavailable, _sdk

    try:
        _sdk()
    except TransportUnavailable as e:
        skip_without_extra(str(e))
    sim = subprocess.Popen([sys.executable, "-m", "dmpc_jax.deploy.sim_robot", "20", str(log),
                            str(DOMAIN), "lo", "0.001", fault])  # fmt: skip
    transport = DdsTransport(DOMAIN, "lo")
    try:
        t0 = time.monotonic()
        while transport.latest_state() is None:
            assert sim.poll() is None, "the simulated robot exited"
            assert time.monotonic() - t0 < 30, "no rt/lowstate within 30 s"
            time.sleep(0.05)
        yield sim, transport
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        transport.close()


def hold_pose_runner(transport, stand_s: float):
    """A live runner whose planner holds the default pose. The loop-overrun bound is loosened:
    these tests check the DDS exchange on a shared CI machine, not the loop's timing
    (test_deploy_runner checks that watchdog)."""
    from dmpc_jax.deploy.runner import Runner, RunnerConfig
    from dmpc_jax.deploy.safety import SafetyConfig

    cfg = RunnerConfig(stand_s=stand_s, live=True, safety=SafetyConfig(max_tick_gap_s=0.2))
    return Runner(cfg, transport, lambda obs, seq, task=0: np.zeros((24, 12)))


@pytest.mark.slow
def test_runner_stands_the_simulated_go2_up_over_dds(tmp_path):
    log = tmp_path / "sim.json"
    with simulated_robot(log) as (_, transport):
        lying = transport.latest_state()[0]
        runner = hold_pose_runner(transport, stand_s=1.0)
        runner.run(2.5)  # stand up 1 s, then "walk" with zero actions (hold the default pose)
        stats = runner.stats()
        runner.close()
    res = json.loads(log.read_text())
    assert stats["faults"] == [] and stats["mode"] == "walk", stats
    assert res["lowcmd_received"] > 500 and res["lowcmd_bad_crc"] == 0
    assert stats["lowstate_crc_errors"] == 0
    assert lying.q[2] < -2.0  # started lying down (calf folded, SDK order FR calf)
    z = [p["z"] for p in res["trajectory"]]
    assert z[-1] > 0.25 > z[0], (z[0], z[-1])  # stood up
    print(json.dumps({k: stats[k] for k in ("lowcmd_period_ms", "sent")}))


def test_sim2sim_and_deploy_default_to_the_demo_planner():
    from dmpc_jax.deploy.sim2sim import Sim2SimConfig
    from dmpc_jax.paths import DEFAULT_PLANNER

    assert Sim2SimConfig().planner_run == DEFAULT_PLANNER


@pytest.mark.slow
def test_a_frozen_state_over_real_dds_ends_in_damping(tmp_path):
    """The simulated robot republishes one frame (same tick) from SIGUSR1 on: the runner sees the
    tick stop and sends damping; no command it sent left the joint range (checked by the
    simulator on what it received)."""
    import signal

    log = tmp_path / "sim.json"
    with simulated_robot(log, fault="freeze") as (sim, transport):
        runner = hold_pose_runner(transport, stand_s=0.5)
        runner.run(1.0)
        assert runner.mode == "walk", runner.stats()
        sim.send_signal(signal.SIGUSR1)
        runner.run(0.5)
        stats = runner.stats()
        runner.close()
    res = json.loads(log.read_text())
    assert stats["mode"] == "damping" and "frozen state" in stats["faults"][0], (stats, res)
    assert res["fault"] == "freeze" and res["fault_t"] is not None
    assert res["first_damping_t"] > res["fault_t"]
    assert res["lowcmd_out_of_joint_range"] == 0


@pytest.mark.slow
def test_simulated_robot_process_loads_no_jax():
    """The simulated robot runs ``python -m dmpc_jax.deploy.sim_robot``: its module must not pull in
    JAX (a full GC over that heap stalled its 500 Hz LowState for ~50 ms), and its default
    sampler is the planner's real-time default, written out instead of imported."""
    import subprocess
    import sys

    code = "import sys, dmpc_jax.deploy.sim_robot, dmpc_jax.deploy.unitree_peer; print(sorted(m for m in ('jax', 'flax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    from dmpc_jax.deploy.sim2sim import Sim2SimConfig
    from dmpc_jax.planner.sampler import REALTIME_VARIANT

    assert Sim2SimConfig().sampler == REALTIME_VARIANT


def test_a_fall_is_the_walks_until_it_stops_and_the_faults_after_it():
    """fall_flags: lying before the stand-up and sitting down in damping after it are no falls; a
    low base or a tilt while walking is; a tilt after a walk that ended by time is the stop's,
    reported apart; after a fault it counts."""
    from dmpc_jax.deploy.sim2sim import fall_flags

    def traj(walk, after):  # 50 Hz: 1 s lying, 2 s walking [50, 150), 1 s after; (z, roll)
        pose = lambda z, roll: {"z": z, "roll": roll, "pitch": 0.0}  # noqa: E731
        return [pose(0.1, 0.0)] * 50 + [pose(*walk)] * 100 + [pose(*after)] * 50

    up, sat, low, tipped = (0.3, 0.0), (0.08, 0.0), (0.1, 0.0), (0.2, 1.2)
    assert fall_flags(traj(up, up), 50, 150, False) == (False, False)
    assert fall_flags(traj(up, sat), 50, 150, False) == (False, False)
    assert fall_flags(traj(low, up), 50, 150, False) == (True, False)
    assert fall_flags(traj(tipped, up), 50, 150, False) == (True, False)
    assert fall_flags(traj(up, tipped), 50, 150, False) == (False, True)
    assert fall_flags(traj(up, tipped), 50, 150, True) == (True, False)
    assert fall_flags(traj(up, sat), 50, 150, True) == (False, False)


def test_gait_metrics_give_speed_and_energy_per_metre():
    """1 m/s straight ahead at 100 W of motor work is 100 J/m; sideways progress is not forward."""
    from dmpc_jax.deploy.sim2sim import gait_metrics

    seg = [{"x": t / 50, "y": 0.0, "yaw": 0.0, "work": 2.0 * t} for t in range(101)]
    m = gait_metrics(seg)
    assert m["forward_speed_m_per_s"] == pytest.approx(1.0)
    assert m["energy_J_per_m"] == pytest.approx(100.0)
    side = gait_metrics([{**p, "yaw": np.pi / 2} for p in seg])
    assert abs(side["forward_speed_m_per_s"]) < 1e-9 and side["energy_J_per_m"] is None
    assert "energy_J_per_m" not in gait_metrics(
        [{k: p[k] for k in "xy"} | {"yaw": 0.0} for p in seg]
    )


def test_trajectories_are_saved_rounded_and_compressed(tmp_path):
    """save_trajectory writes trajectory_<seed>.json.gz rounded to 1e-4; load_trajectory reads it
    (and the plain JSON of older pages)."""
    import json

    from dmpc_jax.deploy.sim2sim import load_trajectory, save_trajectory

    traj = [{"t": 0.02 * k, "z": 0.3123456789, "roll": -0.000012} for k in range(50)]
    save_trajectory(tmp_path, 3, traj)
    assert load_trajectory(tmp_path, 3)[7] == {"t": 0.14, "z": 0.3123, "roll": -0.0}
    (tmp_path / "trajectory_4.json").write_text(json.dumps(traj))
    assert load_trajectory(tmp_path, 4) == traj


def test_sim2sim_takes_the_demonstrator_as_its_controller():
    from dmpc_jax.deploy.sim2sim import Sim2SimConfig

    assert Sim2SimConfig(controller="demonstrator").demonstrator_run.endswith("demonstrator/cpu")
    with pytest.raises(ValueError, match="controller"):
        Sim2SimConfig(controller="ppo")


def test_deploy_takes_the_demonstrator_as_its_controller():
    from dmpc_jax.deploy.robot import DeployConfig

    assert DeployConfig(controller="demonstrator").demonstrator_exported == "exported/demonstrator"
    with pytest.raises(ValueError, match="controller"):
        DeployConfig(controller="ppo")


def test_the_simulated_robot_steps_the_ticks_it_missed(monkeypatch):
    """Its physics keeps real time: a loop held up for 7 ticks steps 8 at once (capped), so a
    starved simulator process does not slow the robot down against the controller's clock."""
    import dmpc_jax.deploy.sim_robot as S

    now = {"t": 100.0}
    monkeypatch.setattr(S.time, "monotonic", lambda: now["t"])
    t0, dt = 100.0, 0.002
    assert S.ticks_due(t0, 0, dt) == 1  # on time: the next tick
    now["t"] = t0 + 10 * dt + 1e-4
    assert S.ticks_due(t0, 10, dt) == 1
    now["t"] = t0 + 17 * dt + 1e-4  # 10 ticks done, ticks 10..17 are due
    assert S.ticks_due(t0, 10, dt) == 8
    now["t"] = t0 + 1000 * dt
    assert S.ticks_due(t0, 10, dt) == S.MAX_CATCHUP_TICKS
