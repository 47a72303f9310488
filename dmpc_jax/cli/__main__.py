"""``python -m dmpc_jax.cli``: the ``dmpc`` command."""

from dmpc_jax.cli import main

main()
