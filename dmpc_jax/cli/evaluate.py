"""``dmpc`` sub-commands of the evaluation and the demo: the demonstrator, the model, the planner in closed loop."""

import json
from pathlib import Path

from dmpc_jax.evaluate.model_quality import DiffusionEvalConfig
from dmpc_jax.evaluate.offline_fidelity import OfflineConfig
from dmpc_jax.evaluate.planner_eval import EvalConfig
from dmpc_jax.evaluate.policy_eval import PolicyEvalConfig
from dmpc_jax.paths import DEFAULT_PLANNER
from dmpc_jax.scenario.tasks import SUITE


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


def eval_policy(cfg: PolicyEvalConfig = PolicyEvalConfig()) -> None:
    """Success rate, tracking error and energy of a PPO demonstrator at fixed speeds."""
    from dmpc_jax.evaluate.policy_eval import evaluate_policy

    evaluate_policy(cfg)


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


def eval_suite(cfg: EvalConfig = EvalConfig(), tasks: tuple[str, ...] = SUITE) -> None:
    """Every named task with shared compilations and baseline runs; writes experiments/tasks/."""
    from dmpc_jax.evaluate.planner_eval import evaluate_suite

    evaluate_suite(cfg, tasks)


def eval_sweep(
    cfg: EvalConfig = EvalConfig(task="walk_1.0", episodes=64, seed=1),
    variants: tuple[str, ...] = ("4/1", "11/4", "16/4", "20/4", "24/4"),
    demonstrator: bool = True,
    out: str = "",
) -> None:
    """Closed-loop success of one planner across receding-horizon settings (chunk length E,
    margin D, warm start, candidates) on one task, same keys for every variant; writes ``out``.

    Args:
        cfg: the evaluation settings (task, planner, episodes, seed); execute/margin/warm_start/
            num_candidates are taken from each variant.
        variants: ``E/D[/warm_start[/N]]`` each, e.g. ``20/4`` or ``11/4/5`` or ``20/4/0/4``.
        demonstrator: add the PPO demonstrator on the same keys.
        out: output directory (or ``--cfg.out-dir``; default experiments/mpc_sweep).
    """
    from pathlib import Path

    from dmpc_jax.evaluate.sweep import run_sweep

    if out and cfg.out_dir and Path(out) != Path(cfg.out_dir):
        raise ValueError(
            f"eval-sweep: --out {out} and --cfg.out-dir {cfg.out_dir} disagree; give one"
        )
    run_sweep(cfg, variants, demonstrator=demonstrator,
              out=Path(out or cfg.out_dir or "experiments/mpc_sweep"))  # fmt: skip


def check_pages(root: str = "experiments") -> None:
    """Render every experiments page whose results.json a renderer knows again from that file and
    compare it with the committed page; exit 1 naming each page that differs (a number edited by
    hand, or a page its renderer left behind). Pages no renderer knows are counted, not checked.

    Args:
        root: the directory searched for results.json files.
    """
    import sys
    from collections import Counter

    from dmpc_jax.evaluate.report_pages import check_pages as check

    rows = check(Path(root))
    for r in rows:
        if r["status"] == "stale":
            print(
                f"STALE {r['page']} ({r['kind']} page): differs from its results.json\n{r['diff']}"
            )
    counts = Counter(r["status"] for r in rows)
    print("check-pages: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if counts["stale"]:
        sys.exit(1)
