"""``python -m ddrm_kit.train``: the same as ``ddrm train``."""

from ddrm_kit.cli.train import train_command

train_command()
