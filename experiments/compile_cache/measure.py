"""First and second run of ``make demo``, ``dmpc eval`` (8 episodes) and ``dmpc sim2sim`` (1 run)
with an empty, then a warm compilation cache (a fresh directory per command, DMPC_COMPILE_CACHE):
wall time, time to the first step (``dmpc_jax.milestones``: the first action the robot runner
executes, ``dmpc sim2sim``; the moment the first compiled rollout starts to run, ``make demo``
and ``dmpc eval``, compiled ahead of time by ``milestones.marking``), and the
compile work JAX reports in the command's main process (tracing, lowering, XLA compiles, cache
reads; hook.py). Writes results.json and README.md here.

Usage: .venv/bin/python experiments/compile_cache/measure.py [--only demo eval sim2sim]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dmpc_jax import milestones

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCRATCH = Path(tempfile.gettempdir()) / "dmpc_compile_cache_measure"
COMMANDS = {
    # the demo writes its page; measure.py restores the committed one afterwards
    "demo": ["demo"],
    "eval": ["eval", "--cfg.task", "walk_1.0", "--cfg.episodes", "8", "--cfg.controllers", "task",
             "--cfg.rules", "strict", "--cfg.no-video", "--cfg.out-dir", str(SCRATCH / "eval")],
    "sim2sim": ["sim2sim", "--cfg.repeats", "1", "--cfg.walk-s", "5", "--cfg.auto-margin",
                "--cfg.out-dir", str(SCRATCH / "sim2sim")],
}  # fmt: skip
COMPILE_EVENTS = {
    "trace": "/jax/core/compile/jaxpr_trace_duration",
    "lower": "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "backend compile": "/jax/core/compile/backend_compile_duration",
    "cache read": "/jax/compilation_cache/cache_retrieval_time_sec",
}


def run_once(name: str, cache: Path) -> dict:
    log = SCRATCH / f"{name}.json"
    marks = SCRATCH / f"{name}_milestones.jsonl"
    marks.unlink(missing_ok=True)
    env = {**os.environ, "DMPC_COMPILE_CACHE": str(cache), "DMPC_COMPILE_LOG": str(log),
           "DMPC_MILESTONES": str(marks)}  # fmt: skip
    launched = time.time()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / "hook.py"), *COMMANDS[name]], cwd=ROOT,
                          env=env, capture_output=True, text=True)  # fmt: skip
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    hooked = json.loads(log.read_text())
    secs = {k: round(hooked["seconds"].get(ev, 0.0), 2) for k, ev in COMPILE_EVENTS.items()}
    first = milestones.read(marks)
    return {
        "wall_s": round(wall, 1),
        "first_step_s": None if first is None else round(first - launched, 1),
        "compile_s": round(sum(v for k, v in secs.items()), 1),
        "compile_parts_s": secs,
        "compile_calls": hooked["counts"].get(COMPILE_EVENTS["backend compile"], 0),
        "cache_hits": hooked["counts"].get(COMPILE_EVENTS["cache read"], 0),
        "cache_misses": hooked["counts"].get("/jax/compilation_cache/cache_misses", 0),
    }


def render(results: dict) -> str:
    lines = [
        "# Compile once: first and second run of three commands",
        "",
        'Deliverable 1 of "Fast feedback". Each command ran twice in a row with its own empty '
        "compilation cache (`DMPC_COMPILE_CACHE=<fresh dir>`): the first run compiles and writes "
        "the cache, the second reads it. Compile time is what JAX reports in the command's main "
        "process (tracing + lowering + XLA compiles + cache reads, `hook.py`): an upper bound, "
        "since a function traced inside another one is counted in both; `dmpc sim2sim`'s "
        "planner process and simulated robot are not in it, only in its wall time. Compile "
        "calls: the backend compilations JAX asked for, served by XLA or by the cache (only "
        "those that took over 1 s are written to the cache, JAX's default).",
        "",
        f"Machine: {results['machine']}. Produced by `{results['command']}`.",
        "",
        "| command | run | wall (s) | to first step (s) | compile (s) | compile calls | "
        "cache hits | wall: first / second | first step: first / second | "
        "compile: first / second |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (first, second) in results["runs"].items():
        shown = " ".join(COMMANDS[name][:1])
        for i, r in enumerate((first, second)):
            step = r.get("first_step_s")  # rows measured before the milestones have none
            if i == 1:
                comp = (f"{first['compile_s'] / second['compile_s']:.1f}x"
                        if second["compile_s"] > 0 else "-")  # fmt: skip
                f0, f1 = first.get("first_step_s"), step
                fs = f"{f0 / f1:.2f}x" if f0 and f1 else "-"
                ratio = f"{first['wall_s'] / second['wall_s']:.2f}x | {fs} | {comp}"
            else:
                ratio = " | | "
            lines.append(
                f"| `dmpc {shown}` | {'first' if i == 0 else 'second'} | {r['wall_s']} | "
                f"{'-' if step is None else step} | {r['compile_s']} | {r['compile_calls']} | "
                f"{r['cache_hits']} | {ratio} |"
            )
    lines += ["", "Commands (run through `hook.py`):", ""]
    lines += [f"- `dmpc {' '.join(c)}`" for c in COMMANDS.values()]
    notes = HERE / "notes.md"  # the reading of the numbers, written by hand
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=list(COMMANDS))
    ap.add_argument(
        "--render", action="store_true", help="only re-write README.md from results.json"
    )
    args = ap.parse_args()
    if args.render:
        (HERE / "README.md").write_text(render(json.loads((HERE / "results.json").read_text())))
        return
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    demo_page = {p: p.read_bytes() for p in (ROOT / "experiments/demo").glob("demo.*")}
    runs = {}
    try:
        for name in args.only:
            cache = SCRATCH / f"cache_{name}"
            runs[name] = [run_once(name, cache) for _ in range(2)]
            print(name, json.dumps(runs[name]), flush=True)
    finally:
        for p, data in demo_page.items():
            p.write_bytes(data)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")  # fmt: skip
    old = HERE / "results.json"  # rows of commands not re-run this time are kept
    kept = json.loads(old.read_text()) if old.exists() and args.only != list(COMMANDS) else {}
    commands = {**kept.get("commands", {}), **{n: f"python experiments/compile_cache/measure.py"
                f" --only {' '.join(args.only)}" for n in runs}}  # fmt: skip
    results = {
        "machine": f"{os.cpu_count()} cores, {cpu}",
        "command": "python experiments/compile_cache/measure.py (rows: see commands)",
        "commands": commands,
        "runs": {**kept.get("runs", {}), **runs},
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "README.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
