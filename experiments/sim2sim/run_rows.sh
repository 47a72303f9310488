#!/usr/bin/env bash
# The sim2sim rows of the robot-path issue beyond the 0.5 m/s page (experiments/sim2sim/README.md):
# 1.0 m/s, a task switch (nominal -> energy at 10 s), and Unitree's own simulator at 0.5 m/s.
# 20 runs of 20 s each, a fresh robot process per run. Run with nothing else on the machine.
# Usage: bash experiments/sim2sim/run_rows.sh [repeats] [unitree_mujoco checkout]
set -euo pipefail
N=${1:-20}
UM=${2:-}
common="--cfg.repeats $N --cfg.walk-s 20 --cfg.auto-margin"
make sim2sim ARGS="$common --cfg.command 1.0 0 0 --cfg.out-dir experiments/sim2sim/walk_1.0"
make sim2sim ARGS="$common --cfg.switch-to energy --cfg.switch-at 10 --cfg.out-dir experiments/sim2sim/switch_energy"
if [ -n "$UM" ]; then
  make sim2sim SIM=unitree UNITREE_MUJOCO="$UM" ARGS="$common"
fi
