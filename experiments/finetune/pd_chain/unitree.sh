#!/usr/bin/env bash
# The widened-damping chain's planner on Unitree's parameters in MJX, at the headline's size:
# walk_1.0, 256 episodes of 20 s with pushes, DR, noise and latency, strict / paper / box, on the
# headline's keys (seed 0; the planner was picked on no keys), then which of Unitree's
# differences carries its success at 1.0 m/s: the joint damping alone (0.1 N m s/rad on our model),
# and every other difference with our damping (64 episodes, strict, seed 0).
# Usage: bash experiments/finetune/pd_chain/unitree.sh [singles | bridge | bridge2 | bridge_ddim5 | walk_1.5 | wide]
set -euo pipefail
cd "$(dirname "$0")/../../.."
source experiments/sim2sim/unitree_set.sh
P=checkpoints/diffusion/cpu_pd_standardize_recovery
out=experiments/finetune/pd_chain
common=(--cfg.planner-run "$P" --cfg.controllers task --cfg.episode-s 20 --cfg.num-candidates 1
        --cfg.method ddpm --cfg.seed 0 --cfg.no-video)
if [ "${1:-}" = bridge ]; then
  # Unitree's parameters and its Python bridge's PD: torque from the joint state one 5 ms step
  # old, held over the step (EnvConfig.pd_delay), at both speeds
  for task in walk_0.5 walk_1.0; do
    .venv/bin/dmpc eval --cfg.task "$task" "${common[@]}" --cfg.episodes 64 --cfg.rules strict \
      --cfg.env-set "${UNITREE_SET[@]}" "pd_delay=[1,1]" --cfg.out-dir "$out/unitree_bridge_$task"
  done
  exit 0
fi
if [ "${1:-}" = bridge2 ]; then
  # a bridge twice as late (the PD from the joint state two 5 ms steps old), at 1.0 m/s
  .venv/bin/dmpc eval --cfg.task walk_1.0 "${common[@]}" --cfg.episodes 64 --cfg.rules strict \
    --cfg.env-set "${UNITREE_SET[@]}" "pd_delay=[2,2]" --cfg.out-dir "$out/unitree_bridge2_walk_1.0"
  exit 0
fi
if [ "${1:-}" = bridge_ddim5 ]; then
  # the same at 1.0 m/s with the robot's sampler (DDIM-5; the later --cfg.method wins)
  .venv/bin/dmpc eval --cfg.task walk_1.0 "${common[@]}" --cfg.method ddim --cfg.episodes 64 \
    --cfg.rules strict --cfg.env-set "${UNITREE_SET[@]}" "pd_delay=[1,1]" \
    --cfg.out-dir "$out/unitree_bridge_ddim5_walk_1.0"
  exit 0
fi
if [ "${1:-}" = walk_1.5 ]; then
  # the headline's third speed on Unitree's parameters (64 episodes, strict, seed 0)
  .venv/bin/dmpc eval --cfg.task walk_1.5 "${common[@]}" --cfg.episodes 64 --cfg.rules strict \
    --cfg.env-set "${UNITREE_SET[@]}" --cfg.out-dir "$out/unitree_cpu_pd_standardize_recovery_walk_1.5"
  exit 0
fi
if [ "${1:-}" = wide ]; then
  # on the widened env itself (the cpu_pd demonstrator's: damping 0.1-2.4, PD delay 0-2 steps,
  # our contact), the planner beside its demonstrator on the same keys (64 episodes, seed 0)
  .venv/bin/dmpc eval --cfg.task walk_1.0 "${common[@]}" --cfg.controllers task demonstrator \
    --cfg.demonstrator-run checkpoints/demonstrator/cpu_pd --cfg.episodes 64 --cfg.rules strict \
    --cfg.out-dir "$out/wide_walk_1.0"
  exit 0
fi
if [ "${1:-}" = singles ]; then
  for v in ours friction solver timestep condim; do
    case $v in
      ours) set_=() ;;
      friction) set_=("randomization.friction=[0.4,0.4]") ;;
      solver) set_=("solver_iterations=100" "cone=elliptic" "impratio=100") ;;
      timestep) set_=("sim_dt=0.005") ;;
      condim) set_=("foot_condim=6") ;;
    esac
    .venv/bin/dmpc eval --cfg.task walk_1.0 "${common[@]}" --cfg.episodes 64 --cfg.rules strict \
      ${set_[@]+--cfg.env-set "${set_[@]}"} --cfg.out-dir "$out/${v}_walk_1.0"
  done
  exit 0
fi
.venv/bin/dmpc eval --cfg.task walk_1.0 "${common[@]}" --cfg.episodes 256 \
  --cfg.env-set "${UNITREE_SET[@]}" --cfg.out-dir "$out/unitree_headline_walk_1.0"
.venv/bin/dmpc eval --cfg.task walk_1.0 "${common[@]}" --cfg.episodes 64 --cfg.rules strict \
  --cfg.env-set "${UNITREE_SET[0]}" --cfg.out-dir "$out/damping_only_walk_1.0"
.venv/bin/dmpc eval --cfg.task walk_1.0 "${common[@]}" --cfg.episodes 64 --cfg.rules strict \
  --cfg.env-set "${UNITREE_SET[@]:1}" --cfg.out-dir "$out/unitree_but_damping_walk_1.0"
# then each other difference alone on our model (and our model itself), the same 64 keys:
# bash experiments/finetune/pd_chain/unitree.sh singles; and with Unitree's bridge's PD delay:
# bash experiments/finetune/pd_chain/unitree.sh bridge
