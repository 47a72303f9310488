"""The persistent compilation cache (dmpc_jax/compile_cache.py): per-user by default, moved or
turned off by DMPC_COMPILE_CACHE, inherited by child processes, on in this test process."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from dmpc_jax.compile_cache import cache_dir


def test_default_is_per_user_and_the_variable_moves_or_disables_it(tmp_path):
    home = Path.home()
    assert cache_dir({}) == home / ".cache" / "dmpc_jax" / "xla"
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "dmpc_jax" / "xla"
    assert cache_dir({"DMPC_COMPILE_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    for off in ("off", "0", "false", "NO", ""):
        assert cache_dir({"DMPC_COMPILE_CACHE": off}) is None


def test_this_process_compiles_through_the_cache():
    # conftest imports JAX before the package: enable() must still have set JAX's flag
    assert jax.config.jax_compilation_cache_dir == os.environ["JAX_COMPILATION_CACHE_DIR"]


def _child_cache_dir(env: dict) -> str:
    code = "import jax, dmpc_jax; print(jax.config.jax_compilation_cache_dir)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow  # starts processes
def test_a_child_process_inherits_moves_or_drops_the_cache(tmp_path):
    # the child gets this process's environment, cache variable included, as a subprocess does
    env = dict(os.environ)
    assert _child_cache_dir(env) == os.environ["JAX_COMPILATION_CACHE_DIR"]
    assert _child_cache_dir({**env, "DMPC_COMPILE_CACHE": str(tmp_path)}) == str(tmp_path)
    assert _child_cache_dir({**env, "DMPC_COMPILE_CACHE": "off"}) == "None"
    # a JAX_COMPILATION_CACHE_DIR the user set wins
    user = str(tmp_path / "mine")
    assert _child_cache_dir({**env, "JAX_COMPILATION_CACHE_DIR": user}) == user


@pytest.mark.slow  # starts processes
def test_loading_a_cached_executable_logs_nothing(tmp_path):
    # XLA:CPU logs two ERROR lines per executable it reads from the cache on CPUs whose tuning
    # flags it mistakes for missing features (jax-ml/jax#38445); the package, imported before JAX
    # as `dmpc` does, sets XLA's C++ log level so that a second run starts clean, and keeps a
    # level the user chose. (Imported after JAX it is too late: JAX has read the level.)
    code = (
        "import dmpc_jax, jax, jax.numpy as jnp, os\n"
        "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)\n"
        "print(float(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).sum()))\n"
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
    )
    env = {**os.environ, "DMPC_COMPILE_CACHE": str(tmp_path)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True) for _ in range(2)]  # fmt: skip
    assert any(tmp_path.iterdir())  # the first run wrote the executable the second one read
    assert "cpu_aot_loader" not in runs[1].stderr and "pjrt_executable" not in runs[1].stderr
    assert runs[1].stdout.split()[-1] == "3"
    mine = subprocess.run([sys.executable, "-c", code], env={**env, "TF_CPP_MIN_LOG_LEVEL": "1"},
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert mine.stdout.split()[-1] == "1"


def test_marking_compiles_ahead_marks_before_the_first_run_and_reuses_it(tmp_path, monkeypatch):
    """``milestones.marking``: unset, the jitted function itself; set, each signature compiles
    once ahead of time, ``first_step`` is marked once, and results match the jitted call."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dmpc_jax import milestones

    traces = []

    @jax.jit
    def f(x, scale=1.0):
        traces.append(x.shape)
        return jnp.cumsum(x) * scale

    monkeypatch.delenv(milestones.ENV_VAR, raising=False)
    assert milestones.marking(f) is f
    log = tmp_path / "milestones.jsonl"
    monkeypatch.setattr(milestones, "_marked", set())
    monkeypatch.setenv(milestones.ENV_VAR, str(log))
    g = milestones.marking(f)
    x = jnp.arange(4.0)
    np.testing.assert_array_equal(g(x, 2.0), f(x, 2.0))
    assert milestones.read(log) is not None
    g(x + 1, 3.0)  # same signature: the compiled call, no trace
    g(jnp.arange(6.0), 2.0)  # a new shape compiles again
    assert traces == [(4,), (6,)]  # one trace per shape (jit and lower share it)
    assert len(log.read_text().splitlines()) == 1
    # called inside another jitted function (the harness jits a rollout of marked segments):
    # traced inline, where a compiled executable would refuse the tracers
    outer = jax.jit(lambda x: g(x, 2.0) + 1.0)
    np.testing.assert_array_equal(outer(jnp.arange(5.0)), f(jnp.arange(5.0), 2.0) + 1.0)
