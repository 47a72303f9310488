"""Shared, compiled-once fixtures: MJX compiles cost 10-30 s each on 2 cores. A test that uses one of
``SLOW_FIXTURES`` is marked ``slow`` here (``make test-fast`` skips it); a test marks itself slow
when it trains, compiles MJX on its own or starts processes."""

# ruff: noqa: E402 (the XLA flags below are set before anything imports JAX)

# XLA compiles for the tests without its expensive LLVM passes: the tests run a few steps of what
# they compile, so compile time is most of their time (about half of it goes with these flags;
# the executables run up to 2x slower). Set before JAX creates its backend, and inherited by the
# processes the tests start; DMPC_TEST_XLA_OPT=1 keeps XLA's defaults.
import os

TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if os.environ.get("DMPC_TEST_XLA_OPT") != "1" and TEST_XLA_FLAGS not in os.environ.get(
    "XLA_FLAGS", ""
):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
# the tests' programs mostly compile in under a second with those flags, and JAX writes only
# compiles of 1 s or more to the persistent cache: a warm `make test` compiled them all again
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# first of the package: it sets XLA's C++ log level before JAX loads (compile_cache.py); then
# the CLI, which imports mujoco.mjx without its optional Warp backend's message (an xdist worker
# imports this file before pytest captures its output)
import dmpc_jax  # noqa: F401
import dmpc_jax.cli  # noqa: F401

# isort: split
import chex
import jax
import numpy as np
import pytest

from dmpc_jax.config import env_preset
from dmpc_jax.diffusion import model as M
from dmpc_jax.envs.go2_joystick import Go2Joystick
from dmpc_jax.planner.sampler import SamplerConfig, make_plan_fn
from dmpc_jax.robot import go2

# robot constants of the planner tests (the paper's pose and gains)
ROBOT = dict(
    q_default=go2.paper_default_pose().astype(np.float32), kp=40.0, kd=1.0, action_scale=0.5
)
PLAN_CANDIDATES = 4  # N of the shared plan functions (and of the export tests' artifact)


@pytest.fixture(scope="session")
def env() -> Go2Joystick:
    return Go2Joystick(env_preset("tiny"))


@pytest.fixture(scope="session")
def env_fns(env):
    """(reset, step) of the unbatched env, each jitted once for the session; step raises if it is
    ever traced twice (a recompile)."""
    return jax.jit(env.reset), jax.jit(chex.assert_max_traces(env.step, n=1))


@pytest.fixture(scope="session")
def model():
    """(cfg, nets, params, schedule, scaler) of the tiny random-init diffusion model."""
    cfg = M.diffusion_preset("tiny")
    nets, params = M.init_networks(cfg, jax.random.PRNGKey(0))
    return cfg, nets, params, M.schedule_for(cfg), M.paper_scaler()


@pytest.fixture(scope="session")
def plans(model):
    """(guided, unguided) plan functions of the tiny model, each jitted once for the session;
    the guided one raises if it is ever retraced (changing tasks, bounds or the command must not
    recompile). Shared by the planner and export tests."""
    cfg, nets, params, sched, scaler = model
    scfg = SamplerConfig(num_candidates=PLAN_CANDIDATES)
    guided = make_plan_fn(nets, cfg, scfg, sched, scaler, **ROBOT)
    plain = make_plan_fn(nets, cfg, scfg, sched, scaler, **ROBOT, guided=False)
    return jax.jit(chex.assert_max_traces(guided, n=1)), jax.jit(plain)


# fixtures that compile the MJX env, train a tiny run, or start processes: their tests are slow
SLOW_FIXTURES = {"env", "env_fns", "tiny_run", "two_device_run", "resumed_run", "cached_plan",
                 "exported", "tiny_nets"}  # fmt: skip


# the files that take longest on one worker (`--durations` of a cold `make test`), heaviest first:
# `make test` hands files to its workers in collection order (`--no-loadscope-reorder`), so these
# start first and the short files fill in behind them; xdist's own order (most tests first) left
# the one-test pipeline file for last, with the other worker idle for minutes. xdist also hands
# each worker a second file at once when its first holds two tests or fewer: the pipeline's one
# test takes ``PIPELINE_PARTNER``, a short file, so the next heavy file goes to the other worker
# instead of queueing behind the pipeline (it did: pipeline and pretraining, about 430 s cold,
# on one worker)
PIPELINE_PARTNER = "test_config.py"
HEAVY_FILES = ("test_pipeline.py", "planner/test_planner.py", PIPELINE_PARTNER,
               "diffusion/test_pretrain.py", "finetune/test_dagger.py", "rl/test_rl.py",
               "envs/test_env.py", "deploy/test_export.py", "finetune/test_rwr_selection.py",
               "planner/test_mpc.py", "evaluate/test_offline_fidelity.py")  # fmt: skip
_BUSY: dict[str, float] = {}  # seconds of setup, call and teardown per xdist worker


def _weight(item) -> int:
    path = item.nodeid.split("::")[0].removeprefix("tests/")
    return HEAVY_FILES.index(path) if path in HEAVY_FILES else len(HEAVY_FILES)


def pytest_runtest_logreport(report):
    node = getattr(report, "node", None)  # the worker a report came from (xdist's controller)
    if node is not None:
        key = node.gateway.id
        _BUSY[key] = _BUSY.get(key, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    """How busy each worker was: a worker idle long before the other says the files' order
    (``HEAVY_FILES``) no longer balances them."""
    if _BUSY:
        busy = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(_BUSY.items()))
        terminalreporter.write_line(f"busy time per worker (setup + call + teardown): {busy}")


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    items.sort(key=_weight)  # stable: the other files keep their order
