"""The Go2 joystick environment on MJX."""

from dmpc_jax.envs.config import EnvConfig
from dmpc_jax.envs.go2_joystick import Go2Joystick, make_env

__all__ = ["EnvConfig", "Go2Joystick", "make_env"]
