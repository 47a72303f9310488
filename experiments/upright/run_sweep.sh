#!/usr/bin/env bash
# walk_0.5 with the real-time sampler (DDIM-5, N = 1), same keys: nominal vs an upright reward
# (planned projected gravity level) at three weights. Usage: bash experiments/upright/run_sweep.sh [episodes]
set -euo pipefail
EP=${1:-64}
PY=${PY:-.venv/bin/python}
OUT=experiments/upright/walk_0.5
common=(--cfg.task walk_0.5 --cfg.episodes "$EP" --cfg.episode-s 20 --cfg.num-candidates 1
        --cfg.method ddim --cfg.ddim-steps 5 --cfg.seed 0 --cfg.no-video --cfg.rules strict
        --cfg.latency-calls 2)
$PY -m dmpc_jax.cli eval "${common[@]}" --cfg.controllers task nominal \
    --cfg.set weights.upright=1000 guidance_scale=10 --cfg.out-dir $OUT/upright_1000
for w in 3000 300; do
  $PY -m dmpc_jax.cli eval "${common[@]}" --cfg.controllers task \
      --cfg.set weights.upright=$w guidance_scale=10 --cfg.out-dir $OUT/upright_$w
done
