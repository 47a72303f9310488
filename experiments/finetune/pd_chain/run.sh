#!/usr/bin/env bash
# The planner on the widened-damping chain (the two-simulators issue's decision): the cpu_pd
# demonstrator's dataset, pretrained as the 6 k planner was, measured against the 6 k planner and
# round 2's pick: on the finetuning arms' validation keys (our model; seed 7, 128 episodes,
# strict / paper / box, per-episode outcomes for paired.py) and on Unitree's parameters in MJX
# (every difference of its go2.xml, experiments/sim2sim/unitree_set.sh; seed 0, 64 episodes,
# strict), at 0.5 and 1.0 m/s.
# Usage: bash experiments/finetune/pd_chain/run.sh [step]   (after the two commands on the page)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source experiments/sim2sim/unitree_set.sh
STEP=${1:-6000}
NEW=checkpoints/diffusion/cpu_pd_standardize_recovery
out=experiments/finetune/pd_chain
.venv/bin/python experiments/finetune/eval_params.py "$NEW" "$STEP" "$out/outcomes" --seed 7 planner
for planner in "$NEW" checkpoints/dagger/r2_s0 checkpoints/diffusion/cpu_standardize_recovery_6k; do
  for task in walk_0.5 walk_1.0; do
    .venv/bin/dmpc eval --cfg.task "$task" --cfg.planner-run "$planner" --cfg.controllers task \
      --cfg.episodes 64 --cfg.episode-s 20 --cfg.num-candidates 1 --cfg.method ddpm \
      --cfg.rules strict --cfg.seed 0 --cfg.no-video --cfg.env-set "${UNITREE_SET[@]}" \
      --cfg.out-dir "$out/unitree_$(basename "$planner")_$task"
  done
done
