"""One ``dmpc`` command with a sub-command per stage (``dmpc --help`` lists them)."""

import json
import sys
from typing import Literal

import tyro

from dmpc_jax.bench.env_throughput import EnvBenchConfig
from dmpc_jax.bench.ppo_throughput import PPOBenchConfig
from dmpc_jax.bench.profile import ProfileConfig
from dmpc_jax.bench.sampler import BenchConfig
from dmpc_jax.data.collect import DatasetConfig
from dmpc_jax.deploy.faults import FaultConfig
from dmpc_jax.deploy.robot import DeployConfig
from dmpc_jax.deploy.sim2sim import Sim2SimConfig
from dmpc_jax.evaluate.model_quality import DiffusionEvalConfig
from dmpc_jax.evaluate.offline_fidelity import OfflineConfig
from dmpc_jax.evaluate.planner_eval import EvalConfig
from dmpc_jax.evaluate.policy_eval import PolicyEvalConfig
from dmpc_jax.evaluate.tasks import SUITE
from dmpc_jax.paths import DEFAULT_PLANNER
from dmpc_jax.planner.sampler import REALTIME_CANDIDATES, REALTIME_VARIANT


def demo(
    out_dir: str = "experiments/demo",
    task: str = "energy",
    seconds: float = 16.0,
    robots: int = 8,
    seed: int = 0,
    planner_run: str | None = None,
) -> None:
    """The main job: the shipped planner walks the Go2 at 1.0 m/s in MJX, switches to TASK
    halfway, prints the metrics and writes a video (see README).

    Args:
        planner_run: planner run directory (default: the shipped default planner).
    """
    from dmpc_jax.evaluate.demo import run_demo

    run_demo(out_dir=out_dir, planner_run=planner_run or DEFAULT_PLANNER, task=task,
             seconds=seconds, robots=robots, seed=seed)  # fmt: skip


def bench_env(cfg: EnvBenchConfig = EnvBenchConfig()) -> None:
    """Control steps/s of the MJX env vs native MuJoCo; writes experiments/env_throughput/."""
    from dmpc_jax.bench.env_throughput import run

    run(cfg)


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


def bench_ppo(cfg: PPOBenchConfig = PPOBenchConfig()) -> None:
    """PPO training throughput with the env batch on 1 device, 2 devices and 2 processes;
    writes experiments/demonstrator/throughput.md."""
    from dmpc_jax.bench.ppo_throughput import run

    run(cfg)


def eval_policy(cfg: PolicyEvalConfig = PolicyEvalConfig()) -> None:
    """Success rate, tracking error and energy of a PPO demonstrator at fixed speeds."""
    from dmpc_jax.evaluate.policy_eval import evaluate_policy

    evaluate_policy(cfg)


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
    from dmpc_jax.diffusion.train import PretrainConfig, pretrain_preset
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
        page: directory of the results page (README.md + learning curve); empty to skip it.
        distributed: join JAX's multi-process runtime (envs and batches split over every
            process's devices; started by ``dmpc launch`` or a cluster scheduler, see README).
    """
    import dataclasses
    from pathlib import Path

    from dmpc_jax import distributed as dist

    dist.initialize(distributed)

    from dmpc_jax.config import load_json
    from dmpc_jax.finetune.train import FinetuneConfig, finetune_preset, write_page
    from dmpc_jax.finetune.train import finetune as run_finetune

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


def eval_diffusion(cfg: DiffusionEvalConfig = DiffusionEvalConfig()) -> None:
    """First-action and one-step state errors of unguided plans on held-out windows."""
    from dmpc_jax.evaluate.model_quality import evaluate_planner

    print(evaluate_planner(cfg))


def eval(cfg: EvalConfig = EvalConfig()) -> None:  # noqa: A001
    """Diffusion-MPC in closed loop on a test-time task vs nominal/unguided planner and the
    demonstrator; writes experiments/tasks/<task>/ (``--cfg.task NAME``, ``--cfg.set k=v``)."""
    from dmpc_jax.evaluate.planner_eval import evaluate_task

    evaluate_task(cfg)


def diagnose_offline(cfg: OfflineConfig = OfflineConfig()) -> None:
    """The plan against the demonstrator on held-out states, row by row, and the plan's response
    to pitch / pitch-rate perturbations; writes experiments/diagnosis/offline/."""
    from dmpc_jax.evaluate.offline_fidelity import run_offline

    r = run_offline(cfg)
    print(json.dumps({k: r[k] for k in ("first_action_error_std", "row_error_std", "response")}))


def bench(cfg: BenchConfig = BenchConfig(), gpu: bool = False) -> None:
    """Sampler latency/throughput grid vs the PyTorch baseline; writes experiments/bench/.

    Args:
        cfg: the grid (CPU default).
        gpu: use the GPU grid (N up to 1024, more robots) instead of cfg.
    """
    from dmpc_jax.bench.sampler import gpu_preset, run

    run(gpu_preset() if gpu else cfg)


def bench_profile(cfg: ProfileConfig = ProfileConfig()) -> None:
    """Where one plan's time goes per XLA op class (jax.profiler trace); adds the section to
    experiments/bench/README.md."""
    from dmpc_jax.bench.profile import run

    run(cfg)


def eval_suite(cfg: EvalConfig = EvalConfig(), tasks: tuple[str, ...] = SUITE) -> None:
    """Every named task with shared compilations and baseline runs; writes experiments/tasks/."""
    from dmpc_jax.evaluate.planner_eval import evaluate_suite

    evaluate_suite(cfg, tasks)


def eval_sweep(
    cfg: EvalConfig = EvalConfig(task="walk_1.0", episodes=64, seed=1),
    variants: tuple[str, ...] = ("4/1", "11/4", "16/4", "20/4", "24/4"),
    demonstrator: bool = True,
    out: str = "experiments/mpc_sweep",
) -> None:
    """Closed-loop success of one planner across receding-horizon settings (chunk length E,
    margin D, warm start, candidates) on one task, same keys for every variant; writes ``out``.

    Args:
        cfg: the evaluation settings (task, planner, episodes, seed); execute/margin/warm_start/
            num_candidates are taken from each variant.
        variants: ``E/D[/warm_start[/N]]`` each, e.g. ``20/4`` or ``11/4/5`` or ``20/4/0/4``.
        demonstrator: add the PPO demonstrator on the same keys.
        out: output directory.
    """
    from pathlib import Path

    from dmpc_jax.evaluate.sweep import run_sweep

    run_sweep(cfg, variants, demonstrator=demonstrator, out=Path(out))


def export(
    run_dir: str = DEFAULT_PLANNER,
    out: str = "exported/cpu",
    num_candidates: int = REALTIME_CANDIDATES,
    method: Literal["ddpm", "ddim"] = "ddpm",
    ddim_steps: int = 5,
    sampler: str = REALTIME_VARIANT,
) -> None:
    """Serialize the plan step of a pretrained planner (jax.export, cpu + cuda) with meta.json.

    Args:
        run_dir: planner run directory (pretraining or finetuning).
        out: artifact directory (planner.jax, meta.json).
        num_candidates: N candidates per plan.
        method: sampler.
        ddim_steps: DDIM steps when method is ddim.
        sampler: a named sampling path replacing method/ddim_steps: ``ddpm``, ``ddim<S>`` or
            ``cache<R>`` (the last R of K steps from an early-step cache the artifact carries;
            ``SamplerConfig.with_variant``); empty: method/ddim_steps. Default: the real-time
            planner (``planner.sampler.REALTIME_VARIANT``, N = 1; experiments/realtime).
    """
    import json
    from pathlib import Path

    from dmpc_jax.deploy.export import export_planner
    from dmpc_jax.planner.load import load_planner
    from dmpc_jax.planner.sampler import SamplerConfig

    p = load_planner(run_dir)
    # analytic task terms guide the clean estimate, as in dmpc eval (EvalConfig.analytic_on_x0)
    scfg = SamplerConfig(
        num_candidates=num_candidates, method=method, ddim_steps=ddim_steps, analytic_on_x0=True
    )
    if sampler:
        scfg = scfg.with_variant(sampler, p.dcfg.num_steps)
    meta = export_planner(
        p.nets, p.params, p.dcfg, p.scaler, scfg, p.robot, Path(out), source=p.source
    )
    print(json.dumps({k: meta[k] for k in ("platforms", "artifact_bytes", "source_checkpoint")}))


def resolve_task(name_or_file: str):
    """A TaskSpec from a JSON file or a suite task name (``evaluate/tasks.py``); None for ""."""
    from pathlib import Path

    from dmpc_jax.config import load_json
    from dmpc_jax.evaluate.tasks import get_task
    from dmpc_jax.planner.task import TaskSpec

    if not name_or_file:
        return None
    if Path(name_or_file).is_file():
        return load_json(TaskSpec, name_or_file)
    return get_task(name_or_file).spec


def robot_task_specs(cfg) -> tuple:
    """The TaskSpecs of a sim2sim or deploy config's ``task`` and ``switch_to`` (None: the default
    task): () without either, (task,) without a switch, (task, switch_to) with one."""
    if cfg.switch_to:
        return resolve_task(cfg.task), resolve_task(cfg.switch_to)
    return (resolve_task(cfg.task),) if cfg.task else ()


def sim2sim(cfg: Sim2SimConfig = Sim2SimConfig()) -> None:
    """The deploy runner walks a Go2 simulated in native MuJoCo (its own process) over DDS on
    loopback; writes experiments/sim2sim/ (needs the robot extra)."""
    from dmpc_jax.deploy.sim2sim import run_sim2sim

    r = run_sim2sim(cfg, robot_task_specs(cfg))
    print(json.dumps({"successes": r["successes"], "repeats": r["repeats"]}))


def sim2sim_faults(cfg: FaultConfig = FaultConfig()) -> None:
    """Faults injected over real DDS while the runner walks the simulated Go2 (simulator stops,
    freezes, sends NaN; planner process killed); writes experiments/sim2sim/faults.md."""
    from dmpc_jax.deploy.faults import run_faults

    run_faults(cfg)


def deploy(cfg: DeployConfig = DeployConfig()) -> None:
    """Drive a real Go2 with the exported planner over unitree_sdk2py; a dry run unless LIVE=1
    is set (see dmpc_jax/deploy/robot.py before a live run)."""
    from dmpc_jax.deploy.robot import run_robot

    run_robot(cfg, robot_task_specs(cfg))


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


if __name__ == "__main__":
    main()
