"""The benchmark pages: env throughput (``dmpc bench-env``), PPO throughput by layout
(``dmpc bench-ppo``) and sampler latency (``dmpc bench``, ``dmpc bench-profile``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dmpc_jax.paths import DEFAULT_DEMONSTRATOR
from dmpc_jax.report.logger import read_jsonl


def write_env_page(cfg, result: dict) -> None:
    """experiments/env_throughput: results.json and README.md (``dmpc bench-env``)."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Env throughput: MJX Go2 joystick env vs native MuJoCo",
        "",
        "Command: `make bench-env` (`dmpc bench-env`). Machine: "
        f"{result['machine']}; JAX {result['jax']} on {', '.join(result['jax_devices'])}; "
        f"MuJoCo {result['mujoco']}.",
        "",
        f"Control steps/s (1 control step = {result['n_substeps']} physics substeps, "
        f"{result['contacts']}-only contacts). MJX: the full env step (physics, observation, rewards, "
        "randomised model, pushes, fresh auto-reset) with random actions, one jitted scan of "
        f"{cfg.n_steps} steps, median of {cfg.repeats} calls after a warm-up call; compile time apart. "
        f"Native: `mujoco.rollout` with {cfg.native_threads} threads stepping the same MJCF "
        "(physics only, no observation or reward code).",
        "",
        "| batch | MJX steps/s | MJX compile (s) | native steps/s | MJX / native |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['batch']} | {r['mjx_steps_per_s']:,.0f} | {r['mjx_compile_s']:.1f} | "
            f"{r['native_steps_per_s']:,.0f} | {r['mjx_over_native']:.2f} |"
        )
    lines += [
        "",
        "## The batch split over devices and processes",
        "",
        "The same MJX measurement with the env batch split over a 1-D mesh "
        "(`dmpc_jax.distributed`): `PxD` is P processes (jax.distributed over localhost, gloo) "
        "x D CPU devices each (`--xla_force_host_platform_device_count`), all on this machine's "
        f"{os.cpu_count()} cores; steps/s of the whole group, fresh processes per row "
        f"(compile included in neither column), hung = no result in {cfg.layout_timeout_s:.0f} s.",
        "",
        "| layout | batch | per device | MJX steps/s | vs 1x1 at this batch | compile (s) | status |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    base = {
        r["batch"]: r["mjx_steps_per_s"]
        for r in result.get("layouts", [])
        if r["layout"] == "1x1" and r["status"] == "ok"
    }
    for r in result.get("layouts", []):
        n = r["processes"] * r["devices_per_process"]
        ok = r["status"] == "ok"
        ratio = (
            f"{r['mjx_steps_per_s'] / base[r['batch']]:.2f}" if ok and r["batch"] in base else "-"
        )
        lines.append(
            f"| {r['layout']} | {r['batch']} | {r['batch'] // n} | "
            + (
                f"{r['mjx_steps_per_s']:,.0f} | {ratio} | {r['mjx_compile_s']:.1f}"
                if ok
                else "- | - | -"
            )
            + f" | {r['status']} |"
        )
    lines += ["", "Numbers: `results.json` beside this page.", ""]
    (out / "README.md").write_text("\n".join(lines))


def write_ppo_page(cfg, result: dict) -> None:
    """The ``dmpc bench-ppo`` page ``cfg.out`` and its JSON beside it."""
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    base = next((r for r in result["rows"] if r["layout"] == "1x1"), None)
    lines = [
        "# PPO demonstrator: training throughput by device/process layout",
        "",
        f"Command: `make bench-ppo` (`dmpc bench-ppo --cfg.preset {result['preset']}`). Machine: "
        f"{result['machine']}. Each layout trains the `{result['preset']}` preset for "
        f"{cfg.epochs} epochs in fresh processes: `PxD` is P processes (jax.distributed over "
        "localhost, gloo collectives; `dmpc launch`) x D CPU devices each; the env batch is "
        "split over the P x D devices, the training state replicated. Env steps/s: median of "
        "the epochs after the first (which compiles). Epoch-1 loss beside 1x1's: the same "
        "algorithm, keys and batch; the float results differ in their last bits with the "
        "per-device batch (vectorisation, order of the all-reduces) and the contact-rich "
        "rollouts amplify that over an epoch's env steps (on the `tiny` preset, one short "
        "training step, 1x2 and 2x1 agree with 1x1 to 1e-6 and with each other bit for bit).",
        "",
        "| layout | env steps/s | vs 1x1 | first epoch (s, compile incl.) | epoch-1 loss | vs 1x1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        ratio = f"{r['steps_per_s'] / base['steps_per_s']:.2f}" if base else "-"
        dl = f"{r['loss_epoch1'] - base['loss_epoch1']:+.1e}" if base else "-"
        lines.append(
            f"| {r['layout']} | {r['steps_per_s']:,.0f} | {ratio} | {r['first_epoch_s']:.0f} | "
            f"{r['loss_epoch1']:.6f} | {dl} |"
        )
    lines += ["", f"Numbers: `{out.with_suffix('.json').name}` beside this page.", ""]
    out.write_text("\n".join(lines))


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for res in results:
        h0 = res["config"]["horizons"][0]
        for variant in res["config"]["variants"]:
            rows = [
                r
                for r in res["rows"]
                if r["variant"] == variant
                and r["H"] == h0
                and r["robots"] == 1
                and r.get("model", res["model"]) == res["model"]
            ]
            ns = [r["N"] for r in rows]
            ax.plot(
                ns, [r["p50_ms"] for r in rows], "o-", label=f"JAX {variant} ({res['backend']})"
            )
            if rows and "torch_p50_ms" in rows[0]:
                ax.plot(
                    ns,
                    [r["torch_p50_ms"] for r in rows],
                    "x--",
                    label=f"PyTorch {variant} ({res['backend']})",
                )
    ax.axhline(80, color="r", lw=0.8, ls=":", label="80 ms budget")
    ax.axhline(20, color="gray", lw=0.8, ls=":", label="20 ms (50 Hz)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("N candidates")
    ax.set_ylabel("p50 latency of one plan (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _compiled_cells(r: dict) -> str:
    if "torch_compile_p50_ms" in r:
        return (f"{r['torch_compile_p50_ms']:.1f} (compile {r['torch_compile_s']:.0f} s) | "
                f"**{r['speedup_vs_torch_compile']:.2f}x**")  # fmt: skip
    if "torch_compile_error" in r:
        return f"did not run: {r['torch_compile_error']} | -"
    return "- | -"


def write_sampler_page(out: Path) -> None:
    """README.md from every results_<backend>.json in ``out`` plus the env/PPO numbers."""
    results = [json.loads(p.read_text()) for p in sorted(out.glob("results_*.json"))]
    _plot(results, out / "latency_vs_n.png")
    lines = [
        "# Sampler throughput and latency",
        "",
        *(
            [
                "Against the authors' own sampler (their code, not our reimplementation): "
                "[`authors/`](authors/README.md).",
                "",
            ]
            if (out / "authors" / "README.md").exists()
            else []
        ),  # fmt: skip
        "Command: `make bench` (`dmpc bench`; on a GPU machine `dmpc bench --gpu`). Paper-size U-Net "
        "(random weights: speed does not depend on them), guided by R_nn at every step, one robot "
        "per call unless stated. Latency: median (p50) and p99 over repeated calls after two "
        "warm-up calls; compile time apart. GFLOP/s counts every matmul of the compiled function "
        "(analytically, from its jaxpr) over the p50 time; the peak is a 2048^3 fp32 matmul timed "
        "in the same run. PyTorch: the same networks with the same weights "
        "(`tests/bench/test_bench.py` checks the outputs agree), sampled eagerly step by step from Python "
        "with autograd guidance, as the authors' code runs, with eager best practice (weights "
        "frozen so autograd records the sample only, `torch.inference_mode` outside the guidance "
        "gradient, PyTorch's fused mish, intra-op threads as reported); same process, same "
        "machine. torch.compile: the same loop with `torch.compile`d networks (compile time "
        "apart). JAX also evaluates the analytic reward terms (weights 0) that the baseline does "
        "not have. `(1 CPU)`: the configuration in a child process pinned to one core, as the "
        "deploy runner runs its planner.",
        "",
    ]
    for res in results:
        theirs = [r for r in res["rows"] if "authors_p50_ms" in r]
        lines += [
            f"## {res['device']} ({res['backend']}; {res['machine']}; JAX {res['jax']}"
            + (
                f", PyTorch {res['torch']} with {res['torch_threads']} threads"
                if res["torch"]
                else ", no PyTorch"
            )
            + ")",
            "",
            f"U-Net {res['unet_params'] / 1e6:.2f} M parameters, R_nn {res['value_params'] / 1e6:.2f} M; "
            f"matmul peak {res['matmul_peak_gflop_per_s']:.0f} GFLOP/s"
            + (
                f", memory read bandwidth {res['memory_bandwidth_gb_per_s']:.1f} GB/s (a jitted "
                "sum over 512 MB). Floors: compute = matmul FLOPs / peak; weights = fp32 weight "
                "bytes read per plan (U-Net per step, value net twice per step and once to rank) "
                "/ bandwidth; x floor = p50 / the higher of the two."
                if "memory_bandwidth_gb_per_s" in res
                else "."
            ),
            "",
        ]
        if theirs:
            lines += _authors_lines(res, theirs)
        lines += [
            "| model | variant | N | H | robots | steps | compile (s) | p50 (ms) | p99 (ms) | plans/s | traj/s | GFLOP/s (% peak) | floor: compute / weights (ms) | x floor | reimplementation (PyTorch) p50 (ms) | JAX speed-up | torch.compile p50 (ms) | JAX speed-up |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in res["rows"]:
            tp = f"{r['torch_p50_ms']:.1f}" if "torch_p50_ms" in r else "-"
            sp = f"**{r['speedup_vs_torch']:.2f}x**" if "speedup_vs_torch" in r else "-"
            fl, xf = "-", "-"
            if "floor_memory_ms" in r:
                fl = f"{r['floor_compute_ms']:.1f} / {r['floor_memory_ms']:.1f}"
                xf = f"{r['over_floor']:.1f}x"
            pin = " (1 CPU)" if "pinned_cpu" in r else ""
            lines.append(
                f"| {r.get('model', res['model'])}{pin} | {r['variant']} | {r['N']} | {r['H']} | "
                f"{r['robots']} | {r['steps']} | "
                f"{r['compile_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{r['plans_per_s']:.1f} | {r['trajectories_per_s']:.0f} | "
                f"{r['gflop_per_s']:.1f} ({100 * r['gflop_per_s_over_peak']:.0f}%) | {fl} | {xf} | "
                f"{tp} | {sp} | {_compiled_cells(r)} |"
            )
        rt = [
            r for r in res["rows"]
            if r["N"] == 16 and r["H"] == 24 and r["robots"] == 1
            and r.get("model", res["model"]) == res["model"]
        ]  # fmt: skip
        if rt:
            lines += [
                "",
                "Real-time configuration (N = 16, H = 24, paper U-Net) vs the 80 ms planning budget (METHOD §5):",
                "",
            ]
            for r in rt:
                verdict = "within" if r["p50_ms"] <= 80 else "over"
                lines.append(
                    f"- {r['variant']}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms: {verdict} the budget."
                )
        lines.append("")
    lines += profile_lines(out)
    lines += _other_tables()
    lines += [
        "![latency vs N](latency_vs_n.png)",
        "",
        "Numbers: `results_<backend>.json` beside this page.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def _authors_lines(res: dict, rows: list[dict]) -> list[str]:
    """The headline: our sampler against the authors' own, measured in the same run."""
    a = res["authors"]
    lines = [
        f"### Against the authors' own sampler (their release at {a['commit']}, "
        "`make bench AUTHORS=<checkout>`)",
        "",
        "Their modules imported unchanged and built as their play path builds them (paper "
        "U-Net dim 64, R_nn dim 32 as guide and candidate scorer, the BoxConstraint chain, "
        "DDPM-10, guidance scale 1), one robot per call, timed in the same process right after "
        "ours at each N (same warm-up and repeats). Guiding and ranking with R_nn is this "
        "benchmark's choice, the same for both samplers: the play config of their release "
        "(`go2_diffuser_config.py`, `reward_type` and `candidate_type`) guides and ranks with "
        "an analytic reward (`LegPosExcursionRew`), a test-time task like ours, and R_nn is "
        "what the method's finetuning rollouts guide with (METHOD §6). Stand-ins needed without "
        "Isaac Gym or a GPU:",
        "",
        *[f"- {x}" for x in a["stand_ins"]],
        "",
        "| N | authors' code p50 (ms) | p99 (ms) | ours (JAX) p50 (ms) | **speed-up vs the authors** "
        "| reimplementation (PyTorch) p50 (ms) | reimplementation / authors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if res.get("command"):
        lines[2:2] = [f"Command of this run: `{res['command']}`.", ""]
    for r in rows:
        tp = f"{r['torch_p50_ms']:.1f}" if "torch_p50_ms" in r else "-"
        to = f"{r['torch_over_authors']:.2f}x" if "torch_over_authors" in r else "-"
        lines.append(
            f"| {r['N']} | {r['authors_p50_ms']:.1f} | {r['authors_p99_ms']:.1f} | "
            f"{r['p50_ms']:.1f} | **{r['speedup_vs_authors']:.2f}x** | {tp} | {to} |"
        )
    return lines + [
        "",
        "The reimplementation below (`bench/torch_ref.py`) is the baseline that needs no "
        "checkout: the same networks as ours with our weights, eager PyTorch. It does the "
        "authors' work per plan (per step one U-Net forward, one R_nn forward and its input "
        "gradient; ranking only for N > 1) without their einops rearranges and their "
        "constraint chain. Until 2026-12-06 it loaded its conv weights with numpy's transposed "
        "strides, so every conv call copied its weight into torch's layout (about 0.9 GB per "
        "DDPM-10 plan of the paper U-Net), and it ran 2-3.5x slower than the authors' code; "
        "with contiguous weights (`tests/bench/test_bench.py` checks them) the gap is closed.",
        "",
    ]


def _other_tables() -> list[str]:
    """Env and PPO throughput from the other stages' own measurements (not re-run here)."""
    lines = []
    env = Path("experiments/env_throughput/results.json")
    if env.exists():
        e = json.loads(env.read_text())
        lines += [
            "## Env steps/s (from `make bench-env`, experiments/env_throughput/)",
            "",
            "| batch | MJX steps/s | native MuJoCo steps/s | MJX / native |",
            "|---:|---:|---:|---:|",
        ]
        for r in e["rows"]:
            lines.append(
                f"| {r['batch']} | {r['mjx_steps_per_s']:,.0f} | {r['native_steps_per_s']:,.0f} | {r['mjx_over_native']:.2f} |"
            )
        lines.append("")
    ppo = Path(DEFAULT_DEMONSTRATOR) / "metrics.jsonl"
    if ppo.exists():
        log = read_jsonl(ppo)
        sps = np.array([m["time/steps_per_s"] for m in log[1:]])
        lines += [
            "## PPO training env steps/s (from the shipped cpu demonstrator's metrics.jsonl)",
            "",
            f"Median {np.median(sps):,.0f} env steps/s over {len(sps)} epochs (min {sps.min():,.0f}, "
            f"max {sps.max():,.0f}), {log[-1]['env_steps'] / 1e6:.1f} M steps in "
            f"{log[-1]['time/wall_s'] / 3600:.2f} h on 2 CPU cores (first epoch, with compile, left out).",
            "",
        ]
    return lines


def profile_lines(out: Path) -> list[str]:
    """The bench page's profile section from profile_<backend>.json files in ``out``."""
    lines = []
    for p in sorted(out.glob("profile_*.json")):
        res = json.loads(p.read_text())
        classes = sorted({c for r in res["rows"] for c in r["classes"]})
        lines += [
            f"## Where the time goes ({res['backend']}, `dmpc bench-profile`)",
            "",
            "One plan (guided, H = 24, analytic terms on x0_hat), traced with `jax.profiler`: "
            "the time XLA records per op, by class, per plan. Data movement: copies, "
            "concatenations, pads and slices (mostly the im2col of the temporal convolutions).",
            "",
            "| model | sampler | N | wall (ms) | traced op time (ms) | "
            + " | ".join(f"{c}: ms (share, ops)" for c in classes)
            + " |",
            "|---|---|---:|---:|---:|" + "---:|" * len(classes),
        ]
        for r in res["rows"]:
            cells = []
            for c in classes:
                v = r["classes"].get(c)
                cells.append(f"{v['ms']:.1f} ({100 * v['share']:.0f}%, {v['ops']})" if v else "-")
            lines.append(
                f"| {r['model']} | {r['variant']} | {r['N']} | {r['wall_ms']:.1f} | "
                f"{r['op_ms_per_plan']:.1f} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    return lines
