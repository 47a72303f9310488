"""The Go2 model: mass, dimensions, name-based joint maps, standing under PD, MJX vs native."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from dmpc_jax.robot import go2


@pytest.mark.parametrize("contacts", ["feet", "full"])
def test_mass_and_dimensions(contacts):
    m = go2.make_model(go2.ModelConfig(contacts=contacts))
    assert abs(m.body_mass.sum() - 15.2) <= 0.01 * 15.2
    assert (m.nq, m.nv, m.nu) == (19, 18, 12)
    assert mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, "home") == 0


def test_feet_only_variant_collides_only_with_feet():
    m = go2.make_model(go2.ModelConfig(contacts="feet"))
    colliding = {
        mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, i) for i in np.nonzero(m.geom_contype)[0]
    }
    assert colliding == {"floor", *go2.FEET}
    full = go2.make_model(go2.ModelConfig(contacts="full"))
    assert np.count_nonzero(full.geom_contype) > 10


def test_actuators_carry_gains_and_real_torque_limits():
    m = go2.make_model(go2.ModelConfig(kp=33.0, kd=0.7))
    np.testing.assert_allclose(m.actuator_gainprm[:, 0], 33.0)
    np.testing.assert_allclose(m.actuator_biasprm[:, 1:3], [[-33.0, -0.7]] * 12)
    np.testing.assert_allclose(m.actuator_forcerange[:, 1], go2.torque_limits())
    names = [
        mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, m.actuator_trnid[i, 0]) for i in range(12)
    ]
    assert tuple(names) == go2.JOINT_NAMES


def test_solver_settings_reach_the_compiled_model_from_the_env_config():
    from dmpc_jax.config import ConfigError, apply_overrides
    from dmpc_jax.envs.config import EnvConfig

    default = go2.make_model(EnvConfig().model).opt
    assert (default.iterations, default.cone, default.impratio) == (
        1,
        mujoco.mjtCone.mjCONE_PYRAMIDAL,
        1.0,
    )
    cfg = apply_overrides(
        EnvConfig(),
        ["solver_iterations=100", "cone=elliptic", "impratio=100", "foot_condim=6", "sim_dt=0.005"],
    )
    m = go2.make_model(cfg.model)
    assert (m.opt.iterations, m.opt.cone, m.opt.impratio, m.opt.timestep) == (
        100,
        mujoco.mjtCone.mjCONE_ELLIPTIC,
        100.0,
        0.005,
    )
    feet = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f) for f in go2.FEET]
    assert set(m.geom_condim[feet]) == {6}
    with pytest.raises((ValueError, ConfigError), match="cone"):
        apply_overrides(EnvConfig(), ["cone=round"])


def test_joint_orders_are_mapped_by_name():
    sdk = go2.sdk_motor_order()
    assert sdk[:3] == ("FR_hip_joint", "FR_thigh_joint", "FR_calf_joint")
    model_vec = np.arange(12)
    sdk_vec = model_vec[go2.model_to_sdk()]
    assert [go2.JOINT_NAMES[i] for i in sdk_vec] == list(sdk)
    np.testing.assert_array_equal(sdk_vec[go2.sdk_to_model()], model_vec)
    lo_model, _ = go2.joint_limits()
    # RL/RR thighs have a wider lower limit; the map must carry that to SDK slots 7 and 10
    assert lo_model[go2.model_to_sdk()][7] == pytest.approx(-0.5236)


def _native_trace(model, qpos0, ctrl, substeps):
    data = mujoco.MjData(model)
    data.qpos[:] = qpos0
    mujoco.mj_forward(model, data)
    out = []
    for t in range(substeps):
        data.ctrl[:] = ctrl[t]
        mujoco.mj_step(model, data)
        out.append(data.qpos.copy())
    return np.array(out)


@pytest.fixture(scope="module")
def stand_setup():
    model = go2.make_model()
    pose = go2.home_qpos()[7:]
    qpos0 = go2.home_qpos().copy()
    qpos0[2] = go2.standing_height(pose) + 0.005
    substeps = int(round(10.0 / model.opt.timestep))
    ctrl = np.tile(pose, (substeps, 1))
    n1 = int(round(1.0 / model.opt.timestep))
    t = np.arange(n1) * model.opt.timestep
    ctrl[:n1] += 0.2 * np.sin(2 * np.pi * 1.5 * t)[:, None]  # move the legs in the first second
    mx = mjx.put_model(model, impl="jax")

    @jax.jit
    def mjx_trace(qpos0, ctrl):
        d = mjx.make_data(mx, impl="jax").replace(qpos=qpos0)
        d = mjx.forward(mx, d)

        def body(d, u):
            d = mjx.step(mx, d.replace(ctrl=u))
            return d, d.qpos

        return jax.lax.scan(body, d, ctrl)[1]

    native = _native_trace(model, qpos0, ctrl, substeps)
    sim = np.asarray(mjx_trace(jnp.asarray(qpos0, jnp.float32), jnp.asarray(ctrl, jnp.float32)))
    return model, native, sim, n1


@pytest.mark.slow
def test_stands_10s_under_pd_native_and_mjx(stand_setup):
    model, native, sim, n1 = stand_setup
    # nominal: the loaded steady-state height under Kp 40 (the kinematic height minus the PD sag)
    nominal = native[-1, 2]
    kinematic = go2.standing_height(go2.home_qpos()[7:])
    assert kinematic - 0.06 < nominal < kinematic
    for trace in (native, sim):
        settled = trace[n1 * 2 :, 2]  # from 2 s on (after the leg motion of the first second)
        assert np.all(np.abs(settled - nominal) < 0.02), (settled.min(), settled.max(), nominal)
        assert np.all(np.abs(trace[:, 3]) > 0.95)  # upright: quaternion w stays near 1


def test_mjx_agrees_with_native_after_1s(stand_setup):
    _, native, sim, n1 = stand_setup
    err = np.abs(native[n1 - 1, 7:] - sim[n1 - 1, 7:]).max()
    assert err < 0.01, err  # measured: 4e-4 rad
