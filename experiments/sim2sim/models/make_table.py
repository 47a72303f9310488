"""Parameter table: three MuJoCo models of the Unitree Go2, compared from their compiled models.

Models (columns):

* ``ours_env_feet`` / ``ours_env_full``: the MJCF that dmpc_jax writes (``dmpc_jax.robot.go2.make_model``)
  with the environment's defaults (``EnvConfig().model``: sim_dt 0.004, kp 40, kd 1, 1 solver
  iteration, 5 line-search iterations, foot condim 3), feet-only and full contacts.
* ``ours_sim2sim``: the same MJCF as dmpc_jax's own sim2sim robot process builds it
  (``dmpc_jax.deploy.sim_robot.SimRobot``: full contacts, 1 ms, 20/10 iterations, actuators zeroed,
  PD torques written to qfrc_applied every physics step).
* ``unitree``: Unitree's ``unitree_robots/go2/scene.xml`` (+ ``go2.xml``) from unitreerobotics/unitree_mujoco.
* ``menagerie``: MuJoCo Menagerie ``unitree_go2/scene.xml`` (+ ``go2.xml``).
* ``menagerie_mjx``: MuJoCo Menagerie ``unitree_go2/scene_mjx.xml`` (+ ``go2_mjx.xml``), if present.

Every number in the tables comes from a compiled ``mujoco.MjModel`` (and one ``mj_forward`` with the
``home`` keyframe pressed 1 mm into the floor for the effective foot-floor contact), not from XML text.
The visual meshes of the external models are stripped before compiling (all their visual geoms are
``contype=conaffinity=0`` and every body has an explicit ``<inertial>``, so this changes no dynamics);
when the mesh files are readable (the Unitree mirror has them) the unstripped model is compiled too
and the script checks that the dynamics arrays are identical.

The runtime facts that are not in the MJCF (the Unitree bridge's physics step and where it computes
the PD) are read from the Unitree sources by pattern and stored with the matched source lines.

Usage (paths are a work tree or a bare git mirror; ``--unitree-rev``/``--menagerie-rev`` pick the
revision of a git directory, default HEAD)::

    .venv/bin/python experiments/sim2sim/models/make_table.py \
        --unitree /work/.mirror/unitreerobotics+unitree_mujoco/repo \
        --menagerie /tmp/menagerie_snapshot \
        --menagerie-note "..." --out experiments/sim2sim/models
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO_ROOT))

LEG = "FL"
JOINTS = [f"{leg}_{p}_joint" for leg in ("FL", "FR", "RL", "RR") for p in ("hip", "thigh", "calf")]
TABLE_JOINTS = ["FL_hip_joint", "FL_thigh_joint", "FL_calf_joint", "RL_thigh_joint"]
FEET = ("FL", "FR", "RL", "RR")


# ----------------------------------------------------------------------------------------------
# reading a work tree or a bare git mirror


class Tree:
    """Files of a checkout: read from disk, or via ``git show REV:path`` for a bare repository."""

    def __init__(self, root: str, rev: str = "HEAD", note: str | None = None):
        self.root = Path(root)
        self.rev = rev
        self.note = note
        self.bare = self._git("rev-parse", "--is-bare-repository") == "true"
        self.commit = self._git("rev-parse", rev) if self._git("rev-parse", "--git-dir") else None
        if self.commit and not self.bare:
            top = Path(self._git("rev-parse", "--show-toplevel") or "")
            if top.resolve() != self.root.resolve():
                self.commit = (
                    None  # a folder inside some other repository: not this source's commit
                )

    def _git(self, *args) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(self.root), *args], capture_output=True, text=True, check=True
            )
        except (subprocess.CalledProcessError, FileNotFoundError):
            return None
        return out.stdout.strip()

    def exists(self, rel: str) -> bool:
        if self.bare:
            return (
                subprocess.run(
                    ["git", "-C", str(self.root), "cat-file", "-e", f"{self.rev}:{rel}"],
                    capture_output=True,
                ).returncode
                == 0
            )
        return (self.root / rel).is_file()

    def read(self, rel: str) -> bytes:
        if self.bare:
            return subprocess.run(
                ["git", "-C", str(self.root), "show", f"{self.rev}:{rel}"],
                capture_output=True,
                check=True,
            ).stdout
        return (self.root / rel).read_bytes()

    def describe(self) -> dict:
        return {
            "path": str(self.root),
            "kind": "bare git mirror (git show)" if self.bare else "work tree",
            "rev": self.rev if self.bare else None,
            "commit": self.commit,
            "note": self.note,
        }


def find_prefix(tree: Tree, candidates: list[str], probe: str) -> str:
    for prefix in candidates:
        if tree.exists(f"{prefix}{probe}"):
            return prefix
    raise FileNotFoundError(f"{probe} not found under {tree.root} (tried {candidates})")


# ----------------------------------------------------------------------------------------------
# compiling the external models


def strip_meshes(xml: bytes, only: set[str] | None = None) -> bytes:
    """Remove <mesh> assets and every geom that uses a mesh (``only``: just these mesh files)."""
    root = ET.fromstring(xml)
    names = {}
    for mesh in root.iter("mesh"):
        f = mesh.attrib.get("file", "")
        names[mesh.attrib.get("name", Path(f).stem)] = f
    drop = lambda f: only is None or f in only  # noqa: E731
    for parent in root.iter():
        for child in list(parent):
            if child.tag == "mesh" and drop(child.attrib.get("file", "")):
                parent.remove(child)
            elif (
                child.tag == "geom"
                and "mesh" in child.attrib
                and drop(names.get(child.attrib["mesh"], ""))
            ):
                parent.remove(child)
    return ET.tostring(root)


def mesh_files(xml: bytes) -> list[str]:
    return [m.attrib["file"] for m in ET.fromstring(xml).iter("mesh") if "file" in m.attrib]


def compile_external(tree: Tree, prefix: str, scene: str, robot: str):
    """(stripped model, info) for ``prefix/scene`` including ``prefix/robot``."""
    scene_xml = tree.read(prefix + scene)
    robot_xml = tree.read(prefix + robot)
    meshes = mesh_files(robot_xml)
    info = {
        "files": {
            prefix + scene: hashlib.sha256(scene_xml).hexdigest(),
            prefix + robot: hashlib.sha256(robot_xml).hexdigest(),
        },
        "meshes_stripped": len(meshes),
    }
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / scene).write_bytes(scene_xml)
        (Path(tmp) / robot).write_bytes(strip_meshes(robot_xml))
        model = mujoco.MjModel.from_xml_path(str(Path(tmp) / scene))
    mesh_dir = ET.fromstring(robot_xml).find("compiler").attrib.get("meshdir", "")
    rels = [f"{prefix}{mesh_dir}/{f}" if mesh_dir else prefix + f for f in meshes]
    present = [tree.exists(r) for r in rels]
    info["mesh_files_missing"] = [f for f, ok in zip(meshes, present, strict=True) if not ok]
    if meshes and any(present):
        missing = set(info["mesh_files_missing"])
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / scene).write_bytes(scene_xml)
            (Path(tmp) / robot).write_bytes(
                strip_meshes(robot_xml, only=missing) if missing else robot_xml
            )
            (Path(tmp) / mesh_dir).mkdir(parents=True, exist_ok=True)
            for f, r, ok in zip(meshes, rels, present, strict=True):
                if ok:
                    (Path(tmp) / mesh_dir / f).write_bytes(tree.read(r))
            full = mujoco.MjModel.from_xml_path(str(Path(tmp) / scene))
        same = {
            name: bool(np.array_equal(getattr(model, name), getattr(full, name)))
            for name in (
                "body_mass", "body_ipos", "body_iquat", "body_inertia", "dof_armature",
                "dof_damping", "dof_frictionloss", "jnt_range", "actuator_gainprm",
                "actuator_biasprm", "actuator_ctrlrange", "actuator_forcerange",
            )
        }  # fmt: skip
        coll = lambda m: np.flatnonzero((m.geom_contype | m.geom_conaffinity) != 0)  # noqa: E731
        same["collision_geom_size"] = bool(
            np.array_equal(model.geom_size[coll(model)], full.geom_size[coll(full)])
        )
        same["collision_geom_friction"] = bool(
            np.array_equal(model.geom_friction[coll(model)], full.geom_friction[coll(full)])
        )
        info["with_meshes_compiled"] = len(meshes) - len(missing)
        info["stripped_equals_unstripped"] = same
        if not all(same.values()):
            raise RuntimeError(f"stripping the meshes changed the dynamics: {same}")
    else:
        info["with_meshes_compiled"] = 0
    return model, info


# ----------------------------------------------------------------------------------------------
# extracting the parameters


def enum_name(enum, value) -> str:
    for name, member in enum.__members__.items():
        if int(member) == int(value):
            return name
    return str(value)


def flags(enum, bits: int) -> list[str]:
    return [n for n, v in enum.__members__.items() if not n.startswith("mjN") and bits & int(v)]


def fl(x):
    return [float(v) for v in np.atleast_1d(x)]


def obj_id(m, kind, name):
    return mujoco.mj_name2id(m, kind, name)


def base_body(m) -> int:
    free = np.flatnonzero(m.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    return int(m.jnt_bodyid[free[0]])


def body_row(m, b: int) -> dict:
    return {
        "name": mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b),
        "pos_in_parent": fl(m.body_pos[b]),
        "mass": float(m.body_mass[b]),
        "com": fl(m.body_ipos[b]),
        "inertia_quat": fl(m.body_iquat[b]),
        "diag_inertia": fl(m.body_inertia[b]),
    }


def geom_row(m, g: int) -> dict:
    return {
        "name": mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g),
        "type": enum_name(mujoco.mjtGeom, m.geom_type[g]).replace("mjGEOM_", "").lower(),
        "size": fl(m.geom_size[g]),
        "pos_in_body": fl(m.geom_pos[g]),
        "friction": fl(m.geom_friction[g]),
        "condim": int(m.geom_condim[g]),
        "priority": int(m.geom_priority[g]),
        "solref": fl(m.geom_solref[g]),
        "solimp": fl(m.geom_solimp[g]),
        "solmix": float(m.geom_solmix[g]),
        "margin": float(m.geom_margin[g]),
        "gap": float(m.geom_gap[g]),
        "contype": int(m.geom_contype[g]),
        "conaffinity": int(m.geom_conaffinity[g]),
    }


def actuator_row(m, a: int) -> dict:
    gain, bias = m.actuator_gainprm[a], m.actuator_biasprm[a]
    gaintype = enum_name(mujoco.mjtGain, m.actuator_gaintype[a])
    biastype = enum_name(mujoco.mjtBias, m.actuator_biastype[a])
    if biastype == "mjBIAS_AFFINE" and gain[0] > 0 and np.isclose(bias[1], -gain[0]):
        kind, kp, kd = "position servo (PD in MuJoCo)", float(gain[0]), float(-bias[2])
    elif biastype == "mjBIAS_NONE" and gain[0] == 1.0:
        kind, kp, kd = "motor (ctrl = torque)", None, None
    elif gain[0] == 0.0 and not np.any(bias[:3]):
        kind, kp, kd = "zeroed (force 0; torque via qfrc_applied)", None, None
    else:
        kind, kp, kd = "other", None, None
    j = int(m.actuator_trnid[a, 0])
    return {
        "name": mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, a),
        "joint": mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j),
        "kind": kind,
        "kp": kp,
        "kd": kd,
        "gaintype": gaintype,
        "biastype": biastype,
        "dyntype": enum_name(mujoco.mjtDyn, m.actuator_dyntype[a]),
        "gainprm": fl(gain[:3]),
        "biasprm": fl(bias[:3]),
        "ctrllimited": bool(m.actuator_ctrllimited[a]),
        "ctrlrange": fl(m.actuator_ctrlrange[a]),
        "forcelimited": bool(m.actuator_forcelimited[a]),
        "forcerange": fl(m.actuator_forcerange[a]),
    }


def joint_row(m, name: str) -> dict:
    j = obj_id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
    d = int(m.jnt_dofadr[j])
    return {
        "range": fl(m.jnt_range[j]),
        "limited": bool(m.jnt_limited[j]),
        "armature": float(m.dof_armature[d]),
        "damping": float(m.dof_damping[d]),
        "frictionloss": float(m.dof_frictionloss[d]),
        "stiffness": float(m.jnt_stiffness[j]),
        "actfrclimited": bool(m.jnt_actfrclimited[j]),
        "actfrcrange": fl(m.jnt_actfrcrange[j]),
        "velocity_limit": None,  # MJCF has no joint velocity limit
    }


def option_row(m) -> dict:
    o = m.opt
    return {
        "timestep": float(o.timestep),
        "integrator": enum_name(mujoco.mjtIntegrator, o.integrator).replace("mjINT_", ""),
        "solver": enum_name(mujoco.mjtSolver, o.solver).replace("mjSOL_", ""),
        "iterations": int(o.iterations),
        "ls_iterations": int(o.ls_iterations),
        "tolerance": float(o.tolerance),
        "ls_tolerance": float(o.ls_tolerance),
        "noslip_iterations": int(o.noslip_iterations),
        "cone": enum_name(mujoco.mjtCone, o.cone).replace("mjCONE_", ""),
        "impratio": float(o.impratio),
        "gravity": fl(o.gravity),
        "disabled": [f.replace("mjDSBL_", "") for f in flags(mujoco.mjtDisableBit, o.disableflags)],
        "enabled": [f.replace("mjENBL_", "") for f in flags(mujoco.mjtEnableBit, o.enableflags)],
    }


def foot_contact(m) -> dict:
    """Foot-floor contacts with the home keyframe pressed 1 mm into the floor (one mj_forward)."""
    d = mujoco.MjData(m)
    key = obj_id(m, mujoco.mjtObj.mjOBJ_KEY, "home")
    mujoco.mj_resetDataKeyframe(m, d, key)
    d.qpos[2] = 1.0
    mujoco.mj_kinematics(m, d)
    feet = [obj_id(m, mujoco.mjtObj.mjOBJ_GEOM, f) for f in FEET]
    lowest = min(d.geom_xpos[g][2] - m.geom_size[g][0] for g in feet)
    d.qpos[2] = 1.0 - lowest - 0.001
    mujoco.mj_forward(m, d)
    floor = obj_id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    rows = []
    for c in d.contact[: d.ncon]:
        pair = {int(c.geom1), int(c.geom2)}
        if floor in pair and pair & set(feet):
            rows.append(
                {
                    "dim": int(c.dim),
                    "friction": fl(c.friction),
                    "solref": fl(c.solref),
                    "solimp": fl(c.solimp),
                    "includemargin": float(c.includemargin),
                    "dist": float(c.dist),
                }
            )
    out = dict(rows[0]) if rows else {}
    out["n_foot_contacts"] = len(rows)
    out["n_contacts_total"] = int(d.ncon)
    out["base_height_m"] = float(d.qpos[2])
    return out


def collision_summary(m) -> dict:
    floor = obj_id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    robot = [
        g for g in range(m.ngeom)
        if m.geom_bodyid[g] != 0 and (m.geom_contype[g] or m.geom_conaffinity[g])
    ]  # fmt: skip
    with_floor = [
        g for g in robot
        if (m.geom_contype[g] & m.geom_conaffinity[floor])
        or (m.geom_contype[floor] & m.geom_conaffinity[g])
    ]  # fmt: skip
    self_pairs = any(
        (m.geom_contype[a] & m.geom_conaffinity[b]) or (m.geom_contype[b] & m.geom_conaffinity[a])
        for a in robot for b in robot if m.geom_bodyid[a] != m.geom_bodyid[b]
    )  # fmt: skip
    others = [g for g in range(m.ngeom) if m.geom_bodyid[g] == 0 and g != floor]
    names = lambda gs: sorted(  # noqa: E731
        {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or f"#{g}" for g in gs}
    )
    return {
        "robot_collision_geoms": len(robot),
        "robot_geoms_touching_floor": len(with_floor),
        "named_geoms_touching_floor": [n for n in names(with_floor) if not n.startswith("#")],
        "self_collision_possible": bool(self_pairs),
        "floor": geom_row(m, floor),
        "other_world_geoms": len(others),
        "other_world_geoms_min_x": (
            float(min(m.geom_pos[g][0] - m.geom_size[g][0] for g in others)) if others else None
        ),
    }


def summarize(m, source: dict, runtime: dict) -> dict:
    b0 = base_body(m)
    bodies = {"base": body_row(m, b0)}
    for part in ("hip", "thigh", "calf", "foot"):
        b = obj_id(m, mujoco.mjtObj.mjOBJ_BODY, f"{LEG}_{part}")
        bodies[part] = body_row(m, b) if b >= 0 else None
    all_bodies = {
        mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b): body_row(m, b) for b in range(1, m.nbody)
    }
    foot = obj_id(m, mujoco.mjtObj.mjOBJ_GEOM, LEG)
    return {
        "source": source,
        "runtime": runtime,
        "total_mass": float(mujoco.mj_getTotalmass(m)),
        "bodies": bodies,
        "all_bodies": all_bodies,
        "joints": {n: joint_row(m, n) for n in JOINTS},
        "actuators": [actuator_row(m, a) for a in range(m.nu)],
        "foot_geom": geom_row(m, foot),
        "collision": collision_summary(m),
        "foot_floor_contact": foot_contact(m),
        "option": option_row(m),
        "home_qpos": fl(m.key_qpos[obj_id(m, mujoco.mjtObj.mjOBJ_KEY, "home")]),
    }


# ----------------------------------------------------------------------------------------------
# runtime facts from the Unitree sources


def grep(text: str, pattern: str) -> str | None:
    hit = re.search(pattern, text, flags=re.M)
    return hit.group(0).strip() if hit else None


def unitree_runtime(tree: Tree) -> dict:
    out: dict = {}
    rt: dict = {}
    if tree.exists("simulate_python/config.py"):
        cfg = tree.read("simulate_python/config.py").decode()
        line = grep(cfg, r"^SIMULATE_DT\s*=\s*[0-9.eE+-]+.*$")
        rt["python_simulate_dt_line"] = line
        rt["python_simulate_dt"] = float(re.search(r"=\s*([0-9.eE+-]+)", line).group(1))
    if tree.exists("simulate_python/unitree_mujoco.py"):
        main = tree.read("simulate_python/unitree_mujoco.py").decode()
        rt["python_timestep_override_line"] = grep(main, r"^.*opt\.timestep\s*=.*$")
    if tree.exists("simulate_python/unitree_sdk2py_bridge.py"):
        br = tree.read("simulate_python/unitree_sdk2py_bridge.py").decode()
        handler = re.search(r"def LowCmdHandler\(.*?\n(?=    def )", br, flags=re.S)
        rt["python_pd_site"] = (
            "LowCmdHandler (the rt/lowcmd subscriber callback): mj_data.ctrl is set once per "
            "received LowCmd and held until the next one"
            if handler and "ctrl[i]" in handler.group(0)
            else None
        )
        rt["python_pd_source"] = " ".join(handler.group(0).split()) if handler else None
    if tree.exists("simulate/src/unitree_sdk2_bridge.h"):
        h = tree.read("simulate/src/unitree_sdk2_bridge.h").decode()
        thread = re.search(r'RecurrentThread>\(\s*"unitree_bridge",\s*\w+,\s*(\d+)', h, flags=re.S)
        rt["cpp_bridge_period_us"] = int(thread.group(1)) if thread else None
        rt["cpp_pd_source"] = grep(h, r"mj_data_->ctrl\[i\]\s*=.*$")
    out["unitree_mujoco"] = rt
    out["pd"] = (
        "motor actuators: ctrl is a torque, ctrl = tau + kp (q* - q) + kd (dq* - dq) with kp, kd, "
        "q*, dq*, tau from LowCmd, clamped by the motor ctrlrange"
    )
    return out


# ----------------------------------------------------------------------------------------------
# markdown


def g(x, digits=6):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    if isinstance(x, (list, tuple)):
        return "(" + ", ".join(g(v, digits) for v in x) + ")"
    return str(x)


def table(cols: list[str], rows: list[tuple[str, list]]) -> str:
    head = "| | " + " | ".join(f"`{c}`" for c in cols) + " |"
    sep = "|---|" + "---|" * len(cols)
    body = ["| " + label + " | " + " | ".join(g(v) for v in vals) + " |" for label, vals in rows]
    return "\n".join([head, sep, *body])


def rel_diff(a: dict, b: dict) -> float:
    """Largest relative difference of mass, com and diag inertia over the bodies both have."""
    worst = 0.0
    for name, ra in a["all_bodies"].items():
        rb = b["all_bodies"].get(name) or (
            b["all_bodies"].get("base_link") if name == "base" else None
        )
        if rb is None:
            continue
        for k in ("mass", "com", "diag_inertia"):
            va, vb = np.atleast_1d(ra[k]), np.atleast_1d(rb[k])
            scale = np.maximum(np.abs(vb), 1e-12)
            mask = np.abs(vb) > 1e-9
            if mask.any():
                worst = max(worst, float(np.max(np.abs(va - vb)[mask] / scale[mask])))
    return worst


def markdown(res: dict, command: str) -> str:
    models = res["models"]
    cols = list(models)
    M = [models[c] for c in cols]
    out = []
    out.append("# Three MuJoCo models of the Unitree Go2: parameter table\n")
    out.append(
        'Deliverable 2 of "One robot, two simulators". Every number below comes from a compiled '
        "`mujoco.MjModel` (MuJoCo " + res["mujoco_version"] + "), not from XML text; the effective "
        "foot-floor contact is read from `mjData.contact` after one `mj_forward` with the `home` "
        "keyframe pressed 1 mm into the floor. All numbers: `results.json`.\n"
    )
    out.append("Produced by:\n\n```\n" + command + "\n```\n")
    out.append(
        "`--unitree` and `--menagerie` take a work tree or a bare git mirror (read with "
        "`git show REV:path`); `--menagerie` may also be a folder holding `unitree_go2/`, and may be "
        "left out. A Menagerie mirror was over the fetch size limit here, so its four XML files "
        "were copied verbatim into a scratch folder (commits in the note above; sha256 of each file "
        "in `results.json`).\n"
    )
    out.append("## Models\n")
    for c, m in zip(cols, M, strict=True):
        s = m["source"]
        out.append(f"- `{c}`: {s['what']}")
    out.append("")
    out.append(
        "Sources: "
        + "; ".join(
            f"{k}: {v['path']} ({v['kind']}"
            + (f", commit {v['commit']}" if v.get("commit") else "")
            + (f"; {v['note']}" if v.get("note") else "")
            + ")"
            for k, v in res["sources"].items()
        )
        + ".\n"
    )
    strip = [
        f"`{c}` ({m['source']['meshes_stripped']} meshes"
        + (
            f"; also compiled with the {m['source']['with_meshes_compiled']} mesh files the mirror "
            f"holds (missing: {', '.join(m['source']['mesh_files_missing']) or 'none'}): identical "
            "dynamics arrays"
            if m["source"].get("with_meshes_compiled")
            else "; mesh files not available"
        )
        + ")"
        for c, m in zip(cols, M, strict=True)
        if m["source"].get("meshes_stripped")
    ]
    out.append(
        "Meshes: the `<mesh>` assets and the mesh (visual) geoms were removed before compiling "
        + ", ".join(strip)
        + ". Those geoms are `contype=conaffinity=0` and every body has an explicit `<inertial>`, "
        "so no dynamics change; where mesh files were readable the script compiled the model with "
        "them too and checked that masses, inertias, joint, actuator and collision-geom arrays "
        "are bit-identical.\n"
    )

    out.append("## Masses, centres of mass, inertias\n")
    rows = [("total mass (kg)", [m["total_mass"] for m in M])]
    for part in ("base", "hip", "thigh", "calf", "foot"):
        bs = [m["bodies"][part] for m in M]
        label = f"{LEG}_{part}" if part != "base" else "base"
        rows.append((f"{label}: body name", [b["name"] if b else "(none)" for b in bs]))
        rows.append((f"{label}: mass (kg)", [b["mass"] if b else None for b in bs]))
        rows.append((f"{label}: CoM in body (m)", [b["com"] if b else None for b in bs]))
        rows.append(
            (f"{label}: diag inertia (kg m²)", [b["diag_inertia"] if b else None for b in bs])
        )
    out.append(table(cols, rows))
    ref = models.get("unitree")
    if ref:
        out.append(
            "\nLargest relative difference over all bodies (mass, CoM, principal inertia) against "
            "`unitree`: "
            + ", ".join(
                f"`{c}` {rel_diff(m, ref):.2e}"
                for c, m in zip(cols, M, strict=True)
                if c != "unitree"
            )
            + ". Ours carries the description rounded to 7 decimal places (e.g. calf inertia "
            "5.31e-05 vs 5.31397e-05).\n"
        )

    out.append("## Joints\n")
    rows = []
    for j in TABLE_JOINTS:
        js = [m["joints"][j] for m in M]
        rows.append((f"{j}: range (rad)", [x["range"] for x in js]))
        rows.append((f"{j}: armature", [x["armature"] for x in js]))
        rows.append((f"{j}: damping (N m s/rad)", [x["damping"] for x in js]))
        rows.append((f"{j}: frictionloss (N m)", [x["frictionloss"] for x in js]))
    rows.append(("velocity limits", ["none (MJCF has none)" for _ in M]))
    out.append(table(cols, rows))
    out.append(
        "\nAll four legs share these values in every model except that the rear thighs "
        "(`RL`/`RR`) have range (-0.5236, 4.5379) where a model distinguishes front and back "
        "(see `results.json` for all 12 joints).\n"
    )

    out.append("## Actuators\n")
    rows = []
    for j in ("FL_hip_joint", "FL_thigh_joint", "FL_calf_joint"):
        acts = [next(a for a in m["actuators"] if a["joint"] == j) for m in M]
        rows.append((f"{j}: model", [a["kind"] for a in acts]))
        rows.append(
            (f"{j}: kp / kd in MJCF", [(a["kp"], a["kd"]) if a["kp"] else "-" for a in acts])
        )
        rows.append(
            (f"{j}: ctrlrange", [a["ctrlrange"] if a["ctrllimited"] else "none" for a in acts])
        )
        rows.append(
            (f"{j}: forcerange", [a["forcerange"] if a["forcelimited"] else "none" for a in acts])
        )
        rows.append(
            (
                f"{j}: actuatorfrcrange",
                [
                    m["joints"][j]["actfrcrange"] if m["joints"][j]["actfrclimited"] else "none"
                    for m in M
                ],
            )
        )
    rows.append(
        ("actuator order", [" ".join(a["name"] for a in m["actuators"][:6]) + " ..." for m in M])
    )
    rows.append(("PD / torque at run time", [m["runtime"]["pd"] for m in M]))
    rows.append(("PD update rate", [m["runtime"]["pd_rate"] for m in M]))
    rows.append(("torque limit at run time", [m["runtime"]["torque_limit"] for m in M]))
    out.append(table(cols, rows))

    out.append("\n## Feet and contacts\n")
    rows = []
    fg = [m["foot_geom"] for m in M]
    rows.append(("foot geom: type, radius (m)", [f"{f['type']} {f['size'][0]:.4g}" for f in fg]))
    rows.append(("foot geom: pos in calf (m)", [f["pos_in_body"] for f in fg]))
    rows.append(("foot geom: friction (slide, spin, roll)", [f["friction"] for f in fg]))
    rows.append(("foot geom: condim", [f["condim"] for f in fg]))
    rows.append(("foot geom: priority", [f["priority"] for f in fg]))
    rows.append(("foot geom: solref", [f["solref"] for f in fg]))
    rows.append(("foot geom: solimp", [f["solimp"] for f in fg]))
    rows.append(("foot geom: margin", [f["margin"] for f in fg]))
    fl_ = [m["collision"]["floor"] for m in M]
    rows.append(("floor: friction", [f["friction"] for f in fl_]))
    rows.append(("floor: condim", [f["condim"] for f in fl_]))
    rows.append(("floor: solref / solimp", [f"{g(f['solref'])} / {g(f['solimp'])}" for f in fl_]))
    cs = [m["foot_floor_contact"] for m in M]
    rows.append(
        ("**foot-floor contact: friction (as simulated)**", [c.get("friction") for c in cs])
    )
    rows.append(("**foot-floor contact: dim**", [c.get("dim") for c in cs]))
    rows.append(("foot-floor contact: solref", [c.get("solref") for c in cs]))
    rows.append(("foot-floor contact: solimp", [c.get("solimp") for c in cs]))
    rows.append(("foot-floor contact: includemargin", [c.get("includemargin") for c in cs]))
    col = [m["collision"] for m in M]
    rows.append(
        (
            "robot collision geoms / touching floor",
            [f"{c['robot_collision_geoms']} / {c['robot_geoms_touching_floor']}" for c in col],
        )
    )
    rows.append(("self-collision possible", [c["self_collision_possible"] for c in col]))
    rows.append(("other world geoms in the scene", [c["other_world_geoms"] for c in col]))
    out.append(table(cols, rows))

    out.append("\n## Options\n")
    rows = []
    ops = [m["option"] for m in M]
    for k in ("timestep", "integrator", "solver", "iterations", "ls_iterations", "tolerance",
              "ls_tolerance", "noslip_iterations", "cone", "impratio"):  # fmt: skip
        rows.append((k, [o[k] for o in ops]))
    rows.append(("disabled flags", [", ".join(o["disabled"]) or "-" for o in ops]))
    rows.append(("enabled flags", [", ".join(o["enabled"]) or "-" for o in ops]))
    rows.append(("**physics step at run time (s)**", [m["runtime"]["physics_dt"] for m in M]))
    rows.append(("control period (s)", [m["runtime"]["control_dt"] for m in M]))
    out.append(table(cols, rows))
    out.append("")
    out.append(res["differences_md"])
    return "\n".join(out) + "\n"


def checks_against(a: dict, ref: dict) -> dict:
    """Which of kinematics, joint ranges, torque limits and home pose ``a`` shares with ``ref``."""

    def body(name):
        return ref["all_bodies"].get(name) or (
            ref["all_bodies"].get("base_link") if name == "base" else None
        )

    pairs = [(ra, body(n)) for n, ra in a["all_bodies"].items() if body(n) is not None]
    torque = lambda act: act["forcerange"] if act["forcelimited"] else act["ctrlrange"]  # noqa: E731
    ref_act = {x["joint"]: x for x in ref["actuators"]}
    return {
        "bodies_matched": len(pairs),
        "body_positions_equal": all(
            np.allclose(ra["pos_in_parent"], rb["pos_in_parent"], atol=1e-6) for ra, rb in pairs
        ),
        "joint_ranges_equal": all(
            np.allclose(a["joints"][j]["range"], ref["joints"][j]["range"]) for j in JOINTS
        ),
        "torque_limits_equal": all(
            np.allclose(torque(x), torque(ref_act[x["joint"]])) for x in a["actuators"]
        ),
        "home_qpos_equal": bool(np.allclose(a["home_qpos"], ref["home_qpos"])),
        "max_rel_diff_mass_com_inertia": rel_diff(a, ref),
    }


def differences(models: dict) -> str:
    o, u = models["ours_env_feet"], models["unitree"]
    me = models.get("menagerie")
    s2s = models["ours_sim2sim"]
    j = "FL_calf_joint"
    oc, uc = o["foot_floor_contact"], u["foot_floor_contact"]
    mc = me["foot_floor_contact"] if me else None
    ur = u["runtime"]["unitree_mujoco"]
    dr = o["runtime"]["randomization"]
    lines = ["## Differences that could change how the controller walks (ranked by judgement)\n"]
    lines.append(
        f"1. **Foot-ground friction.** As simulated, the foot-floor contact has sliding friction "
        f"{oc['friction'][0]:g} in ours (foot {o['foot_geom']['friction'][0]:g}, floor "
        f"{o['collision']['floor']['friction'][0]:g}, no priority, so MuJoCo takes the max; training "
        f"randomises floor and feet together to U{tuple(dr['friction'])}), "
        f"{uc['friction'][0]:g} in Unitree's model (foot priority {u['foot_geom']['priority']} wins)"
        + (f" and {mc['friction'][0]:g} in Menagerie" if mc else "")
        + f". Unitree's {uc['friction'][0]:g} sits at the bottom of our randomisation range and is "
        f"{oc['friction'][0] / uc['friction'][0]:.1f}x lower than the nominal contact we train and "
        "plan on: expect foot slip in stance and on push-off."
    )
    lines.append(
        f"2. **Passive joint damping.** {o['joints'][j]['damping']:g} N m s/rad in ours "
        f"(x U{tuple(dr['joint_damping_scale'])} in training) and Menagerie, "
        f"{u['joints'][j]['damping']:g} in Unitree's. With our kd = {o['runtime']['kd']:g} the joint "
        f"sees {o['joints'][j]['damping'] + o['runtime']['kd']:g} N m s/rad of total damping in "
        f"training but {u['joints'][j]['damping'] + o['runtime']['kd']:g} under Unitree's model with "
        f"the same LowCmd gains, "
        f"{(o['joints'][j]['damping'] + o['runtime']['kd']) / (u['joints'][j]['damping'] + o['runtime']['kd']):.1f}x "
        "less: legs swing faster and ring more after touchdown. "
        "(frictionloss 0.2 N m and armature 0.01 are the same everywhere.)"
    )
    lines.append(
        f"3. **Solver and friction cone.** Ours: {o['option']['solver']}, "
        f"{o['option']['iterations']} iteration / {o['option']['ls_iterations']} line-search, "
        f"{o['option']['cone'].lower()} cone, impratio {o['option']['impratio']:g}. Unitree "
        + (
            "and Menagerie: "
            if me
            and all(
                me["option"][k] == u["option"][k]
                for k in ("solver", "iterations", "ls_iterations", "cone", "impratio")
            )
            else ": "
        )
        + f"{u['option']['solver']}, {u['option']['iterations']} / {u['option']['ls_iterations']}, "
        f"{u['option']['cone'].lower()} cone, impratio {u['option']['impratio']:g}. Our sim2sim "
        f"robot: {s2s['option']['iterations']} / {s2s['option']['ls_iterations']}, "
        f"{s2s['option']['cone'].lower()}, impratio {s2s['option']['impratio']:g}. One Newton "
        "iteration can leave the contact problem unconverged (softer, slippier stance); an "
        "elliptic cone with impratio 100 makes the friction constraints much stiffer than the "
        "normal one (less creep below the friction limit; MuJoCo documents impratio for elliptic "
        "cones). The same gait sees different slip and stance stiffness."
    )
    lines.append(
        f"4. **Actuator model and PD timing.** Ours trains with MuJoCo position actuators "
        f"(kp {o['runtime']['kp']:g}, kd {o['runtime']['kd']:g}) evaluated every "
        f"{o['option']['timestep']:g} s physics step and clipped by forcerange "
        f"(±23.7 / ±45.43 N m). Unitree's MJCF has torque motors (ctrlrange ±23.7 / ±45.43 N m); "
        f"its Python bridge computes tau + kp (q* - q) + kd (dq* - dq) only when a LowCmd arrives "
        f"and holds that torque until the next (with our 500 Hz LowCmd and its "
        f"{ur.get('python_simulate_dt', float('nan')):g} s step, the torque applied in a step was "
        f"computed from joint sensors up to one step, "
        f"{ur.get('python_simulate_dt', float('nan')) * 1000:g} ms, old); the C++ simulator recomputes it "
        f"every {ur.get('cpp_bridge_period_us', 0) / 1000:g} ms. Our own sim2sim robot recomputes "
        f"it every {s2s['option']['timestep']:g} s step. Same gains, different delay and hold."
    )
    lines.append(
        f"5. **Physics step.** Ours {o['option']['timestep']:g} s (training), our sim2sim "
        f"{s2s['option']['timestep']:g} s, Unitree's Python simulator "
        f"{ur.get('python_simulate_dt', float('nan')):g} s (set at run time; the MJCF leaves the "
        f"default {u['option']['timestep']:g} s, which the C++ simulator uses). Contact stiffness "
        "(solref timeconst 0.02 s) is resolved differently at each step; with 1 solver iteration "
        "ours is the most sensitive to it."
    )
    lines.append(
        f"6. **Foot contact dimension and softness.** Ours: condim {oc['dim']} (sliding friction "
        f"only), solimp {g(oc['solimp'])}. Unitree: condim {uc['dim']} (adds torsional "
        f"{u['foot_geom']['friction'][1]:g} and rolling {u['foot_geom']['friction'][2]:g} friction) "
        f"with default solimp"
        + (
            f"; Menagerie: condim {mc['dim']} with solimp {g(mc['solimp'])} (a much softer, wider "
            "impedance ramp)"
            if mc
            else ""
        )
        + ". Torsional friction resists foot spin during turning; margin 0.001 m in Unitree/"
        "Menagerie lets contacts activate 1 mm before touch."
    )
    lines.append(
        f"7. **Which geoms touch the ground.** Training uses feet-only contacts "
        f"({o['collision']['robot_geoms_touching_floor']} robot geoms touch the floor); Unitree's "
        f"model lets all {u['collision']['robot_collision_geoms']} collision primitives touch the "
        f"floor and each other (self-collision possible: "
        f"{g(u['collision']['self_collision_possible'])}); our sim2sim robot: all "
        f"{s2s['collision']['robot_geoms_touching_floor']} touch the floor, no self-collision. Matters "
        "for falls, knee/shin scuffs in deep crouches, and recoveries, not for a clean trot. "
        f"Unitree's scene.xml also has {u['collision']['other_world_geoms']} boxes (bars and "
        f"steps) on the +x axis, the nearest starting at x = "
        f"{u['collision']['other_world_geoms_min_x']:.2f} m: a forward walk of more than ~1 m "
        "runs into them, so sim2sim there needs a flat scene."
    )
    ck = checks_against(o, u)
    same = all(ck[k] for k in ("body_positions_equal", "joint_ranges_equal",
                               "torque_limits_equal", "home_qpos_equal"))  # fmt: skip
    lines.append(
        "8. **Masses, inertias, kinematics, joint ranges, torque limits, home pose: "
        + ("the same**" if same else f"NOT all the same** ({ck})")
        + f" (checked against Unitree's over {ck['bodies_matched']} bodies and 12 joints; ours is "
        "Menagerie's description rounded to 7 decimal places, largest relative difference in "
        f"mass/CoM/inertia {ck['max_rel_diff_mass_com_inertia']:.1e}). Menagerie's MJX variant differs more "
        "(kp 50 / kd 0.5 position actuators with ±24 N m on every joint, no frictionloss, "
        "0.0175 m feet, narrower ctrlranges) but is not what either sim2sim side runs."
    )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--unitree", required=True, help="unitree_mujoco work tree or bare mirror")
    p.add_argument("--unitree-rev", default="HEAD")
    p.add_argument(
        "--menagerie",
        help="mujoco_menagerie work tree / bare mirror, or a folder with unitree_go2/",
    )
    p.add_argument("--menagerie-rev", default="HEAD")
    p.add_argument("--menagerie-note", help="provenance note recorded with the Menagerie source")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = p.parse_args(argv)

    from dmpc_jax.deploy.sim_robot import SimRobot
    from dmpc_jax.envs.config import EnvConfig
    from dmpc_jax.robot import go2

    env = EnvConfig()
    rnd = env.randomization
    env_rt = {
        "kp": env.kp,
        "kd": env.kd,
        "pd": "position actuator: MuJoCo applies kp (ctrl - q) - kd dq; ctrl = q_default + "
        f"{env.action_scale:g} action, held over the control period",
        "pd_rate": f"every physics step ({env.sim_dt:g} s)",
        "torque_limit": "actuator forcerange",
        "physics_dt": env.sim_dt,
        "control_dt": env.ctrl_dt,
        "randomization": {
            "friction": list(rnd.friction),
            "joint_damping_scale": list(rnd.joint_damping_scale),
            "motor_strength": list(rnd.motor_strength),
            "added_base_mass": list(rnd.added_base_mass),
            "com_offset": list(rnd.com_offset),
        },
    }
    models: dict = {}
    for contacts in ("feet", "full"):
        import dataclasses

        cfg = dataclasses.replace(env.model, contacts=contacts)
        models[f"ours_env_{contacts}"] = summarize(
            go2.make_model(cfg),
            {
                "what": f"dmpc_jax `go2.make_model(EnvConfig().model)` with contacts={contacts!r} "
                f"(what the MJX training/evaluation env simulates)",
                "config": dataclasses.asdict(cfg),
            },
            env_rt,
        )
    robot = SimRobot()
    s2s_dt = float(robot.model.opt.timestep)
    models["ours_sim2sim"] = summarize(
        robot.model,
        {
            "what": "dmpc_jax `deploy.sim_robot.SimRobot()` (our native-MuJoCo sim2sim robot process)"
        },
        {
            "kp": None,
            "kd": None,
            "pd": "qfrc_applied = clip(kp (q* - q) + kd (dq* - dq) + tau, ±torque limit) from the "
            "newest LowCmd (actuators zeroed)",
            "pd_rate": f"every physics step ({s2s_dt:g} s)",
            "torque_limit": "np.clip to go2.torque_limits()",
            "physics_dt": s2s_dt,
            "control_dt": 0.002,
        },
    )

    sources = {"dmpc_jax": {"path": str(REPO_ROOT), "kind": "work tree", "commit": None, "note":
                            "go2_description.json: " + go2.load_description()["about"][:80] + "..."}}  # fmt: skip
    try:
        sources["dmpc_jax"]["commit"] = (
            subprocess.run(
                ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            + " (plus uncommitted changes, if any)"
        )
    except FileNotFoundError:
        pass

    ut = Tree(args.unitree, args.unitree_rev)
    sources["unitree_mujoco"] = ut.describe()
    prefix = find_prefix(ut, ["unitree_robots/go2/", "go2/", ""], "scene.xml")
    model, info = compile_external(ut, prefix, "scene.xml", "go2.xml")
    urt = unitree_runtime(ut)
    py_dt = urt["unitree_mujoco"].get("python_simulate_dt")
    cpp_us = urt["unitree_mujoco"].get("cpp_bridge_period_us")
    urt.update(
        {
            "pd_rate": f"Python: once per received LowCmd, held; C++: every {cpp_us} µs",
            "torque_limit": "motor ctrlrange (ctrl clamped)",
            "physics_dt": f"{py_dt:g} (Python simulate, set at run time); "
            f"{model.opt.timestep:g} (C++ simulate, MJCF)",
            "control_dt": "set by the LowCmd sender",
        }
    )
    models["unitree"] = summarize(
        model,
        {"what": f"Unitree's `{prefix}scene.xml` + `{prefix}go2.xml` (unitree_mujoco)", **info},
        urt,
    )

    if args.menagerie:
        mt = Tree(args.menagerie, args.menagerie_rev, args.menagerie_note)
        sources["mujoco_menagerie"] = mt.describe()
        mprefix = find_prefix(mt, ["unitree_go2/", ""], "go2.xml")
        menagerie_rt = {
            "pd": "motor actuators (ctrl = torque; the PD is the user's)",
            "pd_rate": "user's",
            "torque_limit": "motor ctrlrange (ctrl clamped)",
            "physics_dt": None,
            "control_dt": None,
        }
        model, info = compile_external(mt, mprefix, "scene.xml", "go2.xml")
        menagerie_rt["physics_dt"] = float(model.opt.timestep)
        models["menagerie"] = summarize(
            model, {"what": f"MuJoCo Menagerie `{mprefix}scene.xml` + `{mprefix}go2.xml`", **info},
            menagerie_rt,
        )  # fmt: skip
        if mt.exists(mprefix + "go2_mjx.xml") and mt.exists(mprefix + "scene_mjx.xml"):
            model, info = compile_external(mt, mprefix, "scene_mjx.xml", "go2_mjx.xml")
            models["menagerie_mjx"] = summarize(
                model,
                {
                    "what": f"MuJoCo Menagerie `{mprefix}scene_mjx.xml` + `{mprefix}go2_mjx.xml`",
                    **info,
                },
                {
                    "pd": "position servo in MuJoCo (general, affine bias)",
                    "pd_rate": "every physics step",
                    "torque_limit": "actuator forcerange",
                    "physics_dt": float(model.opt.timestep),
                    "control_dt": None,
                },
            )

    command = (
        "cd "
        + str(REPO_ROOT)
        + " && .venv/bin/python "
        + " ".join(
            [str(Path(__file__).resolve().relative_to(REPO_ROOT))]
            + [a if " " not in a else repr(a) for a in (argv if argv is not None else sys.argv[1:])]
        )
    )
    res = {
        "mujoco_version": mujoco.__version__,
        "command": command,
        "sources": sources,
        "models": models,
    }
    if "unitree" in models:
        res["checks_vs_unitree"] = {
            k: checks_against(m, models["unitree"]) for k, m in models.items() if k != "unitree"
        }
    res["differences_md"] = differences(models)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "README.md").write_text(markdown(res, command))
    print(f"wrote {out / 'results.json'} and {out / 'README.md'}")


if __name__ == "__main__":
    main()
