"""dmpc_jax: Diffusion-MPC legged locomotion for the Unitree Go2 in JAX (arXiv 2510.04234)."""

import os as _os

# Offscreen rendering without a display; a user's own choice wins.
_os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"
