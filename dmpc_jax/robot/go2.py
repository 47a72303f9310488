"""Unitree Go2 constants and an MJCF model written from the published description.

The numbers come from ``go2_description.json`` (Unitree's Go2 description as packaged in MuJoCo
Menagerie, BSD-3-Clause; see NOTICE). We write our own MJCF from them: primitive collision geoms,
PD position actuators with configurable gains and the real torque limits, a feet-only-contact
variant for MJX, terrains and the ``home`` keyframe.

Joint orders are mapped **by name** here and nowhere else:
model order FL, FR, RL, RR x (hip, thigh, calf); SDK motor order FR, FL, RR, RL x (hip, thigh, calf).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import quoteattr

import numpy as np

DESCRIPTION_PATH = Path(__file__).with_name("go2_description.json")

LEGS = ("FL", "FR", "RL", "RR")
PARTS = ("hip", "thigh", "calf")
JOINT_NAMES: tuple[str, ...] = tuple(f"{leg}_{part}_joint" for leg in LEGS for part in PARTS)
FEET: tuple[str, ...] = LEGS  # the foot sphere geoms are named after their leg
NU = 12


@functools.cache
def load_description() -> dict:
    """The Go2 description (bodies, inertias, limits, SDK order) as a dict."""
    return json.loads(DESCRIPTION_PATH.read_text())


@functools.cache
def sdk_motor_order() -> tuple[str, ...]:
    """Joint names in the order of the SDK's ``motor_state``/``motor_cmd`` arrays."""
    return tuple(load_description()["sdk_motor_order"])


@functools.cache
def model_to_sdk() -> np.ndarray:
    """Index array ``idx`` with ``sdk_vec = model_vec[idx]`` (matched by joint name)."""
    return np.array([JOINT_NAMES.index(name) for name in sdk_motor_order()], dtype=np.int32)


@functools.cache
def sdk_to_model() -> np.ndarray:
    """Index array ``idx`` with ``model_vec = sdk_vec[idx]`` (matched by joint name)."""
    order = sdk_motor_order()
    return np.array([order.index(name) for name in JOINT_NAMES], dtype=np.int32)


def _joint(name: str) -> dict:
    for body in load_description()["bodies"]:
        for joint in body["joints"]:
            if joint["name"] == name:
                return joint
    raise KeyError(name)


@functools.cache
def joint_limits() -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) joint position limits in model order, radians, shape [12] each."""
    ranges = np.array([_joint(n)["range"] for n in JOINT_NAMES])
    return ranges[:, 0].copy(), ranges[:, 1].copy()


@functools.cache
def torque_limits() -> np.ndarray:
    """Motor torque limits in model order, N m, shape [12]."""
    by_joint = {m["joint"]: m["torque_limit_Nm"] for m in load_description()["motor_torque_limits"]}
    return np.array([by_joint[n] for n in JOINT_NAMES])


@functools.cache
def home_qpos() -> np.ndarray:
    """The ``home`` keyframe qpos [19]: base xyz, quat wxyz, 12 joints in model order."""
    return np.array(load_description()["home_keyframe"]["qpos"], dtype=np.float64)


def paper_default_pose() -> np.ndarray:
    """q_default of the authors' code (METHOD §1), model order [12].

    Hip +0.1 left / -0.1 right, thigh 0.7 front / 1.0 rear, calf -1.5.
    """
    pose = []
    for leg in LEGS:
        hip = 0.1 if leg[1] == "L" else -0.1
        thigh = 0.7 if leg[0] == "F" else 1.0
        pose += [hip, thigh, -1.5]
    return np.array(pose)


def default_pose(name: str) -> np.ndarray:
    """q_default [12] (model order) of an env's ``default_pose``: ``paper`` or ``home``."""
    if name == "paper":
        return paper_default_pose()
    if name == "home":
        return home_qpos()[7:]
    raise ValueError(f"default pose must be 'paper' or 'home', got {name!r}")


# --------------------------------------------------------------------------------------------
# MJCF


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """How to build the Go2 MJCF.

    Attributes:
        contacts: ``feet`` (only the four foot spheres touch the ground: cheap in MJX) or ``full``
            (every collision primitive touches the ground; no self-collision).
        kp: PD stiffness of the position actuators, N m / rad.
        kd: PD damping of the position actuators, N m s / rad.
        timestep: physics step, s.
        terrain: ``flat`` plane, ``rough`` heightfield, or ``slope`` (a tilted plane).
        slope_deg: incline of the ``slope`` terrain about the world y axis, degrees.
        rough_amplitude: peak height of the ``rough`` heightfield, m.
        rough_seed: seed of the ``rough`` heightfield.
        solver_iterations: constraint-solver iterations (MJX cost grows with it).
        ls_iterations: line-search iterations of the solver.
        foot_condim: contact dimensionality of the feet (3: sliding friction only).
        cone: friction cone of the contact solver, ``pyramidal`` (MuJoCo's default) or
            ``elliptic`` (Unitree's ``go2.xml``).
        impratio: ratio of frictional to normal constraint impedance (MuJoCo's default 1;
            Unitree's ``go2.xml`` 100, which makes friction harder to slip).
    """

    contacts: Literal["feet", "full"] = "feet"
    kp: float = 40.0
    kd: float = 1.0
    timestep: float = 0.004
    terrain: Literal["flat", "rough", "slope"] = "flat"
    slope_deg: float = 10.0
    rough_amplitude: float = 0.04
    rough_seed: int = 0
    solver_iterations: int = 1
    ls_iterations: int = 5
    foot_condim: int = 3
    cone: Literal["pyramidal", "elliptic"] = "pyramidal"
    impratio: float = 1.0

    def __post_init__(self):
        if self.contacts not in ("feet", "full"):
            raise ValueError(
                f"ModelConfig.contacts must be 'feet' or 'full', got {self.contacts!r}"
            )
        if self.terrain not in ("flat", "rough", "slope"):
            raise ValueError(
                f"ModelConfig.terrain must be 'flat', 'rough' or 'slope', got {self.terrain!r}"
            )
        if self.kp <= 0 or self.kd < 0:
            raise ValueError(
                f"ModelConfig.kp must be > 0 and kd >= 0, got kp={self.kp}, kd={self.kd}"
            )
        if self.timestep <= 0:
            raise ValueError(f"ModelConfig.timestep must be > 0 s, got {self.timestep}")
        if self.foot_condim not in (1, 3, 4, 6):
            raise ValueError(
                f"ModelConfig.foot_condim must be 1, 3, 4 or 6, got {self.foot_condim}"
            )
        if self.solver_iterations < 1 or self.ls_iterations < 1:
            raise ValueError("ModelConfig.solver_iterations and ls_iterations must be >= 1")
        if self.cone not in ("pyramidal", "elliptic"):
            raise ValueError(
                f"ModelConfig.cone must be 'pyramidal' or 'elliptic', got {self.cone!r}"
            )
        if not self.impratio > 0:
            raise ValueError(f"ModelConfig.impratio must be > 0, got {self.impratio}")


HFIELD_SIZE = (10.0, 10.0)  # half extents of the rough heightfield, m
HFIELD_RES = 128


def _fmt(values) -> str:
    return " ".join(f"{float(v):.9g}" for v in np.atleast_1d(values))


def _geom_xml(geom: dict, collide: bool, feet_condim: int) -> str:
    is_foot = geom["name"] in FEET
    attrs = {
        "type": geom["type"],
        "size": _fmt([s for s in geom["size"] if s != 0.0] or [geom["size"][0]]),
        "pos": _fmt(geom["pos"]),
        "quat": _fmt(geom["quat_wxyz"]),
        "friction": _fmt(geom["friction"]),
        "contype": "1" if collide else "0",
        "conaffinity": "0",
        "rgba": "0.15 0.15 0.15 1" if is_foot else "0.75 0.78 0.8 1",
    }
    if geom["name"]:
        attrs["name"] = geom["name"]
    if is_foot:
        attrs["condim"] = str(feet_condim)
    return "<geom " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items()) + "/>"


def _body_xml(body: dict, children: dict[str, list[dict]], cfg: ModelConfig, indent: int) -> str:
    pad = "  " * indent
    lines = [
        f'{pad}<body name="{body["name"]}" pos="{_fmt(body["pos_in_parent"])}" '
        f'quat="{_fmt(body["quat_in_parent_wxyz"])}">'
    ]
    lines.append(
        f'{pad}  <inertial pos="{_fmt(body["com_pos"])}" mass="{body["mass"]:.9g}" '
        f'quat="{_fmt(body["inertia_frame_quat_wxyz"])}" '
        f'diaginertia="{_fmt(body["principal_inertia"])}"/>'
    )
    for joint in body["joints"]:
        if joint["type"] == "free":
            lines.append(f'{pad}  <freejoint name="root"/>')
        else:
            lines.append(
                f'{pad}  <joint name="{joint["name"]}" type="hinge" axis="{_fmt(joint["axis"])}" '
                f'range="{_fmt(joint["range"])}" damping="{joint["damping"]:.9g}" '
                f'armature="{joint["armature"]:.9g}" frictionloss="{joint["frictionloss"]:.9g}"/>'
            )
    for geom in body["collision_geoms"]:
        collide = cfg.contacts == "full" or geom["name"] in FEET
        lines.append(pad + "  " + _geom_xml(geom, collide, cfg.foot_condim))
    for site in body.get("sites", []):
        lines.append(f'{pad}  <site name="{site["name"]}" pos="{_fmt(site["pos"])}" size="0.01"/>')
    if body["parent"] == "world":
        lines.append(
            f'{pad}  <camera name="track" mode="trackcom" pos="0.2 -1.4 0.45" '
            f'xyaxes="1 0 0 0 0.3 1"/>'
        )
    for child in children.get(body["name"], []):
        lines.append(_body_xml(child, children, cfg, indent + 1))
    lines.append(f"{pad}</body>")
    return "\n".join(lines)


def _terrain_xml(cfg: ModelConfig) -> tuple[str, str]:
    """(asset xml, floor geom xml) for the configured terrain."""
    common = 'contype="1" conaffinity="1" condim="3" friction="1 0.005 0.0001" material="grid"'
    if cfg.terrain == "flat":
        return "", f'<geom name="floor" type="plane" size="0 0 0.05" {common}/>'
    if cfg.terrain == "slope":
        angle = np.deg2rad(cfg.slope_deg)
        quat = [np.cos(angle / 2), 0.0, -np.sin(angle / 2), 0.0]  # rises along +x
        return "", f'<geom name="floor" type="plane" size="0 0 0.05" quat="{_fmt(quat)}" {common}/>'
    sx, sy = HFIELD_SIZE
    asset = (
        f'<hfield name="rough" nrow="{HFIELD_RES}" ncol="{HFIELD_RES}" '
        f'size="{sx} {sy} {cfg.rough_amplitude:.6g} 0.1"/>'
    )
    return asset, f'<geom name="floor" type="hfield" hfield="rough" {common}/>'


def rough_heights(cfg: ModelConfig) -> np.ndarray:
    """Heightfield samples in [0, 1], shape [HFIELD_RES, HFIELD_RES] (row = y, col = x).

    Smooth bumps (a sum of random low-frequency sinusoids), flattened to 0 near the origin so the
    robot spawns on level ground.
    """
    rng = np.random.default_rng(cfg.rough_seed)
    x = np.linspace(-HFIELD_SIZE[0], HFIELD_SIZE[0], HFIELD_RES)
    y = np.linspace(-HFIELD_SIZE[1], HFIELD_SIZE[1], HFIELD_RES)
    xx, yy = np.meshgrid(x, y)
    h = np.zeros_like(xx)
    for _ in range(12):
        kx, ky = rng.uniform(0.5, 3.0, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        h += np.sin(kx * xx + ky * yy + phase)
    h = (h - h.min()) / (h.max() - h.min())
    spawn = np.clip(np.hypot(xx, yy) / 1.0, 0.0, 1.0)  # flat within 1 m of the origin
    return (h * spawn).astype(np.float32)


def make_mjcf(cfg: ModelConfig = ModelConfig()) -> str:
    """The Go2 MJCF as a string (no files written, no meshes)."""
    desc = load_description()
    children: dict[str, list[dict]] = {}
    for body in desc["bodies"]:
        children.setdefault(body["parent"], []).append(body)
    (root,) = children["world"]
    tau = torque_limits()
    lo, hi = joint_limits()
    actuators = "\n".join(
        f'    <position name="{n[:-6]}" joint="{n}" kp="{cfg.kp:.9g}" kv="{cfg.kd:.9g}" '
        f'ctrlrange="{lo[i]:.9g} {hi[i]:.9g}" forcerange="{-tau[i]:.9g} {tau[i]:.9g}"/>'
        for i, n in enumerate(JOINT_NAMES)
    )
    home = home_qpos()
    terrain_asset, floor = _terrain_xml(cfg)
    return f"""<mujoco model="go2">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{cfg.timestep:.9g}" iterations="{cfg.solver_iterations}" ls_iterations="{cfg.ls_iterations}" cone="{cfg.cone}" impratio="{cfg.impratio:.9g}">
    <flag eulerdamp="disable"/>
  </option>
  <visual>
    <global offwidth="640" offheight="480"/>
    <headlight diffuse="0.6 0.6 0.6" ambient="0.3 0.3 0.3" specular="0 0 0"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.2 0.3 0.4" rgb2="0.1 0.2 0.3" width="512" height="512" mark="edge" markrgb="0.8 0.8 0.8"/>
    <material name="grid" texture="grid" texrepeat="1 1" texuniform="true" reflectance="0.1"/>
    {terrain_asset}
  </asset>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1" directional="true"/>
    {floor}
{_body_xml(root, children, cfg, 2)}
  </worldbody>
  <actuator>
{actuators}
  </actuator>
  <keyframe>
    <key name="home" qpos="{_fmt(home)}" ctrl="{_fmt(home[7:])}"/>
  </keyframe>
</mujoco>
"""


def make_model(cfg: ModelConfig = ModelConfig()):
    """Compile the MJCF into a ``mujoco.MjModel`` (heightfield filled for the rough terrain)."""
    import mujoco

    model = mujoco.MjModel.from_xml_string(make_mjcf(cfg))
    if cfg.terrain == "rough":
        model.hfield_data[:] = rough_heights(cfg).ravel()
    return model


def standing_height(q_joints: np.ndarray, cfg: ModelConfig = ModelConfig()) -> float:
    """Base height at which the lowest foot sphere touches z=0 for joint angles ``q_joints`` [12].

    Kinematic (no load): the nominal height of a pose.
    """
    import mujoco

    model = make_model(dataclasses.replace(cfg, terrain="flat"))
    data = mujoco.MjData(model)
    data.qpos[:] = home_qpos()
    data.qpos[2] = 1.0
    data.qpos[7:] = q_joints
    mujoco.mj_kinematics(model, data)
    lowest = min(
        data.geom_xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f)][2] for f in FEET
    )
    radius = load_description()["foot_contact"]["radius"]
    return 1.0 - (lowest - radius)
