# One target per stage. Every target installs what it needs into a local venv first.
PY_SYS ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PRESET ?= cpu
export MUJOCO_GL ?= egl

# NPROC=2: the training stages run as NPROC local processes under jax.distributed (dmpc launch,
# gloo collectives on CPU); on a cluster the scheduler starts them (README, "Scale out").
STAGE = $(if $(NPROC),$(VENV)/bin/dmpc launch --nproc $(NPROC) --,$(VENV)/bin/dmpc)

# the planner that demo, eval, export, sim2sim and deploy use: the DAgger rounds' pick
# (experiments/finetune/rounds); PLANNER=checkpoints/rwr/$(PRESET) the RWR-finetuned one (make finetune)
PLANNER ?= checkpoints/dagger/r2_s0

.PHONY: venv test test-fast check-pages demo bench-env bench-ppo demonstrator eval-policy dataset pretrain finetune eval eval-suite eval-sweep export sim2sim sim2sim-faults deploy bench lint gl clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

# Offscreen rendering needs an EGL/Mesa stack; install it from Debian when it is missing.
gl:
	@ldconfig -p | grep -q libEGL.so.1 || (apt-get update -qq && apt-get install -y -qq libegl1 libgl1 libgl1-mesa-dri >/dev/null)

# TEST_WORKERS pytest-xdist processes (default 2: one per core of the 2-core machines this runs on);
# each test file runs whole in one worker (its module fixtures are built once; the DDS tests of
# tests/deploy/test_sim2sim.py never run beside each other), the heaviest files first
# (tests/conftest.py HEAVY_FILES, kept in that order by --no-loadscope-reorder). TEST_WORKERS=0:
# one process.
TEST_WORKERS ?= 2
test: venv
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

# logic, shapes and the tiny model only: no MJX compile, no training, no process (tests marked slow)
test-fast: venv
	$(PY) -m pytest -q -m "not slow"

# every experiments page a renderer knows, rendered again from its results.json and compared (also
# a test of make test: tests/evaluate/test_pages.py)
check-pages: venv
	$(VENV)/bin/dmpc check-pages

demo: venv gl
	$(VENV)/bin/dmpc demo

# Sampler latency grid vs the PyTorch baseline (installs the bench extra: torch, einops);
# AUTHORS=<checkout of the authors' release> adds their own sampler's rows.
bench: venv
	$(PY) -c "import torch, einops" 2>/dev/null || $(PY) -m pip install --quiet -e ".[dev,bench]"
	$(VENV)/bin/dmpc bench $(if $(AUTHORS),--cfg.authors $(AUTHORS)) $(ARGS)

bench-env: venv
	$(VENV)/bin/dmpc bench-env $(ARGS)

# PPO training throughput: env batch on 1 device, 2 devices, 2 processes (same run)
bench-ppo: venv
	$(VENV)/bin/dmpc bench-ppo $(ARGS)

# PRESET=tiny|cpu|paper; ARGS="--resume" continues a run after a kill. On CPU the env batch is
# split over HOST_DEVICES forced host devices (2 on 2 cores: 1.33x the PPO throughput of one,
# experiments/demonstrator/throughput.md); NPROC=N runs N processes instead.
HOST_DEVICES ?= 2
demonstrator: venv
	$(if $(NPROC),,XLA_FLAGS="$$XLA_FLAGS --xla_force_host_platform_device_count=$(HOST_DEVICES)") \
	$(STAGE) demonstrator --preset $(PRESET) $(ARGS)

eval-policy: venv gl
	$(VENV)/bin/dmpc eval-policy --cfg.run-dir checkpoints/demonstrator/$(PRESET) $(ARGS)

dataset: venv
	$(VENV)/bin/dmpc dataset --preset $(PRESET) --cfg.demonstrator checkpoints/demonstrator/$(PRESET) $(ARGS)

pretrain: venv
	$(STAGE) pretrain --preset $(PRESET) $(ARGS)

# RWR finetuning of the planner on its own rollouts (PRESET=tiny|cpu|paper; ARGS="--resume").
finetune: venv
	$(STAGE) finetune --preset $(PRESET) $(ARGS)

# TASK=<name> of dmpc_jax/scenario/tasks.py; ARGS="--cfg.set weights.energy=0.1" etc.
TASK ?= walk_1.0
# SUITE="walk_1.0 energy ..." runs a subset; empty: dmpc_jax/scenario/tasks.py SUITE
SUITE ?=
eval: venv gl
	$(VENV)/bin/dmpc eval --cfg.task $(TASK) --cfg.planner-run $(PLANNER) $(ARGS)

eval-suite: venv gl
	$(VENV)/bin/dmpc eval-suite $(if $(SUITE),--tasks $(SUITE)) --cfg.planner-run $(PLANNER) $(ARGS)

# Success across receding-horizon settings E/D[/warm[/N]]: VARIANTS="11/4 20/4", TASK=...
VARIANTS ?= 4/1 11/4 16/4 20/4 24/4
eval-sweep: venv
	$(VENV)/bin/dmpc eval-sweep --cfg.task $(TASK) --cfg.planner-run $(PLANNER) --variants $(VARIANTS) $(ARGS)

# jax.export of the plan step (cpu + cuda) with meta.json: PLANNER=<run>; the real-time default
# sampler (DDIM-5, N = 1) unless ARGS="--sampler ddpm --num-candidates 16" etc.
export: venv
	$(VENV)/bin/dmpc export --run-dir $(PLANNER) $(ARGS)

# A test-time task on the robot path only when given: make sim2sim TASK=energy (or a TaskSpec file),
# a switch with ARGS="--cfg.switch-to height_low --cfg.switch-at 10".
ROBOT_TASK = $(if $(filter command line environment,$(origin TASK)),--cfg.task $(TASK))

# The deploy runner walks a native-MuJoCo Go2 over DDS on loopback (installs the robot extra).
# SIM=unitree UNITREE_MUJOCO=<checkout>: Unitree's own Go2 model and Python bridge instead
# (git clone https://github.com/unitreerobotics/unitree_mujoco; page: experiments/sim2sim/unitree).
SIM ?= ours
PEER = $(if $(filter unitree,$(SIM)),--cfg.sim unitree --cfg.unitree-mujoco "$(UNITREE_MUJOCO)")
# CONTROLLER=demonstrator: the exported PPO policy instead of the planner (sim2sim and deploy)
CONTROLLER ?= planner
CTRL = $(if $(filter demonstrator,$(CONTROLLER)),--cfg.controller demonstrator)
sim2sim: venv
	$(PY) -c "import unitree_sdk2py" 2>/dev/null || $(PY) -m pip install --quiet -e ".[dev,robot]"
	$(VENV)/bin/dmpc sim2sim --cfg.planner-run $(PLANNER) $(ROBOT_TASK) $(PEER) $(CTRL) $(ARGS)

# Faults over real DDS (simulator stops / freezes / sends NaN, planner process killed)
sim2sim-faults: venv
	$(PY) -c "import unitree_sdk2py" 2>/dev/null || $(PY) -m pip install --quiet -e ".[dev,robot]"
	$(VENV)/bin/dmpc sim2sim-faults --cfg.sim.planner-run $(PLANNER) --cfg.sim.auto-margin $(ARGS)

# A real Go2 (robot extra with cyclonedds 0.10.2, see README): dry run unless LIVE=1.
deploy: venv
	$(VENV)/bin/dmpc deploy $(ROBOT_TASK) $(CTRL) $(ARGS)

lint: venv
	$(VENV)/bin/ruff format --check dmpc_jax tests
	$(VENV)/bin/ruff check dmpc_jax tests

clean:
	rm -rf $(VENV) .pytest_cache
