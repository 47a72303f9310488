"""The PPO demonstrator exported for the robot path (dmpc_jax/deploy/export_policy.py): the loaded
artifact acts exactly as the in-process policy, and a missing or replaced artifact is a clear
error. Uses the shipped demonstrator checkpoint."""

from pathlib import Path

import jax
import numpy as np
import pytest

from dmpc_jax.deploy.export_policy import ExportedPolicy, export_demonstrator
from dmpc_jax.deploy.exported import ExportError

RUN = Path(__file__).resolve().parents[2] / "checkpoints" / "demonstrator" / "cpu"


@pytest.mark.slow
def test_exported_demonstrator_acts_as_the_trained_policy(tmp_path):
    from dmpc_jax.rl.train import load_batched_policy

    meta = export_demonstrator(RUN, tmp_path / "pol", platforms=("cpu",))
    assert meta["kind"] == "policy" and meta["kp"] == 40.0 and len(meta["q_default"]) == 12
    policy = ExportedPolicy(tmp_path / "pol")
    obs = (0.3 * np.random.default_rng(0).normal(size=(6, 49))).astype(np.float32)
    want = np.asarray(load_batched_policy(RUN)({"state": obs}, jax.random.PRNGKey(3)))
    got = np.stack([policy(o) for o in obs])
    assert got.shape == (6, 12)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    (tmp_path / "pol" / "policy.jax").write_bytes(b"not the artifact")
    with pytest.raises(ExportError, match="does not match"):
        ExportedPolicy(tmp_path / "pol")
    with pytest.raises(ExportError, match="lacks"):
        ExportedPolicy(tmp_path / "missing")
