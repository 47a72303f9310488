#!/usr/bin/env bash
# Attribution of "One robot, two simulators": each difference between our Go2 model and Unitree's
# go2.xml (experiments/sim2sim/models) swapped into our MJX env one at a time, then all together;
# the planner (checkpoints/rwr/cpu) and the PPO demonstrator on the same keys at 0.5 and 1.0 m/s.
# Usage: bash experiments/sim2sim/attribution/run.sh [episodes] [variants...]
#   then: .venv/bin/python experiments/sim2sim/attribution/make_table.py
set -euo pipefail
cd "$(dirname "$0")/../../.."
source experiments/sim2sim/unitree_set.sh
EP=${1:-64}
shift $(( $# < 1 ? $# : 1 ))
VARIANTS=${*:-ours damping friction solver timestep condim unitree}
out=experiments/sim2sim/attribution
for v in $VARIANTS; do
  case $v in
    ours) set_=() ;;
    damping) set_=("randomization.joint_damping_scale=[0.05,0.05]") ;;  # 2.0 -> 0.1 N m s/rad
    friction) set_=("randomization.friction=[0.4,0.4]") ;;  # floor and feet: Unitree's 0.4
    solver) set_=("solver_iterations=100" "cone=elliptic" "impratio=100") ;;
    timestep) set_=("sim_dt=0.005") ;;
    condim) set_=("foot_condim=6") ;;
    unitree) set_=("${UNITREE_SET[@]}") ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  for task in walk_0.5 walk_1.0; do
    .venv/bin/dmpc eval --cfg.task "$task" --cfg.controllers task demonstrator \
      --cfg.episodes "$EP" --cfg.episode-s 20 --cfg.num-candidates 1 --cfg.method ddpm \
      --cfg.rules strict paper box --cfg.seed 0 --cfg.no-video \
      ${set_[@]+--cfg.env-set "${set_[@]}"} --cfg.out-dir "$out/${v}_${task}"
  done
done
