"""Reward-weighted regression data (METHOD §6): the replay buffer of online trajectories, the
per-group top-quantile filter and the softmax weights.

A *piece* is a stretch of one env's rollout between episode ends (and iteration boundaries), at
least H steps long; its *score* is its mean per-step env reward. The buffer holds pieces padded to
a fixed length, keeps the best ``capacity`` by score, and serves H-step windows with the weight of
the piece they come from. Host-side numpy: the data never needs to be on the device in full.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIELDS = ("obs", "action", "reward")


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
    scores: np.ndarray, groups: np.ndarray, quantile: float, max_total: int
) -> np.ndarray:
    """Indices of the top ``quantile`` fraction of pieces by score within each group (at least one
    per non-empty group), at most ``max_total // n_groups`` per group; sorted best first per
    group, groups in ascending order."""
    if not 0 < quantile <= 1:
        raise ValueError(f"top quantile must be in (0, 1], got {quantile}")
    scores, groups = np.asarray(scores), np.asarray(groups)
    present = np.unique(groups)
    cap = max(max_total // max(len(present), 1), 1)
    keep = []
    for g in present:
        idx = np.flatnonzero(groups == g)
        n = min(max(int(np.ceil(quantile * len(idx))), 1), cap)
        order = idx[np.argsort(-scores[idx], kind="stable")]
        keep.append(order[:n])
    return np.concatenate(keep) if keep else np.zeros(0, np.int64)


def select_pieces(
    scores: np.ndarray, groups: np.ndarray, quantile: float, max_total: int, mode: str,
    rng: np.random.Generator | None = None,
) -> np.ndarray:  # fmt: skip
    """The pieces a denoiser update trains on. ``best``: ``select_top``. ``random`` (the authors'
    ``diffusion_mini_batch_generator``): the top ``quantile`` of each group, then ``max_total``
    of their union drawn at random without replacement (all of it when smaller); sorted."""
    if mode == "best":
        return select_top(scores, groups, quantile, max_total)
    if mode != "random":
        raise ValueError(f"selection must be 'best' or 'random', got {mode!r}")
    union = select_top(scores, groups, quantile, len(scores) * max(len(np.unique(groups)), 1))
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


def split_pieces(valid: np.ndarray, done: np.ndarray, min_len: int) -> list[tuple[int, int, int]]:
    """(env, start, stop) of every stretch of consecutive valid steps in [T, B] rollout records,
    cut after each step that ended an episode, at least ``min_len`` steps long."""
    t_len, b = valid.shape
    out = []
    for e in range(b):
        start = None
        for t in range(t_len):
            if valid[t, e] and start is None:
                start = t
            if start is not None and (not valid[t, e] or done[t, e] or t == t_len - 1):
                stop = t + 1 if valid[t, e] else t
                if stop - start >= min_len:
                    out.append((e, start, stop))
                start = None
    return out


@dataclass
class ReplayBuffer:
    """Pieces padded to ``max_len`` steps: obs [P, L, 49], action [P, L, 12], reward [P, L],
    length [P], score [P] (mean per-step reward), group [P] (``yaw_group`` of the yaw command
    at the piece's start, with ``yaw_classes`` classes), added [P] (iteration it was collected
    in).
    ``keep``: which pieces survive pruning, the ``best`` by score (RWR) or the ``newest`` (DAgger,
    where a low-reward recovery is as much worth keeping as a high-reward stride)."""

    capacity: int
    max_len: int
    obs_dim: int = 49
    act_dim: int = 12
    keep: str = "best"
    yaw_classes: int = 2

    def __post_init__(self):
        if self.keep not in ("best", "newest"):
            raise ValueError(f"ReplayBuffer.keep must be 'best' or 'newest', got {self.keep!r}")
        self.obs = np.zeros((0, self.max_len, self.obs_dim), np.float32)
        self.action = np.zeros((0, self.max_len, self.act_dim), np.float32)
        self.reward = np.zeros((0, self.max_len), np.float32)
        self.length = np.zeros(0, np.int32)
        self.score = np.zeros(0, np.float32)
        self.group = np.zeros(0, np.int8)
        self.added = np.zeros(0, np.int32)

    def __len__(self) -> int:
        return len(self.length)

    @property
    def returns(self) -> np.ndarray:
        """[P] each piece's summed reward (its padding is zero)."""
        return self.reward.sum(1)

    def add_rollout(self, rec: dict, min_len: int, iteration: int) -> int:
        """Split [T, B] records (obs, action, reward, wz, valid, done) into pieces, add those of
        at least ``min_len`` steps, prune to capacity. Returns the number of pieces added."""
        pieces = split_pieces(np.asarray(rec["valid"]), np.asarray(rec["done"]), min_len)
        n = len(pieces)
        if n == 0:
            return 0
        obs = np.zeros((n, self.max_len, self.obs_dim), np.float32)
        act = np.zeros((n, self.max_len, self.act_dim), np.float32)
        rew = np.zeros((n, self.max_len), np.float32)
        length = np.zeros(n, np.int32)
        wz0 = np.zeros(n, np.float32)
        for i, (e, s, t) in enumerate(pieces):
            ln = min(t - s, self.max_len)
            obs[i, :ln] = rec["obs"][s : s + ln, e]
            act[i, :ln] = rec["action"][s : s + ln, e]
            rew[i, :ln] = rec["reward"][s : s + ln, e]
            length[i] = ln
            wz0[i] = rec["wz"][s, e]
        group = yaw_group(wz0, self.yaw_classes)
        score = rew.sum(1) / length
        self.obs = np.concatenate([self.obs, obs])
        self.action = np.concatenate([self.action, act])
        self.reward = np.concatenate([self.reward, rew])
        self.length = np.concatenate([self.length, length])
        self.score = np.concatenate([self.score, score.astype(np.float32)])
        self.group = np.concatenate([self.group, group])
        self.added = np.concatenate([self.added, np.full(n, iteration, np.int32)])
        self.prune()
        return n

    def prune(self) -> None:
        """Keep the best ``capacity`` pieces by score (newest first among equal scores), or the
        newest ``capacity`` (``keep="newest"``; later pieces of one iteration count as newer)."""
        if len(self) <= self.capacity:
            return
        if self.keep == "newest":
            order = np.arange(len(self))[-self.capacity :]
        else:
            order = np.lexsort((-self.added, -self.score))[: self.capacity]
        order = np.sort(order)
        for name in ("obs", "action", "reward", "length", "score", "group", "added"):
            setattr(self, name, getattr(self, name)[order])

    def windows(
        self, rng: np.random.Generator, pieces: np.ndarray, weights: np.ndarray | None,
        batch: int, horizon: int,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """``batch`` H-step windows drawn uniformly over every window of ``pieces`` (a piece of
        length n has n - H + 1); each carries its piece's weight (1 if ``weights`` is None)."""
        n_win = self.length[pieces] - horizon + 1
        cum = np.cumsum(n_win)
        flat = rng.integers(0, cum[-1], batch)
        which = np.searchsorted(cum, flat, side="right")
        start = flat - np.concatenate([[0], cum[:-1]])[which]
        p = pieces[which]
        rows = start[:, None] + np.arange(horizon)
        return {
            "obs": self.obs[p[:, None], rows],
            "action": self.action[p[:, None], rows],
            "reward": self.reward[p[:, None], rows],
            "weight": (
                np.ones(batch, np.float32) if weights is None else np.asarray(weights)[which]
            ),
            "piece": p,
        }

    def subset(self, idx: np.ndarray) -> ReplayBuffer:
        """A buffer of the same capacity and layout holding the pieces ``idx`` (in that order)."""
        out = ReplayBuffer(self.capacity, self.max_len, self.obs_dim, self.act_dim, self.keep,
                           self.yaw_classes)  # fmt: skip
        for name in ("obs", "action", "reward", "length", "score", "group", "added"):
            setattr(out, name, getattr(self, name)[np.asarray(idx)])
        return out

    # ---------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """Atomic write of every array (a kill mid-save leaves the previous file intact)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp, capacity=self.capacity, max_len=self.max_len, obs=self.obs, action=self.action,
            reward=self.reward, length=self.length, score=self.score, group=self.group,
            added=self.added, keep=self.keep, yaw_classes=self.yaw_classes,
        )  # fmt: skip
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ReplayBuffer:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"replay buffer {path} does not exist")
        try:
            with np.load(path) as f:
                keep = str(f["keep"]) if "keep" in f.files else "best"  # older files: RWR's
                classes = int(f["yaw_classes"]) if "yaw_classes" in f.files else 2
                buf = cls(int(f["capacity"]), int(f["max_len"]), f["obs"].shape[2],
                          f["action"].shape[2], keep, classes)  # fmt: skip
                for name in ("obs", "action", "reward", "length", "score", "group", "added"):
                    setattr(buf, name, f[name])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise RuntimeError(
                f"replay buffer {path} is unreadable ({e}); it may be truncated"
            ) from e
        return buf
