"""The package's shape, checked on its source: no import cycle between stage packages, the
layering boundaries, page and plot code only in report modules, modules of bounded size, one
definition of the default artifact paths."""

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "dmpc_jax"
MAX_LINES = 400

# stage packages that must never import another (directly or through a function-level import)
FORBIDDEN = {
    "diffusion": {"planner", "evaluate", "finetune", "deploy"},
    "planner": {"evaluate", "finetune", "deploy", "scenario"},
    "scenario": {"evaluate", "finetune", "deploy", "bench"},
    "finetune": {"evaluate", "deploy"},
    "deploy": {"evaluate", "finetune", "scenario"},
    "envs": {"planner", "diffusion", "rl", "data", "evaluate", "finetune", "deploy", "scenario"},
}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _unit(path: Path) -> str:
    """The stage package of a module (``planner``), or the module name for top-level files."""
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_units(path: Path) -> set[str]:
    """Every ``dmpc_jax.<unit>`` a module imports, at the top or inside functions."""
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "dmpc_jax" and len(parts) > 1:
                unit = parts[1]
                if (PKG / unit).is_dir() or (PKG / f"{unit}.py").exists():
                    units.add(unit)
    return units


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _modules():
        unit = _unit(path)
        graph.setdefault(unit, set()).update(_imported_units(path) - {unit})
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt, stack + [nxt])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_packages():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_layering_boundaries(unit):
    bad = {
        str(p.relative_to(PKG)): sorted(_imported_units(p) & FORBIDDEN[unit])
        for p in _modules()
        if _unit(p) == unit and _imported_units(p) & FORBIDDEN[unit]
    }
    assert not bad, f"{unit} must not import {sorted(FORBIDDEN[unit])}: {bad}"


def _is_report(path: Path) -> bool:
    return path.stem.startswith("report") or "report" in path.relative_to(PKG).parts[:-1]


def test_pages_and_plots_only_in_report_modules():
    pattern = re.compile(r"README\.md|savefig|MODEL_CARD\.md")
    bad = [
        str(p.relative_to(PKG))
        for p in _modules()
        if pattern.search(p.read_text()) and not _is_report(p)
    ]
    assert not bad, f"page or plot code outside a report module: {bad}"


def test_modules_have_bounded_size():
    long = {
        str(p.relative_to(PKG)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_default_paths_defined_once():
    """The default artifact paths are literals only in ``paths.py``."""
    pattern = re.compile(r"[\"']checkpoints/(rwr|diffusion|demonstrator)/cpu[\"']")
    bad = [
        str(p.relative_to(PKG))
        for p in _modules()
        if p.name != "paths.py" and pattern.search(p.read_text())
    ]
    assert not bad, f"default artifact paths written outside paths.py: {bad}"


def test_config_docstrings_document_each_field_where_tyro_reads_it():
    # tyro shows a field's help only from a Google-style "Attributes:" block after a summary line
    # (one entry per field); a docstring that *starts* with "Attributes:" shows none
    bad = [str(p.relative_to(PKG)) for p in _modules() if '"""Attributes:' in p.read_text()]
    assert not bad, f"config docstrings that tyro cannot read per field: {bad}"
