"""``dmpc`` sub-commands of the robot path: export, sim2sim, its faults, deploy, and test-time tasks by name or file."""

import json
from typing import Literal

from dmpc_jax.deploy.faults import FaultConfig
from dmpc_jax.deploy.robot import DeployConfig
from dmpc_jax.deploy.sim2sim import Sim2SimConfig
from dmpc_jax.paths import DEFAULT_DEMONSTRATOR, DEFAULT_PLANNER
from dmpc_jax.planner.sampler import REALTIME_CANDIDATES, REALTIME_VARIANT


def export_demonstrator(
    run_dir: str = DEFAULT_DEMONSTRATOR, out: str = "exported/demonstrator"
) -> None:
    """Serialize the PPO demonstrator's deterministic policy (observation -> action, jax.export,
    cpu + cuda) with meta.json: the per-step baseline the runner drives with the same safety
    layer as the planner (``Runner(policy=ExportedPolicy(out))``).

    Args:
        run_dir: demonstrator run directory.
        out: artifact directory (policy.jax, meta.json).
    """
    import json
    from pathlib import Path

    from dmpc_jax.deploy.export_policy import export_demonstrator as export_policy

    meta = export_policy(Path(run_dir), Path(out))
    print(json.dumps({k: meta[k] for k in ("artifact_bytes", "kp", "kd", "action_scale")}))


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
    """A TaskSpec from a JSON file or a suite task name (``scenario/tasks.py``); None for ""."""
    from pathlib import Path

    from dmpc_jax.config import load_json
    from dmpc_jax.planner.task import TaskSpec
    from dmpc_jax.scenario.tasks import get_task

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
