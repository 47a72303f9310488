"""One ``dmpc`` command with a sub-command per stage (``dmpc --help`` lists them): training
(``cli.train``), evaluation (``cli.evaluate``), benchmarks (``cli.bench``) and the robot path
(``cli.robot``)."""

import sys

import tyro

from dmpc_jax.cli.bench import bench, bench_env, bench_ppo, bench_profile
from dmpc_jax.cli.evaluate import (
    demo,
    diagnose_offline,
    eval,  # noqa: A004
    eval_diffusion,
    eval_policy,
    eval_suite,
    eval_sweep,
)
from dmpc_jax.cli.robot import (
    deploy,
    export,
    resolve_task,
    robot_task_specs,
    sim2sim,
    sim2sim_faults,
)
from dmpc_jax.cli.train import dagger, dataset, demonstrator, finetune, pretrain

__all__ = ["SUBCOMMANDS", "main", "resolve_task", "robot_task_specs"]

SUBCOMMANDS = {
    "demo": demo,
    "bench-env": bench_env,
    "bench-ppo": bench_ppo,
    "demonstrator": demonstrator,
    "eval-policy": eval_policy,
    "dataset": dataset,
    "pretrain": pretrain,
    "finetune": finetune,
    "dagger": dagger,
    "eval-diffusion": eval_diffusion,
    "eval": eval,
    "eval-suite": eval_suite,
    "eval-sweep": eval_sweep,
    "diagnose-offline": diagnose_offline,
    "export": export,
    "sim2sim": sim2sim,
    "sim2sim-faults": sim2sim_faults,
    "deploy": deploy,
    "bench": bench,
    "bench-profile": bench_profile,
}


def launch(nproc: int = 2, devices_per_process: int = 1, gpu: bool = False) -> None:
    """Start NPROC local processes of a stage under jax.distributed:
    ``dmpc launch --nproc 2 -- pretrain --preset tiny`` (arguments after ``--`` go to the stage,
    which gets ``--distributed``; see dmpc_jax/launch.py)."""


SUBCOMMANDS["launch"] = launch


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["launch"]:  # its arguments after ``--`` belong to the stage: argparse
        from dmpc_jax.launch import main as launch_main

        sys.exit(launch_main(args[1:]))
    tyro.extras.subcommand_cli_from_dict(SUBCOMMANDS, args=args)
