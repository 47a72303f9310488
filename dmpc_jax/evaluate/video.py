"""Offscreen videos of Go2 trajectories with native MuJoCo rendering."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np


def render_qpos(
    mj_model: mujoco.MjModel,
    qpos: np.ndarray,
    *,
    camera: str = "track",
    height: int = 360,
    width: int = 640,
) -> list[np.ndarray]:
    """RGB frames [height, width, 3] uint8 for each row of ``qpos`` [T, nq]."""
    data = mujoco.MjData(mj_model)
    frames = []
    with mujoco.Renderer(mj_model, height, width) as renderer:
        for q in np.asarray(qpos, dtype=np.float64):
            data.qpos[:] = q
            mujoco.mj_forward(mj_model, data)
            renderer.update_scene(data, camera=camera)
            frames.append(renderer.render().copy())
    return frames


def save_video(frames: list[np.ndarray], path: Path, fps: int) -> Path:
    """Write frames to an mp4 (H.264 through imageio-ffmpeg's bundled ffmpeg)."""
    import warnings

    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # imageio-ffmpeg starts ffmpeg with fork+exec; JAX's fork warning does not apply to exec
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
    return path
