"""Reward-weighted regression data (METHOD §6): the replay buffer of online trajectories (the
top-quantile filter and the weights are in ``selection``).

A *piece* is a stretch of one env's rollout between episode ends (and iteration boundaries), at
least H steps long; its *score* is its mean per-step env reward. The buffer holds pieces padded to
a fixed length, keeps the best ``capacity`` by score, and serves H-step windows with the weight of
the piece they come from. Host-side numpy: the data never needs to be on the device in full.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmpc_jax.envs import obs as obs_lib
from dmpc_jax.finetune.selection import command_group

FIELDS = ("obs", "action", "reward")


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


def parse_starts(starts: str) -> tuple[str, int]:
    """Where update windows start (``FinetuneConfig.window_starts``), as ``(kind, k)``: ``any``
    (every start), ``age`` k (``replan`` is age 0: the steps k into their plan) or ``stride``
    k (every k-th step of a piece from a phase fixed per piece, plan ages mixed)."""
    if starts == "any":
        return "any", 0
    if starts == "replan":
        return "age", 0
    for kind in ("age", "stride"):
        if starts.startswith(kind) and starts[len(kind) :].isdigit():
            return kind, int(starts[len(kind) :])
    raise ValueError(
        f"window starts must be 'any', 'replan', 'age<k>' or 'stride<k>', got {starts!r}"
    )


STORED = ("obs", "action", "reward", "length", "score", "group", "added", "seq", "fell", "age")
# what a buffer's pieces mean (saved with them; a resume refuses a buffer laid out otherwise)
# the steps whose observed pitch decides a nose-down piece: 0.2 s at 50 Hz, so the observation's
# noise (+-0.05 on each gravity component, about +-3 degrees of pitch) averages out
PITCH_STEPS = 10
LAYOUT = ("capacity", "max_len", "keep", "yaw_classes", "speed_edges", "startup_steps",
          "pitch_split")  # fmt: skip


@dataclass
class ReplayBuffer:
    """Pieces padded to ``max_len`` steps: obs [P, L, 49], action [P, L, 12], reward [P, L],
    length [P], score [P] (mean per-step reward), group [P] (``command_group`` of the command at
    the piece's start: ``yaw_classes`` yaw classes, each split at ``speed_edges``; with
    ``startup_steps`` > 0 the pieces that start within an episode's first ``startup_steps``
    steps, the start from standing, form a second set of groups after those; with
    ``pitch_split`` > 0 the pieces whose mean observed pitch over their first ``PITCH_STEPS``
    steps exceeds it, nose down, form a set
    of their own after all those: ``stratum`` x ``n_command_groups`` + command group), added [P]
    (iteration it was collected in), seq [P] (order of arrival), fell [P] (the piece ends in a
    fall: its last step terminated the episode; false in buffers saved before it was recorded),
    age [P, L] (each step's plan age, ``finetune.rollout.make_rollout``'s: 0 at a replan step;
    -1 where unknown: padding, and buffers saved before it was recorded).
    ``keep``: which pieces survive pruning, the ``best`` by score (RWR) or the ``newest`` (DAgger,
    where a low-reward recovery is as much worth keeping as a high-reward stride).
    ``absent`` [n_groups]: pieces per group that count towards each group's size for the top
    quantile but are not held: the part of a buffer that stayed behind when only its kept set
    moved (``subset(..., count_rest=True)``); new pieces displace them first.

    Storage is allocated up to ``capacity`` once; at capacity the pieces a rollout displaces are
    overwritten in place, so an iteration copies only its new pieces (a 100 k buffer is ~1.3 GB)."""

    capacity: int
    max_len: int
    obs_dim: int = 49
    act_dim: int = 12
    keep: str = "best"
    yaw_classes: int = 2
    speed_edges: tuple[float, ...] = ()
    startup_steps: int = 0
    pitch_split: float = 0.0

    @property
    def n_command_groups(self) -> int:
        """Command groups: yaw classes x speed classes (``command_group``)."""
        return self.yaw_classes * (len(self.speed_edges) + 1)

    @property
    def n_strata(self) -> int:
        """Sets of command groups: x2 with ``startup_steps`` (later pieces, then start-up ones),
        x2 with ``pitch_split`` (level starts, then nose-down ones)."""
        return (2 if self.startup_steps else 1) * (2 if self.pitch_split else 1)

    @property
    def n_groups(self) -> int:
        return self.n_command_groups * self.n_strata

    def stratum(self, startup: np.ndarray, nose_down: np.ndarray) -> np.ndarray:
        """Each piece's set of command groups (``n_strata``) from its start-up and nose-down
        flags (each ignored where its split is off)."""
        up = np.asarray(startup, np.int64) if self.startup_steps else 0
        down = np.asarray(nose_down, np.int64) if self.pitch_split else 0
        return up + (2 if self.startup_steps else 1) * down

    def strata(self) -> np.ndarray:
        """[P] each held piece's stratum (``stratum``'s value): its set of command groups."""
        return self.group // self.n_command_groups

    def flags(self) -> tuple[np.ndarray, np.ndarray]:
        """([P] start-up, [P] nose-down) of the held pieces, read back from their strata
        (``stratum``'s inverse; all false where that split is off)."""
        s, up_sets = self.strata(), 2 if self.startup_steps else 1
        up = s % 2 == 1 if self.startup_steps else np.zeros(len(s), bool)
        down = s // up_sets == 1 if self.pitch_split else np.zeros(len(s), bool)
        return up, down

    def layout(self) -> tuple:
        """The ``LAYOUT`` fields' values."""
        return tuple(getattr(self, k) for k in LAYOUT)

    def __post_init__(self):
        self.speed_edges = tuple(float(x) for x in self.speed_edges)
        if self.keep not in ("best", "newest"):
            raise ValueError(f"ReplayBuffer.keep must be 'best' or 'newest', got {self.keep!r}")
        self._n = 0
        self._store = {
            k: np.zeros((0, *shape), dtype) for k, (shape, dtype) in self._layout().items()
        }
        self.absent = np.zeros(self.n_groups, np.int64)
        self._sync()

    def _layout(self) -> dict:
        f32, i32 = np.float32, np.int32
        return {"obs": ((self.max_len, self.obs_dim), f32), "action": ((self.max_len, self.act_dim), f32),
                "reward": ((self.max_len,), f32), "length": ((), i32), "score": ((), f32),
                "group": ((), np.int8), "added": ((), i32), "seq": ((), np.int64),
                "fell": ((), bool), "age": ((self.max_len,), np.int16)}  # fmt: skip

    def _sync(self) -> None:
        for k in STORED:
            setattr(self, k, self._store[k][: self._n])

    def _reserve(self, rows: int) -> None:
        have = len(self._store["length"])
        if rows <= have:
            return
        size = max(rows, min(2 * have, self.capacity))
        for k, (shape, dtype) in self._layout().items():
            grown = np.zeros((size, *shape), dtype)
            grown[: self._n] = self._store[k][: self._n]
            self._store[k] = grown

    def _put(self, slots: np.ndarray, rows: dict, which: np.ndarray) -> None:
        for k in STORED:
            self._store[k][slots] = rows[k][which]

    def __len__(self) -> int:
        return self._n

    @property
    def returns(self) -> np.ndarray:
        """[P] each piece's summed reward (its padding is zero)."""
        return self.reward.sum(1)

    def add_rollout(self, rec: dict, min_len: int, iteration: int) -> int:
        """Split [T, B] records (obs, action, reward, wz, valid, done; terminated, where given,
        marks the pieces that end in a fall; vx, where given, is the commanded forward speed,
        else it is read from the observation, whose copy lags by the env's latency; t, needed
        with ``startup_steps``, is each step's count of steps since its episode's reset) into
        pieces, add those of at least ``min_len`` steps, prune to capacity. Returns the number of
        pieces added."""
        if self.startup_steps and "t" not in rec:
            raise ValueError("ReplayBuffer.startup_steps needs the records' t (steps since reset)")
        pieces = split_pieces(np.asarray(rec["valid"]), np.asarray(rec["done"]), min_len)
        n = len(pieces)
        if n == 0:
            return 0
        obs = np.zeros((n, self.max_len, self.obs_dim), np.float32)
        act = np.zeros((n, self.max_len, self.act_dim), np.float32)
        rew = np.zeros((n, self.max_len), np.float32)
        length = np.zeros(n, np.int32)
        wz0, vx0 = np.zeros(n, np.float32), np.zeros(n, np.float32)
        fell, startup, nose_down = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        age = np.full((n, self.max_len), -1, np.int16)
        terminated = np.asarray(rec["terminated"]) if "terminated" in rec else None
        vx_col = obs_lib.OBS_SLICES["command"].start  # the commanded vx, scaled, in obs
        g = obs_lib.OBS_SLICES["gravity"]  # the projected gravity (unscaled) in obs
        for i, (e, s, t) in enumerate(pieces):
            ln = min(t - s, self.max_len)
            obs[i, :ln] = rec["obs"][s : s + ln, e]
            act[i, :ln] = rec["action"][s : s + ln, e]
            rew[i, :ln] = rec["reward"][s : s + ln, e]
            length[i] = ln
            if "age" in rec:
                age[i, :ln] = rec["age"][s : s + ln, e]
            if terminated is not None:  # a piece cut by a fall ends on the terminating step
                fell[i] = terminated[s + ln - 1, e]
            wz0[i] = rec["wz"][s, e]
            if self.startup_steps:
                startup[i] = rec["t"][s, e] < self.startup_steps
            if self.pitch_split:  # obs_lib.roll_pitch's pitch, nose down positive
                _, pitch = obs_lib.gravity_roll_pitch(
                    np, rec["obs"][s : s + min(ln, PITCH_STEPS), e, g]
                )
                nose_down[i] = pitch.mean() > self.pitch_split
            vx0[i] = (rec["vx"][s, e] if "vx" in rec
                      else rec["obs"][s, e, vx_col] / obs_lib.COMMAND_SCALE[0])  # fmt: skip
        first = int(self.seq.max()) + 1 if self._n else 0
        self.insert({"obs": obs, "action": act, "reward": rew, "length": length,
                     "score": (rew.sum(1) / length).astype(np.float32),
                     "group": command_group(wz0, vx0, self.yaw_classes, self.speed_edges)
                     + self.n_command_groups * self.stratum(startup, nose_down),
                     "added": np.full(n, iteration, np.int32),
                     "seq": np.arange(first, first + n, dtype=np.int64), "fell": fell,
                     "age": age})  # fmt: skip
        return n

    def insert(self, rows: dict) -> None:
        """Add pieces (a dict of the ``STORED`` arrays), then keep ``capacity``: the best by score
        (the newer first among equal scores) or the newest (``keep="newest"``). Absent pieces
        are displaced before any held one. Rows without ``fell`` (buffers saved before it was
        recorded) count as pieces that did not fall; rows without ``age``, as steps of unknown
        plan age."""
        k, n = len(rows["length"]), self._n
        if "fell" not in rows:
            rows = {**rows, "fell": np.zeros(k, bool)}
        if "age" not in rows:
            rows = {**rows, "age": np.full((k, self.max_len), -1, np.int16)}
        spare = self.capacity - n - int(self.absent.sum())
        if spare < k and self.absent.any():  # new pieces displace absent ones first
            self._displace_absent(min(k - max(spare, 0), int(self.absent.sum())))
        free = self.capacity - n
        if k <= free:
            self._reserve(n + k)
            self._put(np.arange(n, n + k), rows, np.arange(k))
            self._n = n + k
            return self._sync()
        score = np.concatenate([self.score, rows["score"]])
        seq = np.concatenate([self.seq, rows["seq"]])
        if self.keep == "newest":
            order = np.argsort(-seq, kind="stable")
        else:
            order = np.lexsort((-seq, -score))
        survive = np.zeros(n + k, bool)
        survive[order[: self.capacity]] = True
        slots = np.concatenate([np.arange(n, self.capacity), np.flatnonzero(~survive[:n])])
        new = np.flatnonzero(survive[n:])
        self._reserve(self.capacity)
        self._put(slots[: len(new)], rows, new)
        self._n = self.capacity
        self._sync()

    def _displace_absent(self, count: int) -> None:
        share = self.absent / self.absent.sum()
        cut = np.minimum(np.floor(share * count).astype(np.int64), self.absent)
        for g in np.argsort(-self.absent)[: count - int(cut.sum())]:  # the remainder, largest first
            cut[g] += 1
        self.absent = self.absent - np.minimum(cut, self.absent)

    def group_sizes(self) -> np.ndarray:
        """[n_groups] pieces per group, absent ones included (the base of the top quantile)."""
        return np.bincount(self.group, minlength=self.n_groups) + self.absent

    def windows(
        self, rng: np.random.Generator, pieces: np.ndarray, weights: np.ndarray | None,
        batch: int, horizon: int, starts: str = "any",
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """``batch`` H-step windows drawn uniformly over every window of ``pieces`` (a piece of
        length n has n - H + 1); each carries its piece's weight (1 if ``weights`` is None).
        ``starts="replan"``: only the windows that start at a replan step (plan age 0), whose
        first action was planned from the window's first state; ``"age<k>"``: only those that
        start k steps into a plan (a control with as many windows, all stale by k);
        ``"stride<k>"``: every k-th start of each piece from a phase fixed per piece (a control
        with as many windows at k = E, their plan ages mixed) (``parse_starts``)."""
        ok = self._eligible(pieces, horizon, starts)
        if ok is None:
            n_win = self.length[pieces] - horizon + 1
            cum = np.cumsum(n_win)
            flat = rng.integers(0, cum[-1], batch)
            which = np.searchsorted(cum, flat, side="right")
            start = flat - np.concatenate([[0], cum[:-1]])[which]
        else:
            rows_ok, starts_ok = np.nonzero(ok)
            if len(rows_ok) == 0:
                raise ValueError(
                    f"no window of the {len(pieces)} pieces (lengths "
                    f"{int(self.length[pieces].min()) if len(pieces) else 0}-"
                    f"{int(self.length[pieces].max()) if len(pieces) else 0}, H = {horizon}) "
                    f"starts where {starts!r} allows: are the pieces' plan ages recorded "
                    "(buffers saved before they were have none)?"
                )
            pick = rng.integers(0, len(rows_ok), batch)
            which, start = rows_ok[pick], starts_ok[pick]
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

    def _eligible(self, pieces: np.ndarray, horizon: int, starts: str) -> np.ndarray | None:
        """[len(pieces), L] bool: the window starts of ``pieces`` that ``starts`` allows (None:
        every start, ``any``)."""
        kind, k = parse_starts(starts)
        if kind == "any":
            return None
        t = np.arange(self.max_len)
        fits = t <= (self.length[pieces] - horizon)[:, None]
        if kind == "age":
            return (self.age[pieces] == k) & fits
        phase = (self.seq[pieces] % k)[:, None]  # fixed per piece, spread over the pieces
        return ((t - phase) % k == 0) & fits

    def n_windows(self, pieces: np.ndarray, horizon: int, starts: str = "any") -> int:
        """How many distinct windows ``windows(..., starts)`` draws from."""
        ok = self._eligible(pieces, horizon, starts)
        return int((self.length[pieces] - horizon + 1).sum()) if ok is None else int(ok.sum())

    def subset(self, idx: np.ndarray, count_rest: bool = False) -> ReplayBuffer:
        """A buffer of the same capacity and layout holding the pieces ``idx`` (in that order);
        ``count_rest``: the pieces left out still count, as ``absent``, towards their groups'
        sizes (a moved run's top quantile stays the top quantile of the whole buffer)."""
        out = dataclasses.replace(self)  # empty, with the same fields
        idx = np.asarray(idx, np.int64)
        out.insert({k: getattr(self, k)[idx] for k in STORED})
        if count_rest:
            out.absent = self.group_sizes() - np.bincount(self.group[idx], minlength=self.n_groups)
        return out

    # ---------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """Atomic write of every array (a kill mid-save leaves the previous file intact)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        layout = dict(zip(LAYOUT, self.layout(), strict=True))
        layout["speed_edges"] = np.asarray(self.speed_edges, np.float64)
        np.savez(tmp, **layout, absent=self.absent, **{k: getattr(self, k) for k in STORED})
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
                edges = tuple(f["speed_edges"].tolist()) if "speed_edges" in f.files else ()
                startup = int(f["startup_steps"]) if "startup_steps" in f.files else 0
                pitch = float(f["pitch_split"]) if "pitch_split" in f.files else 0.0
                buf = cls(int(f["capacity"]), int(f["max_len"]), f["obs"].shape[2],
                          f["action"].shape[2], keep, classes, edges, startup, pitch)  # fmt: skip
                rows = {k: f[k] for k in STORED if k in f.files}
                n = len(rows["length"])
                rows.setdefault("seq", np.arange(n, dtype=np.int64))  # older files: file order
                buf.insert(rows)
                if "absent" in f.files:
                    buf.absent = f["absent"].astype(np.int64)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise RuntimeError(
                f"replay buffer {path} is unreadable ({e}); it may be truncated"
            ) from e
        return buf
