"""The offline trajectory dataset: a schema-versioned directory of .npy arrays, and H-step windows.

Layout of a dataset directory (E envs, T steps each, env-major so one env's steps are contiguous):

| file | shape | dtype | content |
|---|---|---|---|
| obs.npy | [E, T, 49] | float32 | o_t, the policy observation the demonstrator acted on |
| action.npy | [E, T, 12] | float32 | a_t, the action applied at o_t (after the optional noise) |
| reward.npy | [E, T] | float32 | r_t, the env reward of the step o_t -> o_t+1 |
| reward_terms.npy | [E, T, R] | float32 | the scaled reward terms, names in meta.json |
| command.npy | [E, T, 3] | float32 | (vx, vy, wz) in force at o_t |
| privileged.npy | [E, T, 56] | float32 | the critic's privileged state at o_t |
| done.npy | [E, T] | bool | the episode ended with this step (termination or time limit) |
| terminated.npy | [E, T] | bool | the episode ended by a fall |

``meta.json`` holds ``schema_version``, every file's shape, dtype and byte size, the observation
layout, the joint order, the scaling statistics (per-dimension mean/std of obs and action), the
collection config, the source checkpoint and the collection time. Row t and row t+1 of an env belong
to the same episode unless ``done[t]``. ``load_dataset`` checks the schema version and each file's
size against meta.json, so a truncated or foreign file fails with an error that names it, and
nothing is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
FIELDS = ("obs", "action", "reward", "reward_terms", "command", "privileged", "done", "terminated")


class DatasetError(ValueError):
    """A dataset directory that cannot be read as this schema."""


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: arrays (memory-mapped) and meta."""

    path: Path
    meta: dict
    arrays: dict[str, np.ndarray]

    @property
    def n_envs(self) -> int:
        return self.arrays["obs"].shape[0]

    @property
    def n_steps(self) -> int:
        return self.arrays["obs"].shape[1]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def create_arrays(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.memmap]:
    """Preallocate one .npy memmap per field (writable) in a new directory."""
    path.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in FIELDS:
        dtype = np.bool_ if name in ("done", "terminated") else np.float32
        out[name] = np.lib.format.open_memmap(
            path / f"{name}.npy", mode="w+", dtype=dtype, shape=shapes[name]
        )
    return out


def compute_stats(obs: np.ndarray, action: np.ndarray, chunk: int = 64) -> dict:
    """Per-dimension mean and std of obs [E, T, Do] and action [E, T, Da], streamed over envs."""

    def stats(x):
        n, s, ss = 0, 0.0, 0.0
        for i in range(0, x.shape[0], chunk):
            block = np.asarray(x[i : i + chunk], np.float64).reshape(-1, x.shape[-1])
            n += block.shape[0]
            s = s + block.sum(0)
            ss = ss + np.square(block).sum(0)
        mean = s / n
        std = np.sqrt(np.maximum(ss / n - mean**2, 0.0))
        return {"mean": mean.tolist(), "std": std.tolist()}

    return {"obs": stats(obs), "action": stats(action)}


def finalize(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> dict:
    """Flush arrays and write meta.json (last: a directory without it is an unfinished dataset)."""
    for a in arrays.values():
        if isinstance(a, np.memmap):
            a.flush()
    meta = dict(meta)
    meta["schema_version"] = SCHEMA_VERSION
    meta["files"] = {
        name: {
            "shape": list(arrays[name].shape),
            "dtype": str(arrays[name].dtype),
            "bytes": (path / f"{name}.npy").stat().st_size,
        }
        for name in FIELDS
    }
    meta["stats"] = compute_stats(arrays["obs"], arrays["action"])
    (path / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def load_dataset(path: Path, *, mmap: bool = True) -> Dataset:
    """Open a dataset directory; checks schema version, shapes and file sizes."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise DatasetError(
            f"{path} has no meta.json: not a dataset, or its collection did not finish"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{meta_path} is not valid JSON ({e})") from e
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DatasetError(
            f"{path}: dataset schema_version {version!r}, this code reads version {SCHEMA_VERSION}; "
            "re-collect it with `make dataset` or use the matching dmpc_jax version"
        )
    arrays = {}
    for name in FIELDS:
        f = path / f"{name}.npy"
        spec = meta["files"].get(name)
        if spec is None or not f.exists():
            raise DatasetError(f"{path}: missing field {name!r} ({f.name})")
        size = f.stat().st_size
        if size != spec["bytes"]:
            raise DatasetError(
                f"{f} is {size} bytes, meta.json says {spec['bytes']}: the file is truncated or "
                "was replaced"
            )
        try:
            arr = np.load(f, mmap_mode="r" if mmap else None)
        except ValueError as e:
            raise DatasetError(f"{f} cannot be read as .npy ({e})") from e
        if list(arr.shape) != spec["shape"] or str(arr.dtype) != spec["dtype"]:
            raise DatasetError(
                f"{f}: shape {arr.shape} {arr.dtype}, meta.json says {spec['shape']} {spec['dtype']}"
            )
        arrays[name] = arr
    e, t = arrays["obs"].shape[:2]
    for name, arr in arrays.items():
        if arr.shape[:2] != (e, t):
            raise DatasetError(
                f"{path}: {name} has leading shape {arr.shape[:2]}, obs has {(e, t)}"
            )
    return Dataset(path, meta, arrays)


def concatenate(out: Path, sources: list[Path], chunk: int = 64) -> Dataset:
    """One dataset of the sources' envs side by side (DAgger's aggregate of several collections):
    every source must hold the same observation layout, and steps per env that are a multiple
    of the shortest source's T: a longer source's envs are each cut into pieces of T steps, one
    env per piece (windows across a cut are lost; e.g. the 8000-step pretraining data beside
    4000-step recoveries). ``meta.json`` lists the sources with their collection and env
    settings and envs after the cut, and holds the union's transitions, episode ends, falls and
    scaling statistics. ``out`` must not exist: nothing is overwritten."""
    out = Path(out)
    if out.exists():
        raise DatasetError(f"{out} exists: pick a new directory for the concatenation")
    parts = [load_dataset(Path(p)) for p in sources]
    if len(parts) < 2:
        raise DatasetError("concatenate needs two or more datasets")
    t = min(d.n_steps for d in parts)
    for d in parts:
        if d.n_steps % t:
            raise DatasetError(f"{d.path} holds {d.n_steps} steps per env, not a multiple of the "
                               f"shortest source's {t}: its envs cannot be cut to that length")  # fmt: skip
        if d.meta.get("obs_layout") != parts[0].meta.get("obs_layout"):
            raise DatasetError(f"{d.path}: another observation layout than {parts[0].path}")
    cuts = [d.n_steps // t for d in parts]  # pieces per source env
    shapes = {k: (sum(d.n_envs * c for d, c in zip(parts, cuts, strict=True)), t,
                  *parts[0][k].shape[2:]) for k in FIELDS}  # fmt: skip
    arrays = create_arrays(out, shapes)
    e = 0
    for d, c in zip(parts, cuts, strict=True):
        for i in range(0, d.n_envs, chunk):
            n = min(chunk, d.n_envs - i)
            for k in FIELDS:  # env i's piece j becomes env e + i * c + j
                block = np.asarray(d[k][i : i + n])
                arrays[k][e + i * c : e + (i + n) * c] = block.reshape(n * c, t, *block.shape[2:])
        e += d.n_envs * c
    own = ("files", "stats", "schema_version", "config", "env", "collection_s",
           "first_chunk_with_compile_s")  # fmt: skip
    meta = {k: v for k, v in parts[0].meta.items() if k not in own}
    meta["created_by"] = "dataset.concatenate"
    meta["sources"] = [{"path": str(d.path), "n_envs": d.n_envs * c, "cut": c,
                        **{k: d.meta[k] for k in ("config", "env") if k in d.meta}}
                       for d, c in zip(parts, cuts, strict=True)]  # fmt: skip
    meta["transitions"] = shapes["obs"][0] * shapes["obs"][1]
    meta["episodes_ended"] = int(sum(int(np.asarray(d["done"]).sum()) for d in parts))
    meta["falls"] = int(sum(int(np.asarray(d["terminated"]).sum()) for d in parts))
    finalize(out, arrays, meta)
    return load_dataset(out)


def source_rows(ds: Dataset, source: Path) -> np.ndarray | None:
    """Where a concatenation (``concatenate``) holds its source ``source``: [E_source, cut] rows,
    row ``[i, j]`` the piece j of the source's env i (a source cut into c pieces: rows offset + i c
    .. offset + i c + c - 1; a source listed twice: both copies side by side); None when ``ds``
    is no concatenation or holds no such source."""
    row, found = 0, []
    for src in ds.meta.get("sources", ()):
        cut = int(src.get("cut", 1))  # concatenations before the cut hold whole envs
        if Path(src["path"]).resolve() == Path(source).resolve():
            found.append(row + np.arange(src["n_envs"]).reshape(-1, cut))
        row += src["n_envs"]
    return np.concatenate(found, axis=1) if found else None


def window_starts(done: np.ndarray, horizon: int) -> np.ndarray:
    """All (env, t) such that rows t .. t+H-1 of that env lie in one episode.

    Args:
        done: [E, T] bool, the episode ended with step t.
        horizon: H, window length.

    Returns:
        [M, 2] int array of (env, t).
    """
    e, t = done.shape
    if horizon > t:
        return np.zeros((0, 2), np.int64)
    # a window may end on a done row, but no row before its last may be done
    d = np.asarray(done[:, : t - 1], np.int64)
    csum = np.concatenate([np.zeros((e, 1), np.int64), np.cumsum(d, axis=1)], axis=1)  # [E, T]
    starts = np.arange(t - horizon + 1)
    crossing = csum[:, starts + horizon - 1] - csum[:, starts]  # dones in rows t .. t+H-2
    env_idx, t_idx = np.nonzero(crossing == 0)
    return np.stack([env_idx, starts[t_idx]], axis=1)


def fallen_rows(done: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    """[E, T] bool: the row lies in an episode that ends in a fall (``terminated`` on its ``done``
    row). An episode the recording cuts off before its end did not fall."""
    done, terminated = np.asarray(done, bool), np.asarray(terminated, bool)
    # episode k of an env holds the rows after its k-th done up to and including its (k+1)-th
    episode = np.concatenate([np.zeros_like(done[:, :1], np.int64),
                              np.cumsum(done[:, :-1], axis=1)], axis=1)  # fmt: skip
    e, t = np.nonzero(done & terminated)
    fell = np.zeros((done.shape[0], done.shape[1] + 1), bool)  # [E, episodes <= T + 1]
    fell[e, episode[e, t]] = True
    return np.take_along_axis(fell, episode, axis=1)


class WindowSampler:
    """Random H-step windows of (action, obs) rows that never cross an episode end
    (``drop_falls``: nor lie in an episode that ends in a fall).

    ``sample(rng, B)`` returns dict of arrays: ``action`` [B, H, 12], ``obs`` [B, H, 49],
    ``reward`` [B, H], ``command`` [B, H, 3], ``start`` [B, 2] (env, t). Row h of every field is the
    same env step, so ``action[:, h]`` is the action taken at ``obs[:, h]``.
    """

    def __init__(
        self, ds: Dataset, horizon: int, envs: np.ndarray | None = None, drop_falls: bool = False
    ):
        self.ds, self.horizon, self.envs = ds, horizon, envs
        done = np.asarray(ds["done"])
        starts = window_starts(done, horizon)
        if envs is not None:
            starts = starts[np.isin(starts[:, 0], envs)]
        if drop_falls:  # no window of an episode that ends in a fall
            fell = fallen_rows(done, np.asarray(ds["terminated"]))
            starts = starts[~fell[starts[:, 0], starts[:, 1]]]
        if len(starts) == 0:
            why = " outside episodes that fall" if drop_falls else ""
            raise DatasetError(f"{ds.path}: no episode{why} has {horizon} consecutive steps")
        self.starts = starts

    def __len__(self) -> int:
        return len(self.starts)

    def gather(self, starts: np.ndarray) -> dict[str, np.ndarray]:
        idx_t = starts[:, 1:2] + np.arange(self.horizon)[None]  # [B, H]
        idx_e = np.broadcast_to(starts[:, 0:1], idx_t.shape)
        out = {
            name: np.asarray(self.ds[name][idx_e, idx_t])
            for name in ("action", "obs", "reward", "command")
        }
        out["start"] = starts
        return out

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
        return self.gather(self.starts[rng.integers(0, len(self.starts), batch)])
