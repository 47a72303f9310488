"""Runs a ``dmpc`` command in this process while JAX's monitoring events sum its compile work
(tracing, lowering, XLA compiles and cache reads), written as JSON to ``$DMPC_COMPILE_LOG`` at exit.
Usage: python hook.py <dmpc arguments...> (measure.py runs it)."""

import atexit
import json
import os
import sys
import time

# first: the compile cache and XLA's log level, as `dmpc` does
import dmpc_jax  # noqa: F401

# isort: split
import jax.monitoring as monitoring

T0 = time.monotonic()
totals: dict[str, float] = {}
counts: dict[str, int] = {}


def _duration(event: str, secs: float, **_) -> None:
    totals[event] = totals.get(event, 0.0) + secs
    counts[event] = counts.get(event, 0) + 1


def _event(event: str, **_) -> None:
    counts[event] = counts.get(event, 0) + 1


def _write() -> None:
    out = {"process_s": time.monotonic() - T0, "seconds": totals, "counts": counts}
    with open(os.environ["DMPC_COMPILE_LOG"], "w") as f:
        json.dump(out, f, indent=1)


monitoring.register_event_duration_secs_listener(_duration)
monitoring.register_event_listener(_event)
atexit.register(_write)

if __name__ == "__main__":
    from dmpc_jax.cli import main

    sys.argv = ["dmpc", *sys.argv[1:]]
    sys.exit(main())
