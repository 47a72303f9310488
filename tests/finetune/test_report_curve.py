"""The learning-curve page (dmpc_jax/finetune/report_curve.py) from a synthetic run directory:
points with intervals, paired counts against the start, slopes and projections, wall time."""

import dataclasses
import json

import numpy as np
import pytest

from dmpc_jax.config import to_dict
from dmpc_jax.finetune.config import finetune_preset
from dmpc_jax.finetune.report_curve import (
    curve_results,
    fit_slope,
    projected_steps,
    write_curve_page,
)


def test_slope_and_projection():
    fit = fit_slope(np.array([0, 1e6, 2e6]), np.array([0.2, 0.3, 0.4]))
    assert fit["per_million"] == pytest.approx(0.1) and fit["intercept"] == pytest.approx(0.2)
    assert projected_steps(fit, 0.9) == pytest.approx(7e6)
    assert projected_steps(fit_slope(np.array([0, 1e6]), np.array([0.5, 0.4])), 0.9) is None
    assert fit_slope(np.array([1.0]), np.array([0.5]))["per_million"] is None


def test_curve_page_from_a_run_directory(tmp_path):
    cfg = dataclasses.replace(finetune_preset("cpu_paper"), eval_episodes=4)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(to_dict(cfg)))
    per_iter = cfg.n_envs * cfg.steps_per_iter
    rows, eps = [], []
    for it, ok in ((0, [0, 0, 1, 0]), (80, [1, 0, 1, 1])):
        row = {"iteration": it, "eval/success_rate": float(np.mean(ok)), "eval/tracking_err": 0.2,
               "eval/wall_s": 10.0}  # fmt: skip
        for rule in ("box", "paper", "strict"):
            row[f"eval/{rule}"], row[f"eval/{rule}_lo"], row[f"eval/{rule}_hi"] = (
                np.mean(ok),
                0.1,
                0.9,
            )
        rows.append(row)
        eps.append(
            {"iteration": it, **{r: [bool(x) for x in ok] for r in ("box", "paper", "strict")}}
        )
    for it in range(1, 81):
        rows.insert(it, {"iteration": it, "rollout/reward_per_step": 0.2,
                         "rollout/falls_per_env_min": 1.0, "loss/value": 0.01,
                         "time/rollout_s": per_iter / 1000.0, "time/value_s": 1.0})  # fmt: skip
    rows[80].update({"rwr/kept": 300, "rwr/kept_fraction": 0.015, "time/update_s": 60.0})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "eval_episodes.jsonl").write_text("".join(json.dumps(e) + "\n" for e in eps))
    res = curve_results(run)
    assert [p["env_steps"] for p in res["points"]] == [0, 80 * per_iter]
    assert res["points"][1]["vs_start"]["strict"] == {
        "won": 2,
        "lost": 0,
        "ties": 2,
        "p_value": 0.5,
    }
    assert res["env_steps_per_s_rollouts"] == pytest.approx(1000.0)
    assert res["time_s"]["denoiser updates"] == 60.0 and res["time_s"]["evaluation"] == 20.0
    assert res["fits"]["strict"]["per_million"] > 0
    out = tmp_path / "page"
    write_curve_page(res, out, "dmpc finetune-curve --run-dir run")
    page = (out / "README.md").read_text()
    assert "2 / 0 (0.5)" in page and "dmpc finetune-curve" in page
    assert json.loads((out / "results.json").read_text())["env_steps"] == 80 * per_iter
    assert (out / "curve.png").stat().st_size > 0
