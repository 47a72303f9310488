"""JAX's multi-process runtime for the training stages: one global mesh over every process's devices.

A stage started with ``--distributed`` calls :func:`initialize` before any JAX computation.
``jax.distributed.initialize`` then finds its peers: on SLURM, Open MPI or Kubernetes it reads the
cluster's own variables; elsewhere (``dmpc launch``, or by hand) it reads ``JAX_COORDINATOR_ADDRESS``
and our ``DMPC_NUM_PROCESSES`` / ``DMPC_PROCESS_ID``. On CPU the cross-process collectives go
through gloo. After it, ``jax.devices()`` lists every process's devices and :func:`global_mesh` is
one ``data`` axis over them; the stages keep one code path for 1 process x 1 device, 1 x many and
many x many:

- host data enters the mesh through :func:`to_global` (every process holds the same host values,
  drawn with the same seed, and places only the slices its own devices own);
- replicated results leave it through :func:`to_host` (the local replica, no collective);
- files (config, metrics, pages) are written by the main process only (:func:`is_main`), orbax
  checkpoints by every process together (orbax's multi-process protocol), and
  :func:`barrier` orders the two.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

ENV_NUM_PROCESSES = "DMPC_NUM_PROCESSES"
ENV_PROCESS_ID = "DMPC_PROCESS_ID"
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # read by jax.distributed itself


class DistributedError(RuntimeError):
    """The multi-process runtime was asked for but cannot start."""


def initialize(enabled: bool = True) -> None:
    """Join the multi-process runtime (no-op when ``enabled`` is False or already joined).

    Must run before the first JAX computation of the process: JAX fixes its device list then.
    """
    if not enabled or jax.distributed.is_initialized():
        return
    kwargs = {}
    n, pid = os.environ.get(ENV_NUM_PROCESSES), os.environ.get(ENV_PROCESS_ID)
    if (n is None) != (pid is None):
        raise DistributedError(
            f"set both {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} (found only "
            f"{ENV_NUM_PROCESSES if n is not None else ENV_PROCESS_ID})"
        )
    if n is not None:
        if ENV_COORDINATOR not in os.environ:
            raise DistributedError(
                f"{ENV_NUM_PROCESSES} is set but {ENV_COORDINATOR} (host:port of process 0) is not"
            )
        try:
            kwargs = {"num_processes": int(n), "process_id": int(pid)}
        except ValueError as e:
            raise DistributedError(
                f"{ENV_NUM_PROCESSES}={n!r} and {ENV_PROCESS_ID}={pid!r} must be integers"
            ) from e
    # CPU devices talk through gloo across processes (ignored by GPU/TPU backends)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as e:
        raise DistributedError(
            f"jax.distributed.initialize failed ({e}); outside SLURM/MPI/Kubernetes start the "
            f"processes with `dmpc launch --nproc N -- <stage> ... --distributed`, which sets "
            f"{ENV_COORDINATOR}, {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID}"
        ) from e


def is_main() -> bool:
    """True on the process that writes files (process 0)."""
    return jax.process_index() == 0


def global_mesh(n_devices: int | None = None) -> Mesh:
    """A 1-D ``data`` mesh over the first ``n_devices`` of every process's devices (all if None)."""
    devices = jax.devices()
    return Mesh(np.array(devices if n_devices is None else devices[:n_devices]), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def split(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Arrays split over the mesh along ``axis`` (the batch: 0 for [B, ...], 1 for [S, B, ...])."""
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), "data"))


def to_global(tree, sharding: NamedSharding):
    """Host (or single-device) values -> global arrays laid out by ``sharding``.

    Every process must pass the same values; each places only the slices of its own devices, so
    nothing crosses the network. With one process this equals ``jax.device_put``.
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(put, tree)


def to_host(tree):
    """Global arrays -> numpy. A replicated array reads its local replica; a sharded one is
    gathered from every process (a collective: every process must call it)."""

    def get(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return np.asarray(jax.device_get(x))
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(get, tree)


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (no-op with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
