"""The peer simulator's pieces that need no unitree_mujoco checkout: clear errors for a missing or
wrong checkout, the sim2sim config choosing the peer process and its own page directory, and the
firmware stamps (tick, CRC, faults) on the LowState the bridge publishes."""

import math

import pytest
from helpers import skip_without_extra

from dmpc_jax.deploy.sim2sim import Sim2SimConfig
from dmpc_jax.deploy.unitree_peer import BRIDGE, SCENE, FirmwareStamp, check_checkout


def fake_checkout(root):
    for f in (BRIDGE, SCENE):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("")
    return root


def test_a_missing_or_wrong_checkout_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--cfg.unitree-mujoco"):
        Sim2SimConfig(sim="unitree")
    with pytest.raises(ValueError, match="not a unitree_mujoco checkout: missing"):
        check_checkout(str(tmp_path))
    with pytest.raises(ValueError, match="sim must be one of"):
        Sim2SimConfig(sim="isaac")


def test_sim2sim_starts_the_peer_process_and_keeps_our_page(tmp_path):
    root = fake_checkout(tmp_path / "unitree_mujoco")
    cfg = Sim2SimConfig(sim="unitree", unitree_mujoco=str(root))
    assert cfg.out_dir == "experiments/sim2sim/unitree"
    cmd = cfg.robot_process(12.0, tmp_path / "log.json", "freeze")
    assert cmd[1:3] == ["-m", "dmpc_jax.deploy.unitree_peer"]
    assert cmd[-2:] == [str(root.resolve()), "freeze"]
    ours = Sim2SimConfig().robot_process(12.0, tmp_path / "log.json", "none")
    assert ours[2] == "dmpc_jax.deploy.sim_robot" and ours[-1] == "none"
    assert Sim2SimConfig(sim="unitree", unitree_mujoco=str(root), out_dir="x").out_dir == "x"


def test_firmware_stamps_tick_crc_and_faults():
    from dmpc_jax.deploy.transport import TransportUnavailable, _sdk, lowstate_crc_ok

    try:
        sdk = _sdk()
    except TransportUnavailable as e:
        skip_without_extra(str(e))
    sent = []
    crc = sdk["CRC"]()
    stamp = FirmwareStamp(lambda m: sent.append((m.tick, m.motor_state[4].q, m.crc)), crc, "freeze")
    msg = sdk["new_state"]()  # their bridge reuses and mutates one message
    for q in (0.1, 0.2):
        msg.motor_state[4].q = q
        stamp(msg)
        assert lowstate_crc_ok(crc, msg)
    assert [s[0] for s in sent] == [1, 2]  # the tick advances
    stamp.start_fault()
    for q in (0.3, 0.4):
        msg.motor_state[4].q = q
        stamp(msg)
    assert sent[2][:2] == sent[3][:2] == (3, pytest.approx(0.3))  # frozen: one frame, republished
    for fault, check in (("stop", lambda s: s == []),
                         ("nan", lambda s: math.isnan(s[0][1]))):  # fmt: skip
        sent.clear()
        stamp = FirmwareStamp(
            lambda m: sent.append((m.tick, m.motor_state[4].q, m.crc)), crc, fault
        )
        stamp.start_fault()
        stamp(sdk["new_state"]())
        assert check(sent), (fault, sent)
    with pytest.raises(ValueError, match="unknown simulator fault"):
        FirmwareStamp(print, crc, "explode")
