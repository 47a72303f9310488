"""Pages that cannot go stale (``dmpc check-pages``, ``make check-pages``): every experiments page
whose results.json a renderer knows is rendered again from that file alone and compared with
the committed README.md. A page whose numbers were edited by hand, or whose results.json moved
on without its page, fails; pages written by hand or from several sources are listed as such.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from pathlib import Path

from dmpc_jax.deploy.report_sim2sim import is_sim2sim_result, render_sim2sim_result
from dmpc_jax.evaluate.report_sweep import is_sweep_result, render_sweep_page
from dmpc_jax.evaluate.report_tasks import is_task_result, render_task_page
from dmpc_jax.finetune.report_curve import is_curve_result, render_curve_page

# (kind, does this results.json belong to it, render README.md from it)
RENDERERS: tuple[tuple[str, Callable[[dict], bool], Callable[[dict], str]], ...] = (
    ("task", is_task_result, render_task_page),
    ("sweep", is_sweep_result, render_sweep_page),
    ("learning curve", is_curve_result, render_curve_page),
    ("sim2sim", is_sim2sim_result, render_sim2sim_result),
)


def page_kind(result) -> tuple[str, Callable[[dict], str]] | None:
    for kind, belongs, render in RENDERERS:
        if isinstance(result, dict) and belongs(result):
            return kind, render
    return None


def check_page(results_path: Path) -> dict:
    """{page, kind, status: ok | stale | no page | unknown, diff}: ``unknown`` where no renderer
    knows the file (a page written by hand, from several sources, or by an older renderer);
    ``no page``: a results.json kept as data without a README.md beside it."""
    results_path = Path(results_path)
    readme = results_path.parent / "README.md"
    out = {"page": str(readme), "kind": None, "status": "unknown", "diff": ""}
    result = json.loads(results_path.read_text())
    found = page_kind(result)
    if found is None:
        return out
    out["kind"], render = found
    if not readme.exists():
        return {**out, "status": "no page"}
    want, have = render(result), readme.read_text()
    if want == have:
        return {**out, "status": "ok"}
    diff = difflib.unified_diff(have.splitlines(), want.splitlines(), "committed", "rendered",
                                lineterm="", n=0)  # fmt: skip
    return {**out, "status": "stale", "diff": "\n".join(list(diff)[:20])}


def check_pages(root: Path = Path("experiments")) -> list[dict]:
    """``check_page`` of every results.json under ``root``, sorted by path."""
    return [check_page(p) for p in sorted(Path(root).rglob("results.json"))]


def rerender(results_path: Path) -> None:
    """Write README.md again from results.json (a page left behind by its renderer)."""
    result = json.loads(Path(results_path).read_text())
    found = page_kind(result)
    if found is None:
        raise ValueError(f"no renderer knows {results_path}")
    text = found[1](result)
    (Path(results_path).parent / "README.md").write_text(text)
