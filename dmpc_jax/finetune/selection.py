"""Which pieces an RWR update trains on and with what weight (METHOD §6): the per-group top
quantile, the authors' random draw from its union, the uniform control, the command groups
(yaw classes split by commanded speed) and the softmax weights, per group and per minibatch.
Host-side numpy over piece scores; the pieces themselves live in ``rwr.ReplayBuffer``."""

from __future__ import annotations

import numpy as np


def rwr_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(scores / temperature), rescaled to mean 1 (so the weighted loss keeps the scale of
    the plain one). Non-negative, invariant to a constant shift of ``scores``, uniform as the
    temperature grows and one-hot (ties shared) as it shrinks."""
    if temperature <= 0:
        raise ValueError(f"RWR temperature must be > 0, got {temperature}")
    scores = np.asarray(scores, np.float64)
    if scores.size == 0:
        return np.zeros(0, np.float32)
    z = (scores - scores.max()) / temperature
    w = np.exp(z)
    return (w / w.sum() * scores.size).astype(np.float32)


def effective_sample_size(weights: np.ndarray) -> float:
    """(sum w)^2 / sum w^2: how many samples the weighted set is worth."""
    w = np.asarray(weights, np.float64)
    return float(w.sum() ** 2 / max(np.square(w).sum(), 1e-30)) if w.size else 0.0


def select_top(
    scores: np.ndarray, groups: np.ndarray, quantile: float, max_total: int,
    sizes: np.ndarray | None = None, eligible: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """Indices of the top ``quantile`` fraction of pieces by score within each group (at least one
    per non-empty group), at most ``max_total // n_groups`` per group; sorted best first per
    group, groups in ascending order. ``sizes`` [groups]: each group's size the quantile is
    taken of, when it holds more pieces than ``groups`` shows (``ReplayBuffer.group_sizes``).
    ``eligible`` [P] bool: only these pieces may be selected; the others still count towards
    their group's size, so the quantile stays a fraction of every piece (``fall_pieces`` drop)."""
    if not 0 < quantile <= 1:
        raise ValueError(f"top quantile must be in (0, 1], got {quantile}")
    scores, groups = np.asarray(scores), np.asarray(groups)
    if eligible is not None and np.shape(eligible) != scores.shape:
        raise ValueError(f"eligible {np.shape(eligible)} must match scores {scores.shape}")
    present = np.unique(groups)
    cap = max(max_total // max(len(present), 1), 1)
    keep = []
    for g in present:
        idx = np.flatnonzero(groups == g)
        size = len(idx) if sizes is None else max(int(sizes[g]), len(idx))
        if eligible is not None:
            idx = idx[np.asarray(eligible, bool)[idx]]
        n = min(max(int(np.ceil(quantile * size)), 1), cap, len(idx))
        order = idx[np.argsort(-scores[idx], kind="stable")]
        keep.append(order[:n])
    return np.concatenate(keep) if keep else np.zeros(0, np.int64)


def select_pieces(
    scores: np.ndarray, groups: np.ndarray, quantile: float, max_total: int, mode: str,
    rng: np.random.Generator | None = None, sizes: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """The pieces a denoiser update trains on. ``best``: ``select_top``. ``random`` (the authors'
    ``diffusion_mini_batch_generator``): the top ``quantile`` of each group, then ``max_total``
    of their union drawn at random without replacement (all of it when smaller); sorted.
    ``uniform`` (a control): as ``random``, but each group's share drawn at random instead of
    its top. ``eligible``: as in ``select_top``."""
    if mode == "best":
        return select_top(scores, groups, quantile, max_total, sizes, eligible)
    if mode not in ("random", "uniform"):
        raise ValueError(f"selection must be 'best', 'random' or 'uniform', got {mode!r}")
    if rng is None:
        raise ValueError(f"{mode} selection needs an rng")
    cap = len(scores) * max(len(np.unique(groups)), 1)
    # uniform: ranked by a random permutation, so each group's share is drawn regardless of score
    ranked = rng.permutation(len(scores)).astype(np.float64) if mode == "uniform" else scores
    union = select_top(ranked, groups, quantile, cap, sizes, eligible)
    if len(union) <= max_total:
        return np.sort(union)
    return np.sort(rng.choice(union, size=max_total, replace=False))


def yaw_group(wz: np.ndarray, classes: int) -> np.ndarray:
    """The yaw-command group of each piece from the commanded yaw rate at its start: with 2
    classes 0 (wz < 0) and 1 (wz >= 0); with 3 (the authors' ``np.sign`` of the command) 0
    (wz < 0), 1 (wz == 0, straight: the env clears |wz| below its deadband) and 2 (wz > 0)."""
    wz = np.asarray(wz)
    if classes == 2:
        return (wz >= 0).astype(np.int8)
    if classes == 3:
        return (np.sign(wz) + 1).astype(np.int8)
    raise ValueError(f"yaw classes must be 2 or 3, got {classes}")


def command_group(
    wz: np.ndarray, vx: np.ndarray, yaw_classes: int, speed_edges: tuple[float, ...] = ()
) -> np.ndarray:
    """The command group of each piece: its ``yaw_group``, split by the commanded forward speed
    at its start into ``len(speed_edges) + 1`` speed classes (``vx < edges[0]``, ...), so that
    pieces compete with pieces under similar commands (none: the yaw group alone, the paper's)."""
    bins = np.digitize(np.asarray(vx), np.asarray(speed_edges, np.float64)) if speed_edges else 0
    return (yaw_group(wz, yaw_classes) * (len(speed_edges) + 1) + bins).astype(np.int8)


def minibatch_weights(scores: np.ndarray, groups: np.ndarray, temperature: float) -> np.ndarray:
    """[S, B] weights of stacked batches of windows: within each batch, a ``rwr_weights`` softmax
    over each group's windows (the authors normalise per class within each minibatch), so every
    group of every batch has mean weight 1. ``scores``/``groups``: [S, B], each window's piece's."""
    w = np.zeros(scores.shape, np.float32)
    for i in range(scores.shape[0]):
        w[i] = group_weights(scores[i], groups[i], temperature)
    return w


def group_weights(scores: np.ndarray, groups: np.ndarray, temperature: float) -> np.ndarray:
    """Per-group ``rwr_weights`` (each group's weights have mean 1, so the overall mean is 1)."""
    w = np.zeros(len(scores), np.float32)
    for g in np.unique(groups):
        m = groups == g
        w[m] = rwr_weights(scores[m], temperature)
    return w
