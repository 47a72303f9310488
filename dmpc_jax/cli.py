"""One ``dmpc`` command with a sub-command per stage (``dmpc --help`` lists them)."""

import sys

import tyro

from dmpc_jax.bench.env_throughput import EnvBenchConfig


def demo(out_dir: str = "experiments/demo", seconds: float = 8.0, seed: int = 0) -> None:
    """The main job: simulate the Go2 in MJX and write a video (see README)."""
    from dmpc_jax.evaluate.demo import run_demo

    run_demo(out_dir=out_dir, seconds=seconds, seed=seed)


def bench_env(cfg: EnvBenchConfig = EnvBenchConfig()) -> None:
    """Control steps/s of the MJX env vs native MuJoCo; writes experiments/env_throughput/."""
    from dmpc_jax.bench.env_throughput import run

    run(cfg)


SUBCOMMANDS = {"demo": demo, "bench-env": bench_env}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    tyro.extras.subcommand_cli_from_dict(SUBCOMMANDS, args=args)


if __name__ == "__main__":
    main()
