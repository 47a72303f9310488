"""The Go2 joystick environment on MJX.

``EnvConfig``, ``Go2Joystick`` and ``make_env`` load on first use, so the numpy-only modules of
this package (``envs.obs``, shared with the robot runtime and the sim2sim robot process) import
without JAX, MJX or brax.
"""

__all__ = ["EnvConfig", "Go2Joystick", "make_env"]


def __getattr__(name):
    if name == "EnvConfig":
        from dmpc_jax.envs.config import EnvConfig

        return EnvConfig
    if name in ("Go2Joystick", "make_env"):
        from dmpc_jax.envs import go2_joystick

        return getattr(go2_joystick, name)
    raise AttributeError(f"module 'dmpc_jax.envs' has no attribute {name!r}")
