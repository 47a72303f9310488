"""The shipped artifacts every stage defaults to: one definition each (no imports, so the robot
and the simulated robot's process can read them without loading JAX)."""

PRESET = "cpu"
DEFAULT_DEMONSTRATOR = f"checkpoints/demonstrator/{PRESET}"
DEFAULT_PRETRAINED = f"checkpoints/diffusion/{PRESET}"
# the DAgger rounds' pick (experiments/finetune/rounds; model card in the run): 55.2% strict
# at 1.0 m/s on the headline keys where the RWR-finetuned checkpoints/rwr/cpu (make finetune),
# the default before it, succeeds in 25.3%
DEFAULT_PLANNER = "checkpoints/dagger/r2_s0"
