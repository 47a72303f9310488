#!/usr/bin/env bash
# Why the demonstrator walks 12-17% fast on both simulators' robot path: the same demonstrator in
# MJX on our model, with each of the evaluation env's disturbances turned off in turn (the robot
# path has none of them: a nominal robot, no observation noise, a few ms of latency, no pushes).
# 20 s episodes, seed 0 (the same keys in every row), strict rule.
# Usage: bash experiments/sim2sim/demonstrator/mjx_speed/run.sh [episodes] [demonstrator]
#   then: .venv/bin/python experiments/sim2sim/demonstrator/mjx_speed/make_table.py
set -euo pipefail
cd "$(dirname "$0")/../../../.."
EP=${1:-32}
DEMO=${2:-cpu_pd}
out=experiments/sim2sim/demonstrator/mjx_speed
declare -A SETS=(
  [default]=""
  [no_latency]="noise.latency_s=[0,0]"
  [no_obs_noise]="noise.ang_vel=0 noise.gravity=0 noise.joint_pos=0 noise.joint_vel=0"
  [no_noise]="noise.enabled=false"
  [no_dr]="randomization.enabled=false"
  [calm]="noise.enabled=false push.enabled=false randomization.enabled=false"
)
for name in default no_latency no_obs_noise no_noise no_dr calm; do
  for task in walk_0.5 walk_1.0; do
    # shellcheck disable=SC2086
    .venv/bin/dmpc eval --cfg.task "$task" --cfg.controllers demonstrator \
      --cfg.demonstrator-run "checkpoints/demonstrator/$DEMO" \
      --cfg.episodes "$EP" --cfg.episode-s 20 --cfg.rules strict --cfg.seed 0 --cfg.no-video \
      ${SETS[$name]:+--cfg.env-set ${SETS[$name]}} --cfg.out-dir "$out/${DEMO}_${name}_${task}"
  done
done
