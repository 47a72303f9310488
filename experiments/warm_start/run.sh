#!/usr/bin/env bash
# Warm start at the shipped receding horizon (E = 11, D = 4): the next plan starts from the previous
# plan shifted by 7 rows and re-noised to step `warm` instead of from pure noise, so consecutive
# chunks keep the gait's phase. walk_0.5 (the robot's command), 64 episodes, same keys, strict rule.
# Usage: bash experiments/warm_start/run.sh [episodes] [task]
set -euo pipefail
EP=${1:-64}
TASK=${2:-walk_0.5}
.venv/bin/dmpc eval-sweep --cfg.task "$TASK" --cfg.episodes "$EP" --cfg.seed 0 --cfg.rules strict \
  --cfg.no-video --cfg.latency-calls 2 --cfg.out-dir "experiments/warm_start/$TASK" \
  --variants 11/4:ddim5 11/4/2:ddim5 11/4/3:ddim5 11/4 11/4/5 11/4/7
