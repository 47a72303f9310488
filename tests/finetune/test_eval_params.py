"""``experiments/finetune/eval_params.py``: which denoiser each variant evaluates."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).parents[2] / "experiments/finetune/eval_params.py"
_spec = importlib.util.spec_from_file_location("eval_params", _PATH)
eval_params = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_params)


def _tree(x: float) -> dict:
    return {"a": np.full((3, 2), x, np.float32), "b": {"c": np.full(4, x, np.float32)}}


STATE = {"params": {"denoiser": _tree(2.0), "value": _tree(7.0)}, "ema_denoiser": _tree(4.0)}
PRETRAINED = _tree(0.0)


@pytest.mark.parametrize(
    "name, want",
    [("ema", 4.0), ("raw", 2.0), ("mix:0.25", 3.0), ("mix:1", 0.0), ("rawmix:0.5", 1.0)],
)
def test_variant_picks_and_mixes_the_denoiser(name, want):
    got = eval_params.variant_params(name, PRETRAINED, STATE)
    for leaf in (got["denoiser"]["a"], got["denoiser"]["b"]["c"]):
        np.testing.assert_allclose(leaf, want, rtol=1e-6)
    assert got["value"] is STATE["params"]["value"]  # the checkpoint's value net, untouched


@pytest.mark.parametrize("name", ["best", "mix", "raw:0.5", "ema:0.1"])
def test_unknown_variant_is_refused(name):
    with pytest.raises(SystemExit, match="unknown variant"):
        eval_params.variant_params(name, PRETRAINED, STATE)


def test_options_before_the_variants_are_read_in_any_order():
    run, step, out, opts, variants = eval_params.parse(
        ["r", "80", "o", "--seed", "2", "--mode", "sync", "--episodes", "64", "--task", "walk_0.5",
         "--execute", "24", "--margin", "4", "--rules", "strict,box", "--candidates", "4",
         "planner", "ema"]
    )  # fmt: skip
    assert (run, step, out) == (Path("r"), 80, Path("o"))
    assert opts == {"mode": "sync", "seed": 2, "episodes": 64, "task": "walk_0.5", "execute": 24,
                    "margin": 4, "rules": "strict,box", "candidates": 4}  # fmt: skip
    assert variants == ["planner", "ema"]
    assert eval_params.parse(["r", "5", "o", "pretrained"])[3] == {
        "mode": "async", "seed": 0, "episodes": 0, "task": "", "execute": 0, "margin": 0, "rules": "",
        "candidates": 1,
    }  # fmt: skip


@pytest.mark.parametrize("argv", [["r", "5", "o"], ["r", "5", "o", "--seed", "1"],
                                  ["r", "5", "o", "--mode", "fast", "ema"],
                                  ["r", "5", "o", "--execute", "24", "ema"]])  # fmt: skip
def test_no_variant_or_a_bad_mode_prints_the_usage(argv):
    with pytest.raises(SystemExit, match="Usage"):
        eval_params.parse(argv)


def test_variants_without_a_checkpoint_need_no_ema(tmp_path, monkeypatch):
    """``planner`` (the run's saved planner) and ``pretrained`` read no checkpoint, so a dagger
    run without an EMA serves them; a checkpoint variant of such a run is refused."""
    import json

    from dmpc_jax.finetune.dagger_config import DaggerConfig

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"branch_steps": [60, 80], "ema_decay": 0.0}))
    saved = {"denoiser": _tree(5.0)}
    monkeypatch.setattr(eval_params, "load_planner", lambda p: type("P", (), {"params": saved}))
    start = type("P", (), {"params": {"denoiser": PRETRAINED}})
    assert isinstance(eval_params.run_config(run), DaggerConfig)
    got = eval_params.run_params(run, 5, ["planner", "pretrained"], start)
    assert got["planner"] is saved and got["pretrained"] is start.params
    with pytest.raises(SystemExit, match="only the planner variant"):
        eval_params.run_params(run, 5, ["planner", "ema"], start)


def test_a_soup_is_the_mean_of_the_runs_planners_and_needs_no_checkpoint(tmp_path, monkeypatch):
    """``soup:A,B,C`` averages the three runs' exported planners leaf by leaf (a dagger run
    without an EMA serves it) and names its outcomes by the runs' folders."""
    import json

    saved = {"r1": _tree(1.0), "r2": _tree(2.0), "r3": _tree(6.0)}
    monkeypatch.setattr(
        eval_params, "load_planner", lambda p: type("P", (), {"params": saved[Path(p).name]})
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"branch_steps": [60, 80], "ema_decay": 0.0}))
    name = "soup:x/r1,x/r2,y/r3"
    got = eval_params.run_params(run, 5, [name], None)[name]
    for leaf in (got["a"], got["b"]["c"]):
        np.testing.assert_allclose(leaf, 3.0, rtol=1e-6)
    assert eval_params.out_name(name) == "soup_r1-r2-r3"
    assert eval_params.out_name("mix:0.4") == "mix_0.4"
    with pytest.raises(SystemExit, match="two or more"):
        eval_params.run_params(run, 5, ["soup:x/r1"], None)


def test_toward_and_jitter_move_the_runs_planner_by_the_trainings_step(tmp_path, monkeypatch):
    """``toward:REF,T`` is P + T (P_REF - P) on the denoiser (the run's value net kept);
    ``jitter:REF,K`` moves every leaf as far as its move to REF, in a random direction that
    the seed fixes."""
    import json

    value = _tree(7.0)
    start = {"denoiser": _tree(1.0), "value": value}
    ref = {"denoiser": {"a": np.full((3, 2), 3.0, np.float32), "b": {"c": np.arange(4.0) + 1}}}
    saved = {"run": start, "ref": ref}
    monkeypatch.setattr(
        eval_params, "load_planner", lambda p: type("P", (), {"params": saved[Path(p).name]})
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"branch_steps": [60, 80], "ema_decay": 0.0}))
    names = ["toward:x/ref,0.25", "jitter:x/ref,0", "jitter:x/ref,1", "jitter:y/ref,0"]
    got = eval_params.run_params(run, 5, names, None)
    half = got["toward:x/ref,0.25"]
    np.testing.assert_allclose(half["denoiser"]["a"], 1.5)
    np.testing.assert_allclose(half["denoiser"]["b"]["c"], 1 + 0.25 * np.arange(4.0))
    assert half["value"] is value
    for name in names[1:]:
        for leaf, want in (("a", np.sqrt(6 * 4.0)), ("c", np.sqrt(0 + 1 + 4 + 9))):
            d = got[name]["denoiser"][leaf] if leaf == "a" else got[name]["denoiser"]["b"]["c"]
            np.testing.assert_allclose(np.linalg.norm(d - 1.0), want, rtol=1e-5)
    j0, j1 = (got[n]["denoiser"]["a"] for n in names[1:3])
    assert not np.allclose(j0, j1)  # another seed, another direction
    np.testing.assert_array_equal(j0, got[names[3]]["denoiser"]["a"])  # the seed fixes it
    assert not np.allclose(j0 - 1.0, 2.0)  # not the trained direction
    assert eval_params.out_name(names[0]) == "toward_ref_0.25"
    assert eval_params.out_name(names[1]) == "jitter_ref_0"


def test_a_pretraining_run_is_measured_as_the_finetuning_starts_are(tmp_path, monkeypatch):
    """A pretraining run (``dmpc pretrain``'s config: a model, no pretrained run) is its own
    planner, measured with the ``cpu_paper`` arms' in-loop settings (128 episodes, strict, paper
    and box): ``planner`` and ``pretrained`` are that planner; a checkpoint variant is refused."""
    import json

    from dmpc_jax.finetune.config import finetune_preset

    run = tmp_path / "pre"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": {"horizon": 24}, "num_steps": 6000}))
    cfg = eval_params.run_config(run)
    want = finetune_preset("cpu_paper")
    assert cfg.pretrained == str(run)
    assert (cfg.eval_episodes, cfg.eval_rules, cfg.eval_task) == (
        want.eval_episodes, want.eval_rules, want.eval_task)  # fmt: skip
    saved = {"denoiser": _tree(5.0)}
    monkeypatch.setattr(eval_params, "load_planner", lambda p: type("P", (), {"params": saved}))
    got = eval_params.run_params(run, 6000, ["planner"], type("P", (), {"params": saved}))
    assert got["planner"] is saved
    with pytest.raises(SystemExit, match="only the planner variant"):
        eval_params.run_params(run, 6000, ["ema"], type("P", (), {"params": saved}))
