"""The shipped artifacts every stage defaults to: one definition each (no imports, so the robot
and the simulated robot's process can read them without loading JAX)."""

PRESET = "cpu"
DEFAULT_DEMONSTRATOR = f"checkpoints/demonstrator/{PRESET}"
DEFAULT_PRETRAINED = f"checkpoints/diffusion/{PRESET}"
DEFAULT_PLANNER = f"checkpoints/rwr/{PRESET}"  # the RWR-finetuned planner (make finetune)
