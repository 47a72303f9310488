"""``dmpc`` sub-commands of the training stages: demonstrator, dataset, pretraining, RWR finetuning, DAgger."""

import sys
from typing import Literal

from dmpc_jax.data.collect import DatasetConfig


def demonstrator(
    preset: Literal["tiny", "cpu", "paper"] = "cpu",
    run: str | None = None,
    root: str = "checkpoints/demonstrator",
    config: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_epochs: int | None = None,
    distributed: bool = False,
) -> None:
    """Train the PPO demonstrator into ROOT/RUN (RUN defaults to the preset name).

    Args:
        preset: tiny (tests), cpu (2 cores, hours), paper (GPU, thousands of envs).
        run: run directory name under root.
        root: parent directory of runs.
        config: a JSON file with a full DemonstratorConfig, used instead of the preset.
        resume: continue the run from its newest checkpoint.
        overwrite: delete an existing run of that name first.
        max_epochs: stop after this many epochs in this call (continue later with --resume).
        distributed: join JAX's multi-process runtime (the env batch split over every
            process's devices; started by ``dmpc launch`` or a cluster scheduler, see README).
    """
    from pathlib import Path

    from dmpc_jax import distributed as dist

    dist.initialize(distributed)

    from dmpc_jax.config import load_json
    from dmpc_jax.rl.ppo import DemonstratorConfig, demonstrator_preset
    from dmpc_jax.rl.train import train

    cfg = load_json(DemonstratorConfig, config) if config else demonstrator_preset(preset)
    train(
        cfg,
        Path(root) / (run or preset),
        resume=resume,
        overwrite=overwrite,
        max_epochs=max_epochs,
    )


def dataset(
    cfg: DatasetConfig = DatasetConfig(),
    preset: Literal["tiny", "cpu", "paper", "custom"] = "custom",
    overwrite: bool = False,
) -> None:
    """Roll out the demonstrator and store the offline trajectory dataset (data/<run>/).

    Args:
        cfg: the collection settings (used as given when preset is custom).
        preset: tiny / cpu / paper sizes instead of cfg (cfg.demonstrator still applies).
        overwrite: replace an existing dataset directory.
    """
    import dataclasses

    from dmpc_jax.data.collect import collect, dataset_preset

    if preset != "custom":
        cfg = dataclasses.replace(dataset_preset(preset), demonstrator=cfg.demonstrator)
    collect(cfg, overwrite=overwrite)


def pretrain(
    preset: Literal["tiny", "cpu", "paper"] = "cpu",
    dataset: str | None = None,
    run: str | None = None,
    root: str = "checkpoints/diffusion",
    config: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_calls: int | None = None,
    num_steps: int | None = None,
    lr_decay_from: int | None = None,
    distributed: bool = False,
) -> None:
    """Train the trajectory denoiser and R_nn on a dataset into ROOT/RUN.

    Args:
        preset: tiny (tests), cpu (2 cores), paper (GPU, the authors' 16.8 M-parameter U-Net).
        dataset: dataset directory (default: the preset's).
        run: run directory name under root (default: the preset name).
        root: parent directory of runs.
        config: a JSON file with a full PretrainConfig, used instead of the preset.
        resume: continue the run from its newest checkpoint.
        overwrite: delete an existing run of that name first.
        max_calls: stop after this many jitted calls in this invocation (continue with --resume).
        num_steps: the step budget instead of the config's (a --resume may raise it).
        lr_decay_from: cosine learning-rate decay from this step to 0 at num_steps (a --resume
            may set it: ``--resume --num-steps 8000 --lr-decay-from 6000`` anneals a run).
        distributed: join JAX's multi-process runtime (one mesh over every process's devices;
            started by ``dmpc launch`` or a cluster scheduler, see README).
    """
    import dataclasses
    from pathlib import Path

    from dmpc_jax import distributed as dist

    dist.initialize(distributed)

    from dmpc_jax.config import load_json
    from dmpc_jax.diffusion.config import PretrainConfig, pretrain_preset
    from dmpc_jax.diffusion.train import pretrain as run_pretrain

    cfg = load_json(PretrainConfig, config) if config else pretrain_preset(preset)
    if dataset is not None:
        cfg = dataclasses.replace(cfg, dataset=dataset)
    if num_steps is not None:
        cfg = dataclasses.replace(cfg, num_steps=num_steps)
    if lr_decay_from is not None:
        cfg = dataclasses.replace(cfg, lr_decay_from=lr_decay_from)
    run_pretrain(
        cfg, Path(root) / (run or preset), resume=resume, overwrite=overwrite, max_calls=max_calls
    )


def finetune(
    preset: Literal["tiny", "cpu", "paper"] = "cpu",
    pretrained: str | None = None,
    run: str | None = None,
    root: str = "checkpoints/rwr",
    config: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_iterations: int | None = None,
    iterations: int | None = None,
    page: str | None = "experiments/finetune",
    distributed: bool = False,
) -> None:
    """Finetune a pretrained planner by reward-weighted regression on its own rollouts into
    ROOT/RUN (METHOD §6), then write the results page.

    Args:
        preset: tiny (tests), cpu (2 cores), paper (GPU: 4096 envs, 150 iterations).
        pretrained: the pretraining run to start from (default: the preset's).
        run: run directory name under root (default: the preset name).
        root: parent directory of runs.
        config: a JSON file with a full FinetuneConfig, used instead of the preset.
        resume: continue the run from its newest checkpoint (replay buffer included).
        overwrite: delete an existing run of that name first.
        max_iterations: stop after this many iterations in this invocation (continue with --resume).
        iterations: total iterations (overrides the preset; with --resume, extends a finished run).
        page: directory of the results page (page + learning curve); empty to skip it.
        distributed: join JAX's multi-process runtime (envs and batches split over every
            process's devices; started by ``dmpc launch`` or a cluster scheduler, see README).
    """
    import dataclasses
    from pathlib import Path

    from dmpc_jax import distributed as dist

    dist.initialize(distributed)

    from dmpc_jax.config import load_json
    from dmpc_jax.finetune.config import FinetuneConfig, finetune_preset
    from dmpc_jax.finetune.loop import finetune as run_finetune
    from dmpc_jax.finetune.report import write_page

    cfg = load_json(FinetuneConfig, config) if config else finetune_preset(preset)
    if pretrained is not None:
        cfg = dataclasses.replace(cfg, pretrained=pretrained)
    if iterations is not None:
        cfg = dataclasses.replace(cfg, iterations=iterations)
    run_dir = Path(root) / (run or preset)
    run_finetune(
        cfg, run_dir, resume=resume, overwrite=overwrite, max_iterations=max_iterations,
        command="dmpc finetune " + " ".join(sys.argv[2:]),
    )  # fmt: skip
    if page and dist.is_main():
        write_page(run_dir, Path(page))


def dagger(
    preset: Literal["tiny", "cpu"] = "cpu",
    pretrained: str | None = None,
    run: str | None = None,
    root: str = "checkpoints/dagger",
    config: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_iterations: int | None = None,
    iterations: int | None = None,
) -> None:
    """Finetune a planner on the demonstrator's answers from the planner's own closed-loop states
    (DAgger with demonstrator branches, beyond the paper; dmpc_jax/finetune/dagger.py) into
    ROOT/RUN.

    Args:
        preset: tiny (tests) or cpu (2 cores).
        pretrained: the planner run to start from (default: the preset's).
        run: run directory name under root (default: the preset name).
        root: parent directory of runs.
        config: a JSON file with a full DaggerConfig, used instead of the preset.
        resume: continue the run from its newest checkpoint (replay buffer included).
        overwrite: delete an existing run of that name first.
        max_iterations: stop after this many iterations in this invocation (continue with --resume).
        iterations: total iterations (overrides the preset; with --resume, extends a run).
    """
    import dataclasses
    from pathlib import Path

    from dmpc_jax.config import load_json
    from dmpc_jax.finetune.dagger import DaggerConfig, dagger_preset
    from dmpc_jax.finetune.dagger import dagger as run_dagger

    cfg = load_json(DaggerConfig, config) if config else dagger_preset(preset)
    if pretrained is not None:
        cfg = dataclasses.replace(cfg, pretrained=pretrained)
    if iterations is not None:
        cfg = dataclasses.replace(cfg, iterations=iterations)
    run_dagger(
        cfg, Path(root) / (run or preset), resume=resume, overwrite=overwrite,
        max_iterations=max_iterations, command="dmpc dagger " + " ".join(sys.argv[2:]),
    )  # fmt: skip
