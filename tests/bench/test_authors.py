"""``make bench AUTHORS=<checkout>``: the authors' own sampler as a row. A missing or wrong
checkout fails at once with a message that says what to pass; none of these tests needs the
checkout except the last, which runs their sampler when DMPC_AUTHORS_CHECKOUT names one."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dmpc_jax.bench import authors
from dmpc_jax.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_make_bench_hands_the_checkout_to_dmpc_bench():
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "bench", "AUTHORS=/nonexistent"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "dmpc bench --cfg.authors /nonexistent" in out
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "bench"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert "--cfg.authors" not in out


def test_a_missing_checkout_fails_before_anything_is_timed():
    with pytest.raises(SystemExit) as e:
        main(["bench", "--cfg.authors", "/nonexistent"])
    msg = str(e.value)
    assert "/nonexistent does not exist" in msg and "AUTHORS=<dir>" in msg


def test_a_folder_that_is_not_their_release_names_what_it_lacks(tmp_path):
    (tmp_path / "rsl_rl" / "rsl_rl" / "modules").mkdir(parents=True)
    (tmp_path / "rsl_rl" / "rsl_rl" / "modules" / "diffusion.py").write_text("")
    with pytest.raises(authors.AuthorsCheckoutError, match="not a checkout") as e:
        authors.check_checkout(tmp_path)
    assert "modules/temporal.py" in str(e.value) and "modules/diffusion.py" not in str(e.value)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("DMPC_AUTHORS_CHECKOUT"), reason="DMPC_AUTHORS_CHECKOUT names no checkout"
)
def test_their_sampler_plans_a_first_action():
    pytest.importorskip("torch")
    plan = authors.build_plan(os.environ["DMPC_AUTHORS_CHECKOUT"])
    state = np.zeros(49, np.float32)
    state[6:9] = [0.0, 0.0, -1.0]
    for n in (1, 3):
        a = plan(state, n)
        assert a.shape == (12,) and np.isfinite(a).all()


def test_the_page_heads_with_the_ratio_against_the_authors_code(tmp_path, monkeypatch):
    import json

    from dmpc_jax.bench import report

    monkeypatch.chdir(tmp_path)  # no env/PPO tables from the repository
    row = {"model": "paper", "variant": "ddpm10", "N": 1, "H": 24, "robots": 1, "steps": 10,
           "compile_s": 9.0, "p50_ms": 100.0, "p99_ms": 120.0, "plans_per_s": 10.0,
           "trajectories_per_s": 10.0, "gflop_per_s": 5.0, "gflop_per_s_over_peak": 0.05,
           "torch_p50_ms": 600.0, "torch_p99_ms": 700.0, "speedup_vs_torch": 6.0,
           "authors_p50_ms": 400.0, "authors_p99_ms": 450.0, "speedup_vs_authors": 4.0,
           "torch_over_authors": 1.5}  # fmt: skip
    res = {"device": "cpu", "backend": "cpu", "machine": "x86_64, 2 cores", "jax": "0", "torch": "2",
           "torch_threads": 2, "model": "paper", "unet_params": 1e6, "value_params": 1e5,
           "matmul_peak_gflop_per_s": 100.0, "rows": [row],
           "config": {"horizons": [24], "variants": ["ddpm10"]},
           "authors": {"checkout": "/x", "commit": authors.COMMIT,
                       "stand_ins": list(authors.STAND_INS)}}  # fmt: skip
    (tmp_path / "results_cpu.json").write_text(json.dumps(res))
    report.write_sampler_page(tmp_path)
    page = (tmp_path / "README.md").read_text()
    assert "| 1 | 400.0 | 450.0 | 100.0 | **4.00x** | 600.0 | 1.50x |" in page
    assert page.index("speed-up vs the authors") < page.index("reimplementation (PyTorch) p50")
    assert all(x in page for x in authors.STAND_INS)
