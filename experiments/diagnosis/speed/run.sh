#!/usr/bin/env bash
# Success against the commanded speed: the shipped planner with the robot's sampler (DDIM-5,
# N = 1, E = 11 / D = 4) and the demonstrator, 64 episodes of 20 s per speed with pushes,
# randomisation, noise and latency, the same keys at every speed, strict rule.
# Usage: bash experiments/diagnosis/speed/run.sh [episodes] [speeds...]
set -euo pipefail
EP=${1:-64}
shift || true
SPEEDS=${*:-0.25 0.5 0.75 1.0 1.25 1.5}
for v in $SPEEDS; do
  .venv/bin/dmpc eval --cfg.task walk_1.0 --cfg.set "command=[$v,0.0,0.0]" --cfg.controllers task demonstrator \
    --cfg.episodes "$EP" --cfg.seed 0 --cfg.method ddim --cfg.ddim-steps 5 --cfg.rules strict \
    --cfg.no-video --cfg.latency-calls 2 --cfg.out-dir "experiments/diagnosis/speed/v_$v"
done
