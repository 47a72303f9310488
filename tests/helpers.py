"""Helpers shared by tests (not fixtures)."""

import os

import numpy as np
import pytest

from dmpc_jax.data.dataset import create_arrays, finalize

# .ci/run sets this: an optional extra (robot: DDS; bench: torch) that cannot load fails its
# tests instead of skipping them, so CI never passes with the DDS or parity tests silently off.
REQUIRE_EXTRAS = os.environ.get("DMPC_REQUIRE_EXTRAS") == "1"


def skip_without_extra(reason: str):
    """``pytest.skip(reason)``, or a failure where the extras are required (CI)."""
    if REQUIRE_EXTRAS:
        pytest.fail(f"required extra missing (DMPC_REQUIRE_EXTRAS=1): {reason}")
    pytest.skip(reason, allow_module_level=True)


def synthetic_dataset(path, E=3, T=20, done_at=((0, 7),), encode=True, seed=0):
    """A small dataset. encode=True writes env * 1000 + t into obs/action/reward/command (to check
    alignment); encode=False writes unit-scale random values (to train on)."""
    shapes = {
        "obs": (E, T, 49),
        "action": (E, T, 12),
        "reward": (E, T),
        "reward_terms": (E, T, 2),
        "command": (E, T, 3),
        "privileged": (E, T, 56),
        "done": (E, T),
        "terminated": (E, T),
    }
    arrays = create_arrays(path, shapes)
    # encode (env, t) in every field so alignment is checkable
    et = np.arange(E)[:, None] * 1000 + np.arange(T)[None]
    if encode:
        arrays["obs"][:] = et[..., None]
        arrays["action"][:] = et[..., None] + 0.5
        arrays["reward"][:] = et
        arrays["command"][:] = et[..., None]
    else:
        rng = np.random.default_rng(seed)
        for name in ("obs", "action", "reward", "command"):
            arrays[name][:] = rng.normal(size=shapes[name]).astype(np.float32)
    arrays["reward_terms"][:] = 0
    arrays["privileged"][:] = 0
    arrays["done"][:] = False
    arrays["terminated"][:] = False
    for e, t in done_at:
        arrays["done"][e, t] = True
    finalize(path, arrays, {"created_by": "test"})
    return path
