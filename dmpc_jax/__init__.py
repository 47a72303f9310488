"""dmpc_jax: Diffusion-MPC legged locomotion for the Unitree Go2 in JAX (arXiv 2510.04234)."""

import os as _os

from dmpc_jax import compile_cache as _compile_cache

# Offscreen rendering without a display; a user's own choice wins.
_os.environ.setdefault("MUJOCO_GL", "egl")
# JAX's persistent compilation cache for every process that imports the package (DMPC_COMPILE_CACHE
# moves it or turns it off; dmpc_jax/compile_cache.py).
_compile_cache.enable()

__version__ = "0.1.0"
