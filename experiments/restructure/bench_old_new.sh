#!/bin/bash
# The sampler bench on a reduced grid, two rounds of (old code, new code) interleaved, each a
# fresh process: bash bench_old_new.sh OLD_CHECKOUT NEW_CHECKOUT OUT_DIR (checkouts of the two
# commits; run from a venv that has the package's dependencies: .venv/bin/python).
set -e
old=$1; new=$2; out=$3; mkdir -p "$out"
ARGS="--cfg.candidates 1 16 --cfg.variants ddpm10 ddim5 --cfg.horizons 24 --cfg.extra-h-candidates
  --cfg.robots --cfg.extra-models cpu --cfg.extra-model-candidates 1 16 --cfg.pinned-candidates
  --cfg.no-torch --cfg.torch-compile-candidates --cfg.repeats 20 --cfg.max-seconds 10"
PY=${PY:-$(pwd)/.venv/bin/python}
for round in 1 2; do
  for v in old new; do
    src=$([ $v = old ] && echo "$old" || echo "$new")
    (cd "$out" && PYTHONPATH="$src" "$PY" -m dmpc_jax.cli bench $ARGS --cfg.out-dir "$out/${v}_$round" \
      > "$out/${v}_$round.log" 2>&1)
  done
done
