"""Compares two evaluation pages' results.json value by value (every controller's numbers, every
fall event), ignoring wall time, plan latency and the config block (paths differ).

Usage: python compare_results.py OLD_TASKS_DIR NEW_TASKS_DIR TASK [TASK ...]
(e.g. experiments/tasks /tmp/evalcheck/experiments/tasks walk_1.0 energy)."""

import json
import sys
from pathlib import Path

IGNORE = {"wall_s", "plan_latency_ms", "config"}


def diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k in IGNORE:
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: on one side only")
            else:
                out += diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{path}[{i}]")
        ]
    same = a == b or (a != a and b != b)  # NaN equals NaN here
    return [] if same else [f"{path}: {a!r} vs {b!r}"]


def count(x):
    if isinstance(x, dict):
        return sum(count(v) for v in x.values())
    if isinstance(x, list):
        return sum(count(v) for v in x)
    return 1


if __name__ == "__main__":
    old_dir, new_dir, *tasks = sys.argv[1:]
    for task in tasks:
        old = json.loads((Path(old_dir) / task / "results.json").read_text())
        new = json.loads((Path(new_dir) / task / "results.json").read_text())
        d = diff(old, new)
        print(f"{task}: {count(old['controllers'])} controller values compared, {len(d)} differ")
        for line in d[:20]:
            print("  ", line)
