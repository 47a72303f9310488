"""JAX's persistent compilation cache, on for every ``dmpc`` command, its child processes and the
tests: a compiled MJX env or planner is written once per user and read back by the next process
that compiles the same function (same shapes, flags, jax and XLA versions).

``DMPC_COMPILE_CACHE`` chooses where: unset, the per-user directory
``$XDG_CACHE_HOME/dmpc_jax/xla`` (``~/.cache/dmpc_jax/xla``); a path moves it; ``off`` (or ``0``,
``false``, ``no``, empty) turns it off. A ``JAX_COMPILATION_CACHE_DIR`` the user set wins.

Nothing here imports JAX: processes that must not load it (the simulated robot) stay free of it.
The setting travels by environment variable, which JAX reads when it is first imported, so
child processes inherit it; where JAX is already imported, its config is updated as well.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "DMPC_COMPILE_CACHE"
MARK = "DMPC_COMPILE_CACHE_SET"  # the JAX_COMPILATION_CACHE_DIR that enable() itself chose
JAX_VAR = "JAX_COMPILATION_CACHE_DIR"
OFF = ("", "0", "off", "false", "no")
# XLA's C++ log level (TSL logging reads it when jaxlib loads). With the cache on, XLA:CPU logs two
# ERROR lines per cached executable it loads on CPUs whose LLVM tuning flags (+prefer-no-gather,
# +prefer-no-scatter) it mistakes for missing ISA features, although it loads and runs them
# (jax-ml/jax#38445, openxla/xla#44565): 3 keeps only FATAL. A user's own value wins.
LOG_VAR = "TF_CPP_MIN_LOG_LEVEL"


def cache_dir(environ: dict | None = None) -> Path | None:
    """The cache directory ``DMPC_COMPILE_CACHE`` selects, or None when it is off."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_VAR)
    if value is None:
        base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "dmpc_jax" / "xla"
    if value.strip().lower() in OFF:
        return None
    return Path(value).expanduser()


def enable() -> Path | None:
    """Turn the cache on as ``DMPC_COMPILE_CACHE`` says; returns the directory in use (None: off).
    Compilations shorter than 1 s are not written (JAX's default threshold). A cache directory a
    parent process chose is chosen again here (this process may say otherwise); one the user set
    in ``JAX_COMPILATION_CACHE_DIR`` is kept."""
    path = cache_dir()
    inherited = os.environ.get(MARK)
    if inherited is not None and os.environ.get(JAX_VAR) == inherited:
        del os.environ[JAX_VAR], os.environ[MARK]
    if path is not None and JAX_VAR not in os.environ:
        os.environ[JAX_VAR] = os.environ[MARK] = str(path)
    if os.environ.get(JAX_VAR) is not None:
        os.environ.setdefault(LOG_VAR, "3")
    chosen = os.environ.get(JAX_VAR)
    if "jax" in sys.modules:  # already imported: it read the variable before we set it
        import jax

        current = jax.config.jax_compilation_cache_dir
        if current is None or current == inherited:  # not the user's own choice
            jax.config.update("jax_compilation_cache_dir", chosen)
    return None if chosen is None else Path(chosen)
