"""``make bench-env``'s sharded rows: layouts parse or fail clearly, a row that does not finish is
reported as hung (not waited on), and the page compares each layout with 1x1 at its batch."""

import dataclasses

import pytest

from dmpc_jax.bench.env_throughput import EnvBenchConfig, bench_layout, parse_layout
from dmpc_jax.bench.report import write_env_page


def test_layouts_parse_or_name_the_bad_one():
    assert parse_layout("2x1") == (2, 1) and parse_layout("1X2") == (1, 2)
    for bad in ("2", "ax1", "0x2"):
        with pytest.raises(ValueError, match=bad):
            parse_layout(bad)


def test_a_row_that_does_not_finish_is_reported_hung():
    cfg = dataclasses.replace(EnvBenchConfig(), layout_timeout_s=0.5)
    row = bench_layout("2x1", 64, cfg)  # two processes cannot even import jax in 0.5 s
    assert row["status"].startswith("hung") and "mjx_steps_per_s" not in row
    assert bench_layout("2x1", 63, cfg)["status"] == "batch does not split over 2 devices"


def test_page_gives_each_layout_its_ratio_to_one_device(tmp_path):
    cfg = EnvBenchConfig(out_dir=str(tmp_path))
    ok = {"status": "ok", "mjx_compile_s": 20.0}
    result = {
        "machine": "test", "jax_devices": ["cpu"], "jax": "0", "mujoco": "0",
        "n_substeps": 5, "contacts": "feet", "rows": [],
        "layouts": [
            {"layout": "1x1", "processes": 1, "devices_per_process": 1, "batch": 256,
             "mjx_steps_per_s": 10_000.0, **ok},
            {"layout": "1x2", "processes": 1, "devices_per_process": 2, "batch": 256,
             "mjx_steps_per_s": 15_000.0, **ok},
            {"layout": "2x1", "processes": 2, "devices_per_process": 1, "batch": 256,
             "status": "hung (no result in 300 s)"},
        ],
    }  # fmt: skip
    write_env_page(cfg, result)
    page = (tmp_path / "README.md").read_text()
    assert "| 1x2 | 256 | 128 | 15,000 | 1.50 | 20.0 | ok |" in page
    assert "| 2x1 | 256 | 128 | - | - | - | hung (no result in 300 s) |" in page
