"""Episode statistics of eval-policy on hand-made traces."""

import numpy as np
import pytest

from dmpc_jax.evaluate.report_policy import plot_learning_curve
from dmpc_jax.scenario.metrics import episode_stats


def _trace(T=10, B=2):
    done = np.zeros((T, B), bool)
    done[6:, 1] = True  # env 1 falls at step 6
    return {
        "done_any": done,
        "tracking/lin_vel_err": np.full((T, B), 0.1),
        "state/mech_power": np.full((T, B), 50.0),  # W
        "state/forward_vel": np.full((T, B), 5.0),  # m/s
    }


def testepisode_stats():
    s = episode_stats(_trace(), speed=1.0, dt=0.02)
    assert s["success_rate"] == 0.5
    assert s["tracking_err_m_per_s"] == pytest.approx(0.1)
    np.testing.assert_allclose(s["success_ci95"], (0.0945, 0.9055), atol=1e-4)  # Wilson, 1/2
    # pooled over the 10 + 6 steps before a fall: 50 W x 0.32 s = 16 J over 5 m/s x 0.32 s
    # = 1.6 m -> 10 J/m (the fallen env's steps count until its fall)
    assert s["energy_J_per_m"] == pytest.approx(10.0)


def test_learning_curve_plot(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text(
        '{"env_steps": 1, "episode/sum_reward": 1.0, "episode/length": 10, '
        '"episode/tracking/lin_vel_err": 5.0}\n{"env_steps": 2, "episode/sum_reward": 2.0, '
        '"episode/length": 20, "episode/tracking/lin_vel_err": 4.0}\n'
    )
    plot_learning_curve(log, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000
