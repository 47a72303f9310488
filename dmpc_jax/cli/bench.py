"""``dmpc`` sub-commands of the benchmarks: env, PPO and sampler throughput, the sampler's profile."""

from dmpc_jax.bench.env_throughput import EnvBenchConfig
from dmpc_jax.bench.ppo_throughput import PPOBenchConfig
from dmpc_jax.bench.profile import ProfileConfig
from dmpc_jax.bench.sampler import BenchConfig


def bench_env(cfg: EnvBenchConfig = EnvBenchConfig()) -> None:
    """Control steps/s of the MJX env vs native MuJoCo; writes experiments/env_throughput/."""
    from dmpc_jax.bench.env_throughput import run

    run(cfg)


def bench_ppo(cfg: PPOBenchConfig = PPOBenchConfig()) -> None:
    """PPO training throughput with the env batch on 1 device, 2 devices and 2 processes;
    writes experiments/demonstrator/throughput.md."""
    from dmpc_jax.bench.ppo_throughput import run

    run(cfg)


def bench(cfg: BenchConfig = BenchConfig(), gpu: bool = False) -> None:
    """Sampler latency/throughput grid vs the PyTorch baseline and, with --cfg.authors <checkout>,
    the authors' own sampler; writes experiments/bench/.

    Args:
        cfg: the grid (CPU default).
        gpu: use the GPU grid (N up to 1024, more robots) instead of cfg.
    """
    import dataclasses

    from dmpc_jax.bench.authors import AuthorsCheckoutError
    from dmpc_jax.bench.sampler import gpu_preset, run

    try:
        run(dataclasses.replace(gpu_preset(), authors=cfg.authors) if gpu else cfg)
    except AuthorsCheckoutError as e:  # AUTHORS= names no checkout of their release
        raise SystemExit(f"dmpc bench: {e}") from None


def bench_profile(cfg: ProfileConfig = ProfileConfig()) -> None:
    """Where one plan's time goes per XLA op class (jax.profiler trace); adds the section to
    the page experiments/bench/."""
    from dmpc_jax.bench.profile import run

    run(cfg)
