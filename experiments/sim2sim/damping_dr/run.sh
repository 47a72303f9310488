#!/usr/bin/env bash
# The PPO demonstrator trained on with the joint damping widened to [0.1, 2.4] N m s/rad
# (checkpoints/demonstrator/cpu_damping, made by the command in its commands.txt) against the
# shipped one (checkpoints/demonstrator/cpu), on our model (damping randomised as the shipped
# one was trained: [1.6, 2.4]) and with every difference of Unitree's go2.xml at once (the
# attribution's "unitree" variant), on the same keys at 0.5 and 1.0 m/s.
# Usage: bash experiments/sim2sim/damping_dr/run.sh [episodes] [demonstrators...]
#   then: .venv/bin/python experiments/sim2sim/damping_dr/make_table.py
set -euo pipefail
cd "$(dirname "$0")/../../.."
source experiments/sim2sim/unitree_set.sh
EP=${1:-64}
shift $(( $# < 1 ? $# : 1 ))
DEMOS=${*:-cpu cpu_damping}
out=experiments/sim2sim/damping_dr
for d in $DEMOS; do
  for v in ours unitree; do
    case $v in
      ours) set_=("randomization.joint_damping_scale=[0.8,1.2]") ;;
      unitree) set_=("${UNITREE_SET[@]}") ;;
    esac
    for task in walk_0.5 walk_1.0; do
      .venv/bin/dmpc eval --cfg.task "$task" --cfg.controllers demonstrator \
        --cfg.demonstrator-run "checkpoints/demonstrator/$d" \
        --cfg.episodes "$EP" --cfg.episode-s 20 --cfg.rules strict paper box --cfg.seed 0 \
        --cfg.no-video --cfg.env-set "${set_[@]}" --cfg.out-dir "$out/${d}_${v}_${task}"
    done
  done
done
