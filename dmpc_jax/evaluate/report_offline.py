"""The page of ``dmpc diagnose-offline``: row errors, bias against spread, the response to a
perturbed state, and the row-error plot."""

from __future__ import annotations

import json
from pathlib import Path


def write_page(result: dict, out: Path) -> None:
    """``results.json``, README.md and ``row_error.png`` in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    e, p90 = result["row_error_std"], result["row_error_std_p90"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(len(e)), e, "o-", label="mean")
    ax.plot(range(len(p90)), p90, ":", label="p90")
    ax.set_xlabel("plan row h")
    ax.set_ylabel("|a_h - pi(s_h)| / action std (RMS over joints)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "row_error.png", dpi=110)
    plt.close(fig)
    c = result["config"]
    source = (
        "demonstrator rollouts"
        if c.get("states_from", "demonstrator") == "demonstrator"
        else "closed-loop rollouts of the planner itself (robots still standing)"
    )
    lines = [
        "# Offline fidelity: the plan against the demonstrator, row by row",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{result['states']} held-out states from fresh {source} of the evaluation env "
        f"(command {tuple(c['command'])}, pushes, randomisation, noise and latency on, taken "
        f"after {c['warmup_s']:g} s), {c['samples']} plans each (planner `{c['planner_run']}`, "
        f"N = 1, learned-reward guidance {c['guidance']:g}). Errors in units of the "
        "demonstrator action's per-joint std on these states, RMS over the 12 joints.",
        "",
        "| row h | " + " | ".join(str(i) for i in range(len(e))) + " |",
        "|---|" + "---:|" * len(e),
        "| mean | " + " | ".join(f"{x:.2f}" for x in e) + " |",
        "| p90 | " + " | ".join(f"{x:.2f}" for x in p90) + " |",
        "",
        "![row error](row_error.png)",
        "",
        f"First action, bias against spread: the mean of a state's {c['samples']} plans is "
        f"{result['first_action_error_of_sample_mean_std']:.2f} std from the "
        "demonstrator's action; the plans of one state spread by "
        f"{result['first_action_sample_spread_std']:.2f} std (RMS over joints).",
        "",
        f"Response of the first action to a perturbation of the measured state (pitch "
        f"{c['pitch_delta']:g} rad nose down; pitch rate {c['pitch_rate_delta']:g} rad/s), same "
        "keys: gain = projection of the planner's change on the demonstrator's (1: reacts as "
        "the demonstrator, 0: ignores it).",
        "",
        "| perturbation | gain | cosine | demonstrator change (std) | planner change (std) |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, r in result["response"].items():
        lines.append(
            f"| {k} | {r['gain']:.2f} | {r['cosine']:.2f} | {r['demonstrator_change_std']:.3f} | "
            f"{r['planner_change_std']:.3f} |"
        )
    lines.append("")
    (out / "README.md").write_text("\n".join(lines))
