"""The dmpc command line: one sub-command per stage, unknown flags rejected."""

import pytest

from dmpc_jax.cli import SUBCOMMANDS, main


def test_subcommands_listed():
    assert {"demo", "bench-env", "demonstrator", "eval-policy", "dataset", "pretrain"} <= set(
        SUBCOMMANDS
    )


def test_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench-env", "--cfg.batchez", "4"])
    assert e.value.code != 0


def test_unknown_preset_is_rejected():
    with pytest.raises(SystemExit) as e:
        main(["demonstrator", "--preset", "huge"])
    assert e.value.code != 0
