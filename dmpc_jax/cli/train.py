"""``dmpc`` sub-commands of the training stages: demonstrator, dataset, pretraining, RWR
finetuning, DAgger. Each takes ``--preset NAME`` (or ``--config FILE``, a full JSON config): it
sets the defaults of every ``--cfg.*`` field, which may then be overridden one by one
(``dmpc pretrain --preset cpu --cfg.learning-rate 1e-4``; ``cli.with_preset_defaults``)."""

import dataclasses
import sys
from pathlib import Path
from typing import Literal

from dmpc_jax import distributed as dist
from dmpc_jax.data.collect import DatasetConfig, dataset_preset
from dmpc_jax.diffusion.config import PretrainConfig, pretrain_preset
from dmpc_jax.finetune.config import FinetuneConfig, finetune_preset
from dmpc_jax.finetune.dagger import DaggerConfig, dagger_preset
from dmpc_jax.rl.ppo import DemonstratorConfig, demonstrator_preset

Preset = Literal["tiny", "cpu", "paper"]

# sub-command -> (its config class, its preset registry, the default preset)
PRESETS = {
    "demonstrator": (DemonstratorConfig, demonstrator_preset, "cpu"),
    "dataset": (DatasetConfig, dataset_preset, "cpu"),
    "pretrain": (PretrainConfig, pretrain_preset, "cpu"),
    "finetune": (FinetuneConfig, finetune_preset, "cpu"),
    "dagger": (DaggerConfig, dagger_preset, "cpu"),
}


def _replace(cfg, **fields):
    """``cfg`` with the fields that were given (not None) replaced."""
    return dataclasses.replace(cfg, **{k: v for k, v in fields.items() if v is not None})


def demonstrator(
    cfg: DemonstratorConfig = demonstrator_preset("cpu"),
    preset: Preset = "cpu",
    config: str | None = None,
    run: str | None = None,
    root: str = "checkpoints/demonstrator",
    resume: bool = False,
    overwrite: bool = False,
    max_epochs: int | None = None,
    distributed: bool = False,
) -> None:
    """Train the PPO demonstrator into ROOT/RUN (RUN defaults to the preset name).

    Args:
        cfg: the run's settings: the preset's, each field overridable (``--cfg.ppo.num-envs 64``).
        preset: tiny (tests), cpu (2 cores, hours), paper (GPU, thousands of envs).
        config: a JSON file with a full DemonstratorConfig: the defaults instead of the preset's.
        run: run directory name under root.
        root: parent directory of runs.
        resume: continue the run from its newest checkpoint.
        overwrite: delete an existing run of that name first.
        max_epochs: stop after this many epochs in this call (continue later with --resume).
        distributed: join JAX's multi-process runtime (the env batch split over every
            process's devices; started by ``dmpc launch`` or a cluster scheduler, see README).
    """
    dist.initialize(distributed)
    from dmpc_jax.rl.train import train

    train(cfg, Path(root) / (run or preset), resume=resume, overwrite=overwrite,
          max_epochs=max_epochs, command="dmpc demonstrator " + " ".join(sys.argv[2:]))  # fmt: skip


def dataset(
    cfg: DatasetConfig = dataset_preset("cpu"),
    preset: Preset = "cpu",
    config: str | None = None,
    overwrite: bool = False,
) -> None:
    """Roll out the demonstrator and store the offline trajectory dataset (``cfg.out``).

    Args:
        cfg: the collection settings: the preset's, each field overridable (``--cfg.n-envs 8``).
        preset: tiny (tests), cpu (2 cores), paper (GPU).
        config: a JSON file with a full DatasetConfig: the defaults instead of the preset's.
        overwrite: replace an existing dataset directory.
    """
    from dmpc_jax.data.collect import collect

    collect(cfg, overwrite=overwrite)


def pretrain(
    cfg: PretrainConfig = pretrain_preset("cpu"),
    preset: Preset = "cpu",
    config: str | None = None,
    dataset: str | None = None,
    run: str | None = None,
    root: str = "checkpoints/diffusion",
    resume: bool = False,
    overwrite: bool = False,
    max_calls: int | None = None,
    num_steps: int | None = None,
    lr_decay_from: int | None = None,
    distributed: bool = False,
) -> None:
    """Train the trajectory denoiser and R_nn on a dataset into ROOT/RUN.

    Args:
        cfg: the run's settings: the preset's, each field overridable
            (``--cfg.learning-rate 1e-4``, ``--cfg.model.unet.dim 64``).
        preset: tiny (tests), cpu (2 cores), paper (GPU, the authors' 16.8 M-parameter U-Net).
        config: a JSON file with a full PretrainConfig: the defaults instead of the preset's.
        dataset: shorthand for --cfg.dataset.
        run: run directory name under root (default: the preset name).
        root: parent directory of runs.
        resume: continue the run from its newest checkpoint.
        overwrite: delete an existing run of that name first.
        max_calls: stop after this many jitted calls in this invocation (continue with --resume).
        num_steps: shorthand for --cfg.num-steps (a --resume may raise it).
        lr_decay_from: shorthand for --cfg.lr-decay-from: cosine learning-rate decay from this
            step to 0 at num_steps (``--resume --num-steps 8000 --lr-decay-from 6000`` anneals
            a run).
        distributed: join JAX's multi-process runtime (one mesh over every process's devices;
            started by ``dmpc launch`` or a cluster scheduler, see README).
    """
    dist.initialize(distributed)
    from dmpc_jax.diffusion.train import pretrain as run_pretrain

    cfg = _replace(cfg, dataset=dataset, num_steps=num_steps, lr_decay_from=lr_decay_from)
    run_pretrain(
        cfg, Path(root) / (run or preset), resume=resume, overwrite=overwrite, max_calls=max_calls
    )


def finetune(
    cfg: FinetuneConfig = finetune_preset("cpu"),
    preset: Literal["tiny", "cpu", "cpu_paper", "paper"] = "cpu",
    config: str | None = None,
    pretrained: str | None = None,
    run: str | None = None,
    root: str = "checkpoints/rwr",
    resume: bool = False,
    overwrite: bool = False,
    max_iterations: int | None = None,
    iterations: int | None = None,
    page: str | None = None,
    distributed: bool = False,
) -> None:
    """Finetune a pretrained planner by reward-weighted regression on its own rollouts into
    ROOT/RUN (METHOD §6), then write the results page.

    Args:
        cfg: the run's settings: the preset's, each field overridable
            (``--cfg.learning-rate 1e-4``, ``--cfg.demonstrator-run ...``).
        preset: tiny (tests), cpu (2 cores: the shipped run), cpu_paper (2 cores: the paper's
            30.7 M env steps and settings from the 6 k planner), paper (GPU: 4096 envs, 150
            iterations).
        config: a JSON file with a full FinetuneConfig: the defaults instead of the preset's.
        pretrained: shorthand for --cfg.pretrained, the pretraining run to start from.
        run: run directory name under root (default: the preset name).
        root: parent directory of runs.
        resume: continue the run from its newest checkpoint (replay buffer included).
        overwrite: delete an existing run of that name first.
        max_iterations: stop after this many iterations in this invocation (continue with --resume).
        iterations: shorthand for --cfg.iterations (with --resume, extends a finished run).
        page: directory of the results page; empty to skip it. By default the shipped run
            (RUN cpu) writes experiments/finetune (page, learning curve, model card) and any
            other run its learning-curve page (``dmpc finetune-curve``) to
            experiments/finetune/RUN.
        distributed: join JAX's multi-process runtime (envs and batches split over every
            process's devices; started by ``dmpc launch`` or a cluster scheduler, see README).
    """
    dist.initialize(distributed)
    from dmpc_jax.finetune.loop import finetune as run_finetune
    from dmpc_jax.finetune.report import write_page

    cfg = _replace(cfg, pretrained=pretrained, iterations=iterations)
    run_dir = Path(root) / (run or preset)
    run_finetune(
        cfg, run_dir, resume=resume, overwrite=overwrite, max_iterations=max_iterations,
        command="dmpc finetune " + " ".join(sys.argv[2:]),
    )  # fmt: skip
    if page != "" and dist.is_main():
        if (run or preset) == "cpu":
            write_page(run_dir, Path(page or "experiments/finetune"))
        else:
            finetune_curve(str(run_dir), page or f"experiments/finetune/{run or preset}")


def dataset_concat(out: str, sources: tuple[str, ...]) -> None:
    """Put datasets of equal episode layout side by side as one (DAgger's aggregate: the
    demonstrator's recoveries from each round's planner), e.g.
    ``dmpc dataset-concat --out data/recoveries_r12 --sources data/rec_r1 data/rec_r2``.

    Args:
        out: the new dataset directory (must not exist).
        sources: two or more dataset directories; steps per env a multiple of the shortest's
            (a longer source's envs are cut into pieces of that length).
    """
    from dmpc_jax.data.dataset import concatenate

    ds = concatenate(Path(out), [Path(s) for s in sources])
    print(f"{out}: {ds.n_envs} envs x {ds.n_steps} steps from {len(sources)} datasets")


def finetune_curve(run_dir: str = "checkpoints/rwr/cpu_paper", out: str | None = None) -> None:
    """Write a finetuning run's learning-curve page (success under the box, paper and strict
    rules against env steps, R_nn fit, ESS, kept fraction, falls, wall time; its numbers in
    results.json) from its metrics, and the run's model card; safe to run while the run trains.

    Args:
        run_dir: the finetuning run directory.
        out: the page's directory (default: experiments/finetune/<the run's name>).
    """
    from dmpc_jax.finetune.config import load_config
    from dmpc_jax.finetune.report import write_model_card
    from dmpc_jax.finetune.report_curve import curve_results, write_curve_page
    from dmpc_jax.report.logger import read_jsonl

    out = out or f"experiments/finetune/{Path(run_dir).name}"
    command = f"dmpc finetune-curve --run-dir {run_dir} --out {out}"
    write_curve_page(curve_results(Path(run_dir)), Path(out), command)
    log = read_jsonl(Path(run_dir) / "metrics.jsonl")
    write_model_card(Path(run_dir), load_config(Path(run_dir)), log, Path(out), resumable=True)


def dagger(
    cfg: DaggerConfig = dagger_preset("cpu"),
    preset: Literal["tiny", "cpu"] = "cpu",
    config: str | None = None,
    pretrained: str | None = None,
    run: str | None = None,
    root: str = "checkpoints/dagger",
    resume: bool = False,
    overwrite: bool = False,
    max_iterations: int | None = None,
    iterations: int | None = None,
) -> None:
    """Finetune a planner on the demonstrator's answers from the planner's own closed-loop states
    (DAgger with demonstrator branches, beyond the paper; dmpc_jax/finetune/dagger.py) into
    ROOT/RUN.

    Args:
        cfg: the run's settings: the preset's, each field overridable.
        preset: tiny (tests) or cpu (2 cores).
        config: a JSON file with a full DaggerConfig: the defaults instead of the preset's.
        pretrained: shorthand for --cfg.pretrained, the planner run to start from.
        run: run directory name under root (default: the preset name).
        root: parent directory of runs.
        resume: continue the run from its newest checkpoint (replay buffer included).
        overwrite: delete an existing run of that name first.
        max_iterations: stop after this many iterations in this invocation (continue with --resume).
        iterations: shorthand for --cfg.iterations (with --resume, extends a run).
    """
    from dmpc_jax.finetune.dagger import dagger as run_dagger

    cfg = _replace(cfg, pretrained=pretrained, iterations=iterations)
    run_dagger(
        cfg, Path(root) / (run or preset), resume=resume, overwrite=overwrite,
        max_iterations=max_iterations, command="dmpc dagger " + " ".join(sys.argv[2:]),
    )  # fmt: skip
