# Every difference of Unitree's go2.xml (unitree_mujoco) from our Go2 model at once, as
# `dmpc eval --cfg.env-set` overrides (experiments/sim2sim/models): joint damping 0.1 N m s/rad
# (our 2.0 x 0.05), floor and foot friction 0.4, 100 solver iterations, elliptic cone, impratio
# 100, a 5 ms physics step, foot condim 6. Sourced by attribution/run.sh and damping_dr/run.sh.
UNITREE_SET=("randomization.joint_damping_scale=[0.05,0.05]" "randomization.friction=[0.4,0.4]"
             "solver_iterations=100" "cone=elliptic" "impratio=100" "sim_dt=0.005"
             "foot_condim=6")
