"""Export round trip: a fresh process that imports no training code gets exactly the in-process
plan from the serialized artifact; corrupt artifacts fail clearly."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import PLAN_CANDIDATES, ROBOT

from dmpc_jax.deploy.export import export_planner
from dmpc_jax.deploy.exported import ExportedPlanner, ExportError
from dmpc_jax.diffusion import model as M
from dmpc_jax.planner.sampler import SamplerConfig

LOADER = """
import json, sys
import numpy as np
from dmpc_jax.deploy.exported import ExportedPlanner
p = ExportedPlanner(sys.argv[1])
inputs = np.load(sys.argv[2])
task = p.default_task()
task["guidance_scale"] = np.float32(0.05)
task["weights"][2] = 1.0
out = p(inputs["s_now"], task, p.no_constraints(), inputs["key"])
np.savez(sys.argv[3], **{k: np.asarray(v) for k, v in out.items()})
banned = [m for m in ("flax", "optax", "brax", "orbax", "dmpc_jax.diffusion", "dmpc_jax.planner")
          if m in sys.modules]
print(json.dumps({"banned_imports": banned, "load_s": p.load_s, "bytes": p.size_bytes}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    cfg, nets, params, _, _ = model
    scfg = SamplerConfig(num_candidates=PLAN_CANDIDATES)
    out = tmp_path_factory.mktemp("export") / "planner"
    meta = export_planner(nets, params, cfg, M.paper_scaler(), scfg, ROBOT, out, source="test")
    return out, meta


def test_round_trip_in_a_fresh_process_is_exact(exported, tmp_path):
    out, meta = exported
    assert meta["platforms"] == ["cpu", "cuda"]
    s_now = np.zeros(49, np.float32)
    s_now[6:9] = [0, 0, -1]
    s_now[9] = 1.6
    key = np.asarray(jax.random.key_data(jax.random.PRNGKey(5)), np.uint32)
    np.savez(tmp_path / "in.npz", s_now=s_now, key=key)
    res = subprocess.run(
        [sys.executable, "-c", LOADER, str(out), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["banned_imports"] == []
    loaded = np.load(tmp_path / "out.npz")
    p = ExportedPlanner(out)
    task = p.default_task()
    task["guidance_scale"] = np.float32(0.05)
    task["weights"][2] = 1.0
    in_process = p(s_now, task, p.no_constraints(), key)
    for k in ("action", "obs", "reward", "best"):
        # the artifact gives bit-identical plans in this process and in a fresh one
        np.testing.assert_array_equal(loaded[k], np.asarray(in_process[k]))


def test_exported_plan_matches_the_unexported_make_plan_fn(exported, model, plans):
    """The artifact against ``make_plan_fn`` jitted in this process (the session's guided plan
    function), same weights and inputs: XLA compiles the exported multi-platform module
    differently, so the two agree to float rounding, not bit for bit. Tolerance: 1e-4 absolute on
    actions and states in env units (actions span about +-3), 1e-4 relative on the candidate
    rewards, the same best candidate."""
    from dmpc_jax.planner.constraints import no_constraints
    from dmpc_jax.planner.rewards import default_task

    out, _ = exported
    cfg, _, params, _, _ = model
    plan = plans[0]
    p = ExportedPlanner(out)
    s_now = np.zeros(49, np.float32)
    s_now[6:9] = [0, 0, -1]
    s_now[9] = 1.6
    key = jax.random.PRNGKey(5)
    task = default_task(guidance_scale=0.05, joint_acc=1.0)
    ref = plan(params, s_now, task, no_constraints(cfg.horizon), key)
    got = p(s_now, {f.name: np.asarray(getattr(task, f.name)) for f in dataclasses.fields(task)},
            p.no_constraints(),
            np.asarray(jax.random.key_data(key), np.uint32))  # fmt: skip
    assert int(got["best"]) == int(ref.best)
    np.testing.assert_allclose(np.asarray(got["action"]), np.asarray(ref.action), atol=1e-4)
    np.testing.assert_allclose(np.asarray(got["obs"]), np.asarray(ref.obs), atol=1e-4)
    # candidate rewards (sums over the plan, magnitude ~10): relative 1e-4
    np.testing.assert_allclose(np.asarray(got["reward"]), np.asarray(ref.reward), rtol=1e-4)


def test_corrupt_or_missing_artifact(exported, tmp_path):
    out, _ = exported
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    blob = (bad / "planner.jax").read_bytes()
    (bad / "planner.jax").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ExportError, match="corrupt or replaced"):
        ExportedPlanner(bad)
    with pytest.raises(ExportError, match="lacks meta.json"):
        ExportedPlanner(tmp_path / "nothing")


@pytest.mark.slow
def test_cached_export_carries_its_cache_and_refreshes(model, exported, tmp_path):
    """An artifact exported with early-step caching: the first call (empty cache) equals the
    in-process full plan, the second call from the returned cache equals the in-process cached
    plan (tolerances as above), the cache ages, and a command change refreshes it inside the
    artifact; ``plan_fn`` carries the cache itself. With ``cache_max_age`` 2 a cache that served
    two plans refreshes, in process and in the artifact alike."""
    from dmpc_jax.planner.constraints import no_constraints
    from dmpc_jax.planner.rewards import default_task
    from dmpc_jax.planner.sampler import make_cached_plan_fn, make_plan_fn

    cfg, nets, params, sched, scaler = model
    scfg = SamplerConfig(num_candidates=2, cache_after=3, cache_max_age=2)
    meta = export_planner(nets, params, cfg, scaler, scfg, ROBOT, tmp_path, platforms=("cpu",))
    assert meta["schema_version"] == 2 and meta["cache_fields"]["x"] == [2, cfg.horizon, 61]
    p = ExportedPlanner(tmp_path)
    ref = jax.jit(make_cached_plan_fn(make_plan_fn(nets, cfg, scfg, sched, scaler, **ROBOT),
                                      scfg, scaler))  # fmt: skip
    s_now = np.zeros(49, np.float32)
    s_now[6:9] = [0, 0, -1]
    s_now[9] = 1.6
    key = jax.random.PRNGKey(2)
    task = default_task()
    key_u32 = np.asarray(jax.random.key_data(key), np.uint32)
    first = p(s_now, p.default_task(), p.no_constraints(), key_u32)
    out, cache = ref(params, s_now, task, no_constraints(cfg.horizon), key)
    np.testing.assert_allclose(first["action"], np.asarray(out.action), atol=1e-4)
    assert int(first["cache"]["age"]) == 0
    second = p(s_now, p.default_task(), p.no_constraints(), key_u32, first["cache"])
    out2, _ = ref(params, s_now, task, no_constraints(cfg.horizon), key, cache)
    np.testing.assert_allclose(second["action"], np.asarray(out2.action), atol=1e-4)
    assert int(second["cache"]["age"]) == 1
    ages, got, c_ref, c_got = [], [], cache, first["cache"]
    for _ in range(4):  # the same command: only the age refreshes the cache
        _, c_ref = ref(params, s_now, task, no_constraints(cfg.horizon), key, c_ref)
        c_got = p(s_now, p.default_task(), p.no_constraints(), key_u32, c_got)["cache"]
        ages.append(int(c_ref.age))
        got.append(int(c_got["age"]))
    assert ages == got == [1, 2, 0, 1]
    moved = s_now.copy()
    moved[9] = 4.0
    third = p(moved, p.default_task(), p.no_constraints(), key_u32, second["cache"])
    assert int(third["cache"]["age"]) == 0
    plan = p.plan_fn(seed=0)
    a, b = plan(s_now, 1), plan(s_now, 2)
    assert a.shape == b.shape == (cfg.horizon, 12)
    # test-time tasks on the robot path: task inputs from TaskSpecs; a task switch re-plans in
    # full (a fresh cache), as a first plan with the same key does
    from dmpc_jax.planner.task import RewardWeights, TaskSpec

    calm = TaskSpec(name="calm", guidance_scale=1.0, weights=RewardWeights(joint_vel=5.0))
    tasks = [p.task_inputs(TaskSpec(name="nominal", guidance_scale=0.1)), p.task_inputs(calm)]
    assert tasks[1][0]["guidance_scale"] == 1.0 and tasks[1][1]["lower"].shape == (cfg.horizon, 61)
    assert p.task_list((), (0.5, 0, 0), 0.1) is None  # plan_fn's default task
    listed = p.task_list((None, calm), (0.0, 0.0, 0.0), 0.1)  # None: nominal at that guidance
    for got, want in zip(listed, tasks, strict=True):
        for g, w in zip(got, want, strict=True):
            assert g.keys() == w.keys() and all(np.array_equal(g[k], w[k]) for k in g)
    plan = p.plan_fn(seed=0, tasks=tasks)
    plan(s_now, 0, 0)
    plan(s_now, 1, 0)
    switched = plan(s_now, 2, 1)
    fresh = p.plan_fn(seed=0, tasks=tasks)(s_now, 2, 1)  # a first call: empty cache
    np.testing.assert_array_equal(switched, fresh)
    plain = ExportedPlanner(exported[0])  # the module's artifact, exported without a cache
    with pytest.raises(ExportError, match="no cache"):
        plain(s_now, plain.default_task(), plain.no_constraints(), key_u32, first["cache"])
