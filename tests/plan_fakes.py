"""Plan-function factories a spawned planner process can import (numpy only)."""

import numpy as np


def sine_plan_fn():
    """The deploy tests' fake plan: a small sinusoid around the default pose."""

    def plan(obs, seq, task=0):
        assert obs.shape == (49,) and np.isfinite(obs).all()
        return 0.1 * np.sin(np.arange(24)[:, None] + np.arange(12)[None] + seq)

    return plan


def broken_plan_fn():
    raise RuntimeError("no artifact here")


def affinity_plan_fn():
    """A plan whose first row reports the CPUs its process may run on (padded with -1)."""
    import os

    def plan(obs, seq, task=0):
        cpus = sorted(os.sched_getaffinity(0))
        out = -np.ones((24, 12))
        out[0, : len(cpus[:12])] = cpus[:12]
        return out

    return plan
