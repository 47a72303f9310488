"""The table of bench_old_new.sh's logs: p50 per configuration and run, and the ratio of the
new code's mean to the old code's. Usage: python bench_table.py OUT_DIR."""

import json
import sys
from pathlib import Path


def rows(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith('{"impl"'):
            r = json.loads(line)
            out[(r["model"], r["variant"], r["N"])] = r["p50_ms"]
    return out


out = Path(sys.argv[1])
runs = {
    p.stem: rows(p)
    for p in sorted(
        out.glob("*_[12].log"), key=lambda p: (p.stem[-1], not p.stem.startswith("old"))
    )
}
keys = sorted(set().union(*runs.values()))
print("| model | sampler | N | " + " | ".join(f"p50 ms ({k})" for k in runs) + " | new / old |")
print("|---|---|---:|" + "---:|" * (len(runs) + 1))
for k in keys:
    old = [r[k] for n, r in runs.items() if n.startswith("old") and k in r]
    new = [r[k] for n, r in runs.items() if n.startswith("new") and k in r]
    ratio = (sum(new) / len(new)) / (sum(old) / len(old))
    cells = " | ".join(f"{r[k]:.1f}" if k in r else "-" for r in runs.values())
    print(f"| {k[0]} | {k[1]} | {k[2]} | {cells} | {ratio:.3f} |")
