"""One ``dmpc`` command with a sub-command per stage (``dmpc --help`` lists them): training
(``cli.train``), evaluation (``cli.evaluate``), benchmarks (``cli.bench``) and the robot path
(``cli.robot``)."""

import contextlib
import functools
import inspect
import io
import sys

import tyro

# mujoco.mjx prints "Failed to import warp" (twice) when its optional Warp backend is absent: a
# GPU backend we do not use, which a new user reads as an error. Import it once, quietly.
with contextlib.redirect_stdout(io.StringIO()):
    import mujoco.mjx  # noqa: F401

from dmpc_jax.cli.bench import bench, bench_env, bench_ppo, bench_profile
from dmpc_jax.cli.evaluate import (
    check_pages,
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
    export_demonstrator,
    resolve_task,
    robot_task_specs,
    sim2sim,
    sim2sim_faults,
)
from dmpc_jax.cli.train import (
    PRESETS,
    dagger,
    dataset,
    dataset_concat,
    demonstrator,
    finetune,
    finetune_curve,
    pretrain,
)
from dmpc_jax.config import load_json

__all__ = ["SUBCOMMANDS", "main", "resolve_task", "robot_task_specs", "with_preset_defaults"]

SUBCOMMANDS = {
    "demo": demo,
    "bench-env": bench_env,
    "bench-ppo": bench_ppo,
    "demonstrator": demonstrator,
    "eval-policy": eval_policy,
    "dataset": dataset,
    "dataset-concat": dataset_concat,
    "pretrain": pretrain,
    "finetune": finetune,
    "finetune-curve": finetune_curve,
    "dagger": dagger,
    "eval-diffusion": eval_diffusion,
    "eval": eval,
    "eval-suite": eval_suite,
    "eval-sweep": eval_sweep,
    "diagnose-offline": diagnose_offline,
    "export": export,
    "export-demonstrator": export_demonstrator,
    "sim2sim": sim2sim,
    "sim2sim-faults": sim2sim_faults,
    "deploy": deploy,
    "bench": bench,
    "bench-profile": bench_profile,
    "check-pages": check_pages,
}


def launch(nproc: int = 2, devices_per_process: int = 1, gpu: bool = False) -> None:
    """Start NPROC local processes of a stage under jax.distributed:
    ``dmpc launch --nproc 2 -- pretrain --preset tiny`` (arguments after ``--`` go to the stage,
    which gets ``--distributed``; see dmpc_jax/launch.py)."""


SUBCOMMANDS["launch"] = launch


def _flag(args: list[str], name: str) -> str | None:
    """The value of ``name`` in ``args`` (``--name value`` or ``--name=value``), else None."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def with_preset_defaults(stage: str, args: list[str]):
    """The training sub-command ``stage`` with the defaults of its ``cfg`` set by the
    ``--preset`` (or ``--config`` JSON file) in ``args``: tyro then applies every ``--cfg.*``
    given on top of them, so ``dmpc dataset --preset tiny --cfg.n-envs 8`` is the tiny preset
    with 8 envs."""
    cls, registry, default = PRESETS[stage]
    config = _flag(args, "--config")
    try:
        cfg = load_json(cls, config) if config else registry(_flag(args, "--preset") or default)
    except (ValueError, FileNotFoundError) as e:  # an unknown preset, a bad or missing file
        raise SystemExit(f"dmpc {stage}: {e}") from None
    fn = SUBCOMMANDS[stage]
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def stage_fn(**kwargs):
        return fn(**kwargs)

    stage_fn.__signature__ = sig.replace(
        parameters=[
            p.replace(default=cfg) if p.name == "cfg" else p for p in sig.parameters.values()
        ]
    )
    return stage_fn


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["launch"]:  # its arguments after ``--`` belong to the stage: argparse
        from dmpc_jax.launch import main as launch_main

        sys.exit(launch_main(args[1:]))
    commands = dict(SUBCOMMANDS)
    if args[:1] and args[0] in PRESETS:
        commands[args[0]] = with_preset_defaults(args[0], args[1:])
    try:
        tyro.extras.subcommand_cli_from_dict(commands, args=args)
    except BaseException as e:
        _exit_now_in_a_group(e)
        raise


def _exit_now_in_a_group(e: BaseException) -> None:
    """A process of a multi-process group that fails exits at once, with its traceback: a
    normal exit runs jax.distributed's shutdown, which waits for every peer to reach it, and a
    peer waiting at a barrier for the failed process only gives up after gloo's 30 s timeout.
    ``dmpc launch`` then stops the peers as soon as the first process has failed."""
    import jax

    if not jax.distributed.is_initialized() or jax.process_count() < 2:
        return
    import os
    import traceback

    if isinstance(e, SystemExit):
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    else:
        traceback.print_exc()
        code = 130 if isinstance(e, KeyboardInterrupt) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
