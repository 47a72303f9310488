"""``experiments/finetune/startup_trace.py``'s starts for the demonstrator's recoveries: which
fallers' states, from when to when."""

import importlib.util
from pathlib import Path

import numpy as np

_DIR = Path(__file__).parents[2] / "experiments/finetune"
_spec = importlib.util.spec_from_file_location("startup_trace", _DIR / "startup_trace.py")
startup_trace = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(startup_trace)


def _trace(t=1000, b=3):
    steps = np.arange(t, dtype=np.float32)[:, None, None]
    ep = np.arange(b, dtype=np.float32)[None, :, None]
    return {"qpos": np.broadcast_to(steps + 1000 * ep, (t, b, 19)).copy(),
            "qvel": np.zeros((t, b, 18), np.float32)}  # fmt: skip


def _saved(tmp_path, fall_s, **kw):
    startup_trace.save_states(_trace(), np.asarray(fall_s), 0.02, tmp_path / "s.npz", **kw)
    q = np.load(tmp_path / "s.npz")["qpos"][:, 0]
    return q // 1000, q % 1000  # episode, step


def test_early_fallers_give_their_states_from_1_5_s_to_0_2_s_before_the_fall(tmp_path):
    ep, step = _saved(tmp_path, [3.0, 12.0, np.inf])  # one early, one late faller, a survivor
    assert set(ep) == {0}
    np.testing.assert_array_equal(step, np.arange(75, 140, 5))  # 1.5 s .. 2.8 s, every 5th


def test_every_fall_adds_the_late_fallers_last_3_5_s(tmp_path):
    ep, step = _saved(tmp_path, [3.0, 12.0, np.inf], every_fall=True)
    assert set(ep) == {0, 1}
    np.testing.assert_array_equal(step[ep == 0], np.arange(75, 140, 5))  # unchanged
    np.testing.assert_array_equal(step[ep == 1], np.arange(425, 590, 5))  # 8.5 s .. 11.8 s
