"""Pages that cannot go stale (dmpc_jax/evaluate/report_pages.py): every page a renderer knows
equals its rendering from results.json, and a page with an edited number fails."""

import shutil
from pathlib import Path

from dmpc_jax.evaluate.report_pages import check_page, check_pages

ROOT = Path(__file__).resolve().parents[2]


def test_every_known_page_matches_its_results():
    rows = check_pages(ROOT / "experiments")
    stale = [r["page"] for r in rows if r["status"] == "stale"]
    assert not stale, f"pages that differ from their results.json (make check-pages): {stale}"
    kinds = {r["kind"] for r in rows if r["status"] == "ok"}
    assert {"task", "sweep", "sim2sim"} <= kinds


def test_an_edited_number_on_a_page_fails(tmp_path):
    for name in ("tasks/walk_1.0", "mpc_sweep"):
        page = tmp_path / name.replace("/", "_")
        shutil.copytree(ROOT / "experiments" / name, page)
        assert check_page(page / "results.json")["status"] == "ok"
        text = (page / "README.md").read_text()
        i = text.index("%")  # the first success rate: change its last digit
        edited = text[: i - 1] + str((int(text[i - 1]) + 1) % 10) + text[i:]
        (page / "README.md").write_text(edited)
        row = check_page(page / "results.json")
        assert row["status"] == "stale" and "committed" in row["diff"]


def test_an_edited_speed_on_a_sim2sim_page_fails(tmp_path):
    page = tmp_path / "sim2sim"
    shutil.copytree(ROOT / "experiments/sim2sim/demonstrator/ours_0.5", page)
    assert check_page(page / "results.json")["status"] == "ok"
    text = (page / "README.md").read_text()
    i = text.index(" m | ") + 5  # the first run's forward speed: change its first digit
    edited = text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :]
    (page / "README.md").write_text(edited)
    row = check_page(page / "results.json")
    assert row["status"] == "stale" and "committed" in row["diff"]
