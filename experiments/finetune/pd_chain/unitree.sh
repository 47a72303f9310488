#!/usr/bin/env bash
# The widened-damping chain's planner on Unitree's parameters in MJX, at the headline's size:
# walk_1.0, 256 episodes of 20 s with pushes, DR, noise and latency, strict / paper / box, on the
# headline's keys (seed 0; the planner was picked on no keys), then which of Unitree's
# differences carries its success at 1.0 m/s: the joint damping alone (0.1 N m s/rad on our model),
# and every other difference with our damping (64 episodes, strict, seed 0).
# Usage: bash experiments/finetune/pd_chain/unitree.sh [singles | bridge | bridge2 | bridge_ddim5 | walk_1.5 | wide]
#   singles: each other difference alone on our model (and our model itself), the same 64 keys;
#   bridge: Unitree's parameters and its Python bridge's PD (torque from the joint state one 5 ms
#     step old, held over the step: EnvConfig.pd_delay), at both speeds; bridge2: a bridge twice
#     as late, at 1.0 m/s; bridge_ddim5: the bridge at 1.0 m/s with the robot's sampler (DDIM-5;
#     the later --cfg.method wins); walk_1.5: the headline's third speed on Unitree's parameters;
#   wide: on the widened env itself (the cpu_pd demonstrator's: damping 0.1-2.4, PD delay 0-2
#     steps, our contact), the planner beside its demonstrator on the same keys.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source experiments/sim2sim/unitree_set.sh
P=checkpoints/diffusion/cpu_pd_standardize_recovery
out=experiments/finetune/pd_chain
common=(--cfg.planner-run "$P" --cfg.controllers task --cfg.episode-s 20 --cfg.num-candidates 1
        --cfg.method ddpm --cfg.seed 0 --cfg.no-video)
# ev TASK NAME [dmpc eval args...]: 64 episodes, strict, into $out/NAME
ev() {
  local task=$1 name=$2
  shift 2
  .venv/bin/dmpc eval --cfg.task "$task" "${common[@]}" --cfg.episodes 64 --cfg.rules strict \
    "$@" --cfg.out-dir "$out/$name"
}
case "${1:-}" in
  bridge)
    for task in walk_0.5 walk_1.0; do
      ev "$task" "unitree_bridge_$task" --cfg.env-set "${UNITREE_SET[@]}" "pd_delay=[1,1]"
    done ;;
  bridge2)
    ev walk_1.0 unitree_bridge2_walk_1.0 --cfg.env-set "${UNITREE_SET[@]}" "pd_delay=[2,2]" ;;
  bridge_ddim5)
    ev walk_1.0 unitree_bridge_ddim5_walk_1.0 --cfg.method ddim \
      --cfg.env-set "${UNITREE_SET[@]}" "pd_delay=[1,1]" ;;
  walk_1.5)
    ev walk_1.5 unitree_cpu_pd_standardize_recovery_walk_1.5 --cfg.env-set "${UNITREE_SET[@]}" ;;
  wide)
    ev walk_1.0 wide_walk_1.0 --cfg.controllers task demonstrator \
      --cfg.demonstrator-run checkpoints/demonstrator/cpu_pd ;;
  singles)
    ev walk_1.0 ours_walk_1.0
    ev walk_1.0 friction_walk_1.0 --cfg.env-set "randomization.friction=[0.4,0.4]"
    ev walk_1.0 solver_walk_1.0 --cfg.env-set "solver_iterations=100" "cone=elliptic" "impratio=100"
    ev walk_1.0 timestep_walk_1.0 --cfg.env-set "sim_dt=0.005"
    ev walk_1.0 condim_walk_1.0 --cfg.env-set "foot_condim=6" ;;
  "")
    .venv/bin/dmpc eval --cfg.task walk_1.0 "${common[@]}" --cfg.episodes 256 \
      --cfg.env-set "${UNITREE_SET[@]}" --cfg.out-dir "$out/unitree_headline_walk_1.0"
    ev walk_1.0 damping_only_walk_1.0 --cfg.env-set "${UNITREE_SET[0]}"
    ev walk_1.0 unitree_but_damping_walk_1.0 --cfg.env-set "${UNITREE_SET[@]:1}" ;;
  *) echo "unknown mode $1" >&2; exit 2 ;;
esac
