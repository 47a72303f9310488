#!/usr/bin/env bash
# The widened-damping chain's pretrained planner (checkpoints/diffusion/cpu_pd_standardize_recovery,
# experiments/finetune/pd_chain.md) on the robot path of both simulators, at 0.5 and 1.0 m/s:
# 20 runs of 20 s each (a fresh robot process per run), the robot's sampler (DDIM-5, N = 1).
# Run with nothing else on the machine.
# Usage: bash experiments/sim2sim/pd_chain/run.sh <unitree_mujoco checkout> [repeats] [rows...]
#   rows: ours_0.5 ours_1.0 unitree_0.5 unitree_1.0 (default: all four)
set -euo pipefail
cd "$(dirname "$0")/../../.."
UM=${1:?usage: run.sh <unitree_mujoco checkout> [repeats] [rows...]}
N=${2:-20}
shift $(( $# < 2 ? $# : 2 ))
ROWS=${*:-ours_0.5 ours_1.0 unitree_0.5 unitree_1.0}
P=checkpoints/diffusion/cpu_pd_standardize_recovery
for row in $ROWS; do
  sim=${row%_*}; v=${row##*_}
  args="--cfg.repeats $N --cfg.seed 0 --cfg.walk-s 20 --cfg.command $v 0 0 --cfg.sampler ddim5 --cfg.planner-cpus last --cfg.auto-margin --cfg.out-dir experiments/sim2sim/pd_chain/$row"
  case $sim in
    ours) make sim2sim PLANNER=$P ARGS="$args" ;;
    unitree) make sim2sim PLANNER=$P SIM=unitree UNITREE_MUJOCO="$UM" ARGS="$args" ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
done
