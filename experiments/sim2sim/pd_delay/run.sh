#!/usr/bin/env bash
# The PD torque computed from a delayed joint state (EnvConfig.pd_delay: torque motors, kp (q* - q)
# - kd qdot from the state `d` physics steps old), on every difference of Unitree's go2.xml at once
# (5 ms steps), for each demonstrator: Unitree's Python bridge computes the torque from its joint
# sensors at each LowCmd and holds it, and MuJoCo's sensors after mj_step hold that step's start,
# so the bridge's delay is one step or more. Peak joint speed against the runner's 30 rad/s bound.
# Usage: [DELAYS="0 1 2"] bash experiments/sim2sim/pd_delay/run.sh [episodes] [demonstrators...]
#   then: .venv/bin/python experiments/sim2sim/pd_delay/make_table.py
set -euo pipefail
cd "$(dirname "$0")/../../.."
source experiments/sim2sim/unitree_set.sh
EP=${1:-32}
shift $(( $# < 1 ? $# : 1 ))
DEMOS=${*:-cpu_damping}
out=experiments/sim2sim/pd_delay
for d in $DEMOS; do
  for delay in ${DELAYS:-0 1 2}; do
    for task in walk_0.5 walk_1.0; do
      .venv/bin/dmpc eval --cfg.task "$task" --cfg.controllers demonstrator \
        --cfg.demonstrator-run "checkpoints/demonstrator/$d" \
        --cfg.episodes "$EP" --cfg.episode-s 20 --cfg.rules strict --cfg.seed 0 \
        --cfg.no-video --cfg.env-set "${UNITREE_SET[@]}" "pd_delay=[$delay,$delay]" \
        --cfg.out-dir "$out/${d}_delay${delay}_${task}"
    done
  done
done
