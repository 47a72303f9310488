#!/usr/bin/env bash
# The sim2sim rows of the robot-path issue beyond the 0.5 m/s page (experiments/sim2sim/README.md):
# 1.0 m/s, a task switch (nominal -> energy at 10 s), and Unitree's own simulator at 0.5 m/s.
# 20 runs of 20 s each, a fresh robot process per run. Run with nothing else on the machine.
# The PPO demonstrator on the robot path (exported policy, same runner and safety layer) on both
# simulators at 0.5 and 1.0 m/s: rows demo_ours_0.5 demo_ours_1.0 demo_unitree_0.5 demo_unitree_1.0.
# Usage: bash experiments/sim2sim/run_rows.sh [repeats] [unitree_mujoco checkout] [rows...]
#   rows: walk_1.0 switch unitree (default: these three), and the demo_* rows
#   DEMO=<run name under checkpoints/demonstrator> (default cpu): the demonstrator of the demo_*
#   rows; another than cpu writes its rows to experiments/sim2sim/demonstrator/<DEMO>/
set -euo pipefail
N=${1:-20}
UM=${2:-}
shift $(( $# < 2 ? $# : 2 ))
ROWS=${*:-walk_1.0 switch unitree}
common="--cfg.repeats $N --cfg.walk-s 20 --cfg.auto-margin"
DEMO=${DEMO:-cpu}
demo_out=experiments/sim2sim/demonstrator$([ "$DEMO" = cpu ] || echo "/$DEMO")
demo_args="--cfg.demonstrator-run checkpoints/demonstrator/$DEMO --cfg.demonstrator-exported exported/demonstrator_$DEMO"
for row in $ROWS; do
  case $row in
    walk_1.0) make sim2sim ARGS="$common --cfg.command 1.0 0 0 --cfg.out-dir experiments/sim2sim/walk_1.0" ;;
    switch) make sim2sim ARGS="$common --cfg.switch-to energy --cfg.switch-at 10 --cfg.out-dir experiments/sim2sim/switch_energy" ;;
    unitree) if [ -n "$UM" ]; then make sim2sim SIM=unitree UNITREE_MUJOCO="$UM" ARGS="$common"; fi ;;
    demo_ours_0.5|demo_ours_1.0)
      v=${row##*_}
      make sim2sim CONTROLLER=demonstrator ARGS="$common $demo_args --cfg.command $v 0 0 --cfg.out-dir $demo_out/ours_$v" ;;
    demo_unitree_0.5|demo_unitree_1.0)
      v=${row##*_}
      make sim2sim SIM=unitree UNITREE_MUJOCO="$UM" CONTROLLER=demonstrator ARGS="$common $demo_args --cfg.command $v 0 0 --cfg.out-dir $demo_out/unitree_$v" ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
done
