"""The finetuning loops' in-loop evaluation plans exactly as ``dmpc eval`` does (the same harness
settings: N = 1, DDPM, analytic rewards on x0_hat, E / D, keys), so its success figures are
``dmpc eval``'s. It once planned with the harness default of 16 candidates."""

import dataclasses

import numpy as np
import pytest

from dmpc_jax.evaluate.planner_eval import EvalConfig
from dmpc_jax.finetune.config import finetune_preset
from dmpc_jax.finetune.dagger import dagger_preset
from dmpc_jax.finetune.evaluator import Evaluator
from dmpc_jax.scenario.harness import HarnessConfig


def test_in_loop_evaluation_uses_dmpc_eval_harness_settings():
    for cfg in (finetune_preset("cpu_paper"), finetune_preset("cpu"), dagger_preset("cpu")):
        ev = Evaluator(cfg, planner=object())  # a stand-in: nothing is loaded or run here
        want = EvalConfig(
            task=cfg.eval_task, episodes=cfg.eval_episodes, planner_run=cfg.pretrained,
            demonstrator_run=cfg.demonstrator_run,
        ).harness_config()  # fmt: skip
        assert ev.harness.cfg == want
        assert ev.harness.cfg.sampler.num_candidates == 1


@pytest.mark.parametrize(
    "kwargs, eval_kwargs",
    [({"seed": 3}, {"seed": 3}), ({"candidates": 4}, {"num_candidates": 4})],
)
def test_another_seed_or_n_gives_dmpc_evals_harness_with_it(kwargs, eval_kwargs):
    """Other keys (``seed``) or N plans per call (``candidates``): ``dmpc eval``'s harness
    config with that seed or ``num_candidates``."""
    cfg = dagger_preset("cpu")
    ev = Evaluator(cfg, planner=object(), **kwargs)
    want = EvalConfig(
        task=cfg.eval_task, episodes=cfg.eval_episodes, planner_run=cfg.pretrained,
        demonstrator_run=cfg.demonstrator_run, **eval_kwargs,
    ).harness_config()  # fmt: skip
    assert ev.harness.cfg == want
    assert ev.harness.cfg.seed == want.seed and want.seed == eval_kwargs.get("seed", 0)
    assert ev.harness.cfg.sampler.num_candidates == eval_kwargs.get("num_candidates", 1)


def test_the_harness_default_sampler_is_dmpc_evals():
    h = HarnessConfig(planner_run="p", demonstrator_run="d", episodes=1)
    assert h.sampler == EvalConfig().harness_config().sampler
    assert h.mpc == EvalConfig().harness_config().mpc
    assert dataclasses.replace(h, episodes=2).sampler.num_candidates == 1


def test_action_error_counts_each_episode_until_its_end_in_demonstrator_std():
    from dmpc_jax.finetune.evaluator import action_error

    rng = np.random.default_rng(0)
    demo = rng.normal(size=(6, 3, 12)).astype(np.float32)
    done = np.zeros((6, 3), bool)
    trace = {"action": demo.copy(), "probe_action": demo, "done_any": done}
    assert action_error(trace) == 0.0
    done[3:, 1] = True  # episode 1 ended at step 3: its steps 4.. do not count
    alive = ~np.concatenate([np.zeros_like(done[:1]), done[:-1]])
    off = demo.copy()
    off[~alive] += 100.0  # whatever it does after its end
    off[alive] += 0.5 * demo[alive].std(axis=0)  # half a std on every counted step
    trace = {"action": off, "probe_action": demo, "done_any": done}
    np.testing.assert_allclose(action_error(trace), 0.5, rtol=1e-4)


def test_episode_times_give_each_episodes_fall_and_box_exit_beside_its_outcome():
    from dmpc_jax.finetune.evaluator import episode_times
    from dmpc_jax.scenario import outcomes

    t, dt = 5, 0.02
    done = np.zeros((t, 3), bool)
    done[2:, 0] = True  # episode 0 fails at step index 2: at the end of that step, 3 dt
    done[4:, 2] = True  # episode 2 at the last step: 5 dt
    qpos = np.zeros((t, 3, 3), np.float32)
    qpos[3:, 1, 0] = 4.0  # episode 1 leaves the box (3.3 m from its start) at step index 3
    strict = {"done_any": done, "qpos": qpos}
    paper = {"done_any": np.zeros_like(done), "qpos": qpos}
    got = episode_times({"strict": strict, "paper": paper}, dt)
    assert got["fall_s"]["strict"] == [0.06, None, 0.1]
    assert got["fall_s"]["paper"] == [None, None, None]
    assert got["box_exit_s"] == [None, 0.08, None]
    # the same times the outcomes read: episode 1 succeeds under box only, by leaving
    assert outcomes.success(strict, "strict").tolist() == [False, True, False]
    assert outcomes.success(paper, "box").tolist() == [True, True, True]
    assert "box_exit_s" not in episode_times({"strict": strict}, dt)  # no paper trace, no exits


def test_a_dagger_run_measures_on_its_eval_seeds_keys(tmp_path, monkeypatch):
    """``--cfg.eval-seed 7``: the run's in-loop evaluation on seed 7's keys (validation keys to
    pick among trainings on), built as every run builds it; stopped there, nothing compiles."""
    import dmpc_jax.finetune.dagger as dagger_mod

    class Built(Exception):
        pass

    def evaluator(cfg, planner, rules, seed=0):
        raise Built(seed)

    monkeypatch.setattr(dagger_mod, "Evaluator", evaluator)
    cfg = dataclasses.replace(dagger_preset("cpu"), eval_seed=7, dataset="", offline_fraction=0.0)
    with pytest.raises(Built) as e:
        dagger_mod.dagger(cfg, run_dir=tmp_path / "run")
    assert e.value.args == (7,)
    assert dagger_preset("cpu").eval_seed == 0  # default: the keys of every in-loop point


def test_a_finetune_run_measures_on_its_eval_seeds_keys(tmp_path, monkeypatch):
    """``dmpc finetune --cfg.eval-seed 7``: the in-loop evaluation on seed 7's keys, as the
    DAgger runs' (a finetuning arm paired with a pick measured on validation keys)."""
    import dmpc_jax.finetune.loop as loop_mod

    class Built(Exception):
        pass

    def evaluator(cfg, planner, rules, seed=0):
        raise Built(seed)

    monkeypatch.setattr(loop_mod, "Evaluator", evaluator)
    cfg = dataclasses.replace(finetune_preset("cpu"), eval_seed=7, eval_every=1)
    with pytest.raises(Built) as e:
        loop_mod.finetune(cfg, run_dir=tmp_path / "run", progress=False)
    assert e.value.args == (7,)
    assert finetune_preset("cpu").eval_seed == 0
