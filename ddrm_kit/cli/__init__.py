"""The ``ddrm`` command: one thin module per subcommand, the shared options, and the error wrapper.

torch, diffusers and the operators are imported inside the commands, so that ``ddrm --help`` and
``ddrm ops`` answer quickly.
"""

from __future__ import annotations

import click

from .errors import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ddrm-kit")
def main() -> None:
    """DDRM image restoration with diffusers priors (Kawar et al. 2022; JPEG: Kawar et al. 2022b).

    Images are read as PNG/JPEG/BMP/TIFF and written as PNG. Noise levels (--sigma-y) are in
    [0, 1] pixel units. Run `ddrm ops` for the list of degradation operators.
    """


def _add_commands() -> None:
    from .bench import bench_command
    from .convert import convert_command
    from .degrade import degrade_command
    from .ops import ops_command
    from .sample import sample_command
    from .solve import solve_command
    from .train import train_command

    for command in (solve_command, degrade_command, ops_command, sample_command, bench_command, train_command,
                    convert_command):
        main.add_command(command)


_add_commands()

__all__ = ["main"]
