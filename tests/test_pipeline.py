"""The whole pipeline at the tiny presets, through the ``dmpc`` command as a user runs it:
demonstrator -> dataset -> pretrain -> finetune (one iteration, then a resume to two) -> eval ->
export, and the exported plan against the in-process plan of the same finetuned planner."""

import json

import jax
import numpy as np
import pytest

from dmpc_jax.cli import main

pytestmark = pytest.mark.slow


def _dmpc(*args: str) -> None:
    main([str(a) for a in args])


def test_tiny_pipeline_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # every relative default (data/, experiments/) lands here
    demo, data, pre, rwr = "ck/demonstrator/tiny", "data/tiny", "ck/diffusion/tiny", "ck/rwr/tiny"

    _dmpc("demonstrator", "--preset", "tiny", "--root", "ck/demonstrator", "--max-epochs", 1)
    assert (tmp_path / demo / "config.json").exists()

    _dmpc("dataset", "--preset", "tiny", "--cfg.demonstrator", demo, "--cfg.n-envs", 2)
    meta = json.loads((tmp_path / data / "meta.json").read_text())
    assert meta["transitions"] == 2 * 60  # the --cfg override on top of the tiny preset

    _dmpc("pretrain", "--preset", "tiny", "--dataset", data, "--root", "ck/diffusion")
    assert (tmp_path / pre / "planner").exists()

    # an EMA planner with a pretrained share, each update from the planner that acted: the
    # resume below then also carries the EMA, and the saved planner is checked for the share;
    # start-up and nose-down groups (4 strata): the resume checks the buffer's layout
    common = ("finetune", "--preset", "tiny", "--pretrained", pre, "--root", "ck/rwr",
              "--cfg.demonstrator-run", demo, "--page", "", "--cfg.ema-decay", 0.9,
              "--cfg.anchor", 0.5, "--cfg.update-from", "acting", "--cfg.startup-steps", 5,
              "--cfg.pitch-split", 0.035)  # fmt: skip
    _dmpc(*common, "--max-iterations", 1)
    rows = [json.loads(x) for x in (tmp_path / rwr / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1]
    _dmpc(*common, "--resume")
    rows = [json.loads(x) for x in (tmp_path / rwr / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["rollout/reward_per_step"]) for r in rows)
    assert all(0 <= rows[1][f"rwr/{k}_fell_fraction"] <= 1 for k in ("kept", "top"))
    strata = range(4)  # the update's pieces per stratum add up to the buffer and the kept set
    assert sum(rows[1][f"buffer/stratum{k}"] for k in strata) == rows[1]["buffer/pieces"]
    assert sum(rows[1][f"rwr/kept_stratum{k}"] for k in strata) == rows[1]["rwr/kept"]
    # the stopped-and-resumed run follows the curve of one that ran straight through: the
    # same rollouts (env states restored), the same update at iteration 2
    _dmpc(*("ck/straight" if a == "ck/rwr" else a for a in common))
    lines = (tmp_path / "ck/straight/tiny/metrics.jsonl").read_text().splitlines()
    straight = [json.loads(x) for x in lines]
    for got, want in zip(rows, straight, strict=True):
        got, want = ({k: v for k, v in r.items() if not k.startswith("time/")} for r in (got, want))
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in got], [want[k] for k in got], rtol=1e-5)

    # the planner the run saved (what eval, export and the demo load) and acted with is the
    # anchor's mix of the pretrained denoiser and the checkpoint's EMA, not the trained one
    from dmpc_jax.checkpointing import checkpoint_manager, restore_state
    from dmpc_jax.config import load_json
    from dmpc_jax.finetune.config import FinetuneConfig
    from dmpc_jax.finetune.update import initial_state
    from dmpc_jax.planner.load import load_planner

    fcfg = load_json(FinetuneConfig, tmp_path / rwr / "config.json")
    pretrained = load_planner(tmp_path / pre).params
    state = restore_state(checkpoint_manager(tmp_path / rwr), initial_state(fcfg, pretrained))
    saved = load_planner(tmp_path / rwr).params["denoiser"]
    leaves = zip(*(jax.tree.leaves(t) for t in (saved, pretrained["denoiser"],
                   state["ema_denoiser"], state["params"]["denoiser"])), strict=True)  # fmt: skip
    moved = False
    for got, p0, ema, raw in leaves:
        np.testing.assert_allclose(got, 0.5 * np.asarray(p0) + 0.5 * np.asarray(ema), atol=1e-6)
        moved |= bool(np.any(np.asarray(ema) != np.asarray(raw)))
    assert moved  # the EMA trails the trained weights: the check can tell the two apart

    # the offline-only control of dmpc dagger: the same optimisation on the offline windows
    # alone, no rollouts
    _dmpc("dagger", "--preset", "tiny", "--cfg.pretrained", pre, "--cfg.demonstrator-run", demo,
          "--cfg.dataset", data, "--cfg.offline-fraction", 1, "--root", "ck/dagger")  # fmt: skip
    lines = (tmp_path / "ck/dagger/tiny/metrics.jsonl").read_text().splitlines()
    control = [json.loads(x) for x in lines]
    assert [r["iteration"] for r in control] == [1, 2]
    assert all(np.isfinite(r["loss/denoiser"]) and "rollout/planner_falls_per_env_min" not in r
               for r in control)  # fmt: skip

    _dmpc("eval", "--cfg.task", "walk_1.0", "--cfg.planner-run", rwr, "--cfg.demonstrator-run",
          demo, "--cfg.episodes", 2, "--cfg.episode-s", 1, "--cfg.execute", 3, "--cfg.margin", 1,
          "--cfg.controllers", "task",
          "demonstrator", "--cfg.rules", "strict", "--cfg.no-video", "--cfg.latency-calls", 0,
          "--cfg.out-dir", "out/eval")  # fmt: skip
    result = json.loads((tmp_path / "out/eval/results.json").read_text())
    assert set(result["controllers"]) == {"task", "demonstrator"}
    assert result["controllers"]["task"]["episodes"] == 2
    assert (tmp_path / "out/eval/README.md").exists()

    _dmpc("export", "--run-dir", rwr, "--out", "exp", "--sampler", "ddim2")  # K = 4 in tiny
    from dmpc_jax.deploy.exported import ExportedPlanner
    from dmpc_jax.planner.load import load_planner
    from dmpc_jax.planner.sampler import REALTIME_CANDIDATES, SamplerConfig
    from dmpc_jax.scenario.tasks import get_task

    exported = ExportedPlanner(tmp_path / "exp")
    planner = load_planner(tmp_path / rwr)
    scfg = SamplerConfig(num_candidates=REALTIME_CANDIDATES, analytic_on_x0=True).with_variant(
        "ddim2", planner.dcfg.num_steps
    )
    spec = get_task("energy").spec
    params, task, cons = planner.task_args(spec)
    s_now = np.zeros(49, np.float32)
    s_now[6:9] = [0, 0, -1]
    s_now[9] = 2.0
    key = jax.random.PRNGKey(3)
    ref = jax.jit(planner.plan_fn(scfg))(params, s_now, task, cons, key)
    got = exported(s_now, *exported.task_inputs(spec), np.asarray(jax.random.key_data(key)))
    np.testing.assert_allclose(np.asarray(got["action"]), np.asarray(ref.action), atol=1e-4)
    np.testing.assert_allclose(np.asarray(got["obs"]), np.asarray(ref.obs), atol=1e-4)
