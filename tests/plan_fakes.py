"""Plan-function factories a spawned planner process can import (numpy only)."""

import numpy as np


def sine_plan_fn():
    """The deploy tests' fake plan: a small sinusoid around the default pose."""

    def plan(obs, seq):
        assert obs.shape == (49,) and np.isfinite(obs).all()
        return 0.1 * np.sin(np.arange(24)[:, None] + np.arange(12)[None] + seq)

    return plan


def broken_plan_fn():
    raise RuntimeError("no artifact here")
