"""``python -m ddrm_kit.cli``: the ``ddrm`` command."""

from . import main

main()
