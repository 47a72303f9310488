"""``dmpc launch``: N local processes of one stage under JAX's multi-process runtime.

``dmpc launch --nproc 2 -- pretrain --preset tiny`` starts ``dmpc pretrain --preset tiny
--distributed`` twice on this machine, each with its own CPU device(s), joined over localhost
(``JAX_COORDINATOR_ADDRESS``, ``DMPC_NUM_PROCESSES``, ``DMPC_PROCESS_ID``; gloo collectives): the
code path a cluster runs, exercised on one machine. On a cluster the scheduler starts the
processes instead (SLURM: ``srun dmpc pretrain ... --distributed``; ``jax.distributed`` reads
SLURM's variables itself), so this is not a scheduler: it starts, watches and stops one group.

If one process fails the others are stopped (a peer waiting on a collective would otherwise wait
for the coordinator's heartbeat timeout), and the first failing exit status is returned.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

from dmpc_jax.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(
    rank: int, nproc: int, port: int, devices_per_process: int, gpu: bool, base: dict | None = None
) -> dict[str, str]:
    """The environment of process ``rank``: where the coordinator is, who it is, its devices."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            ENV_COORDINATOR: f"127.0.0.1:{port}",
            ENV_NUM_PROCESSES: str(nproc),
            ENV_PROCESS_ID: str(rank),
        }
    )
    if gpu:  # one GPU per process, as on a multi-GPU host
        env["JAX_LOCAL_DEVICE_IDS"] = ",".join(
            str(rank * devices_per_process + i) for i in range(devices_per_process)
        )
    else:
        env["JAX_PLATFORMS"] = "cpu"
        flags = [
            f
            for f in env.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")
        ]
        flags.append(f"--xla_force_host_platform_device_count={devices_per_process}")
        env["XLA_FLAGS"] = " ".join(flags)
    return env


def launch(
    stage_args: list[str],
    nproc: int,
    *,
    devices_per_process: int = 1,
    gpu: bool = False,
    port: int | None = None,
    poll_s: float = 0.2,
) -> int:
    """Run ``dmpc <stage_args> --distributed`` in ``nproc`` processes; their exit status."""
    if nproc < 1 or devices_per_process < 1:
        raise ValueError(f"--nproc ({nproc}) and --devices-per-process must be >= 1")
    if not stage_args or stage_args[0].startswith("-"):
        raise ValueError("name the stage to launch, e.g. `dmpc launch --nproc 2 -- pretrain ...`")
    if "--distributed" not in stage_args:
        stage_args = [*stage_args, "--distributed"]
    port = port or free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dmpc_jax.cli", *stage_args],
            env=process_env(rank, nproc, port, devices_per_process, gpu),
        )
        for rank in range(nproc)
    ]
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
                for p in procs:
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                print(
                    f"dmpc launch: process {codes.index(failed[0])} exited with {failed[0]}; "
                    f"stopped the other {nproc - 1}",
                    file=sys.stderr,
                )
                return failed[0]
            if all(c == 0 for c in codes):
                return 0
            time.sleep(poll_s)
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        return 130


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="dmpc launch",
        description="Start N local processes of a dmpc stage under jax.distributed "
        "(e.g. `dmpc launch --nproc 2 -- pretrain --preset tiny`).",
    )
    ap.add_argument("--nproc", type=int, default=2, help="processes to start")
    ap.add_argument(
        "--devices-per-process", type=int, default=1,
        help="CPU devices each process forces (or GPUs each process takes with --gpu)",
    )  # fmt: skip
    ap.add_argument("--gpu", action="store_true", help="give each process its own GPU(s)")
    ap.add_argument("--port", type=int, default=None, help="coordinator port (default: a free one)")
    ap.add_argument("stage", nargs=argparse.REMAINDER, help="-- <stage> [its arguments]")
    a = ap.parse_args(argv)
    stage = a.stage[1:] if a.stage[:1] == ["--"] else a.stage
    try:
        return launch(
            stage, a.nproc, devices_per_process=a.devices_per_process, gpu=a.gpu, port=a.port
        )
    except ValueError as e:
        ap.error(str(e))
