"""``ddrm ops``: the operator catalogue, read from the registry's metadata (no torch import)."""

from __future__ import annotations

import click

from .errors import Command
from .solve import JPEG_FILE


@click.command("ops", cls=Command)
def ops_command() -> None:
    """List the operators: name, what `ddrm solve` takes as INPUT, parameters (-p KEY=VALUE)."""
    import operators  # the registry and its catalogue: the operator modules (and torch) load only when built

    rows = [(s.display, s.input, s.description, "; ".join(p.describe() for p in s.params)) for s in operators.specs()]
    rows.append((JPEG_FILE, "a .jpg file", "JPEG artifact removal with the file's own quantisation tables", ""))
    rows.sort(key=lambda r: r[0])
    w0 = max(len("name"), *(len(r[0]) for r in rows))
    w1 = max(len("input"), *(len(r[1]) for r in rows))
    click.echo(f"{'name':<{w0}}  {'input':<{w1}}  description")
    for name, inp, desc, params in rows:
        click.echo(f"{name:<{w0}}  {inp:<{w1}}  {desc}")
        if params:
            click.echo(f"{'':<{w0}}  {'':<{w1}}    params: {params}")
    click.echo("\nParameters are passed as -p KEY=VALUE (e.g. -p sigma=3.0); --mask and --kernel read files.")
    click.echo("--sigma-y is in [0, 1] pixel units (doubled internally for [-1, 1] tensors); `ddrm solve` raises it to "
               "the rounding noise of the file it reads (8 bits: 0.00113).")
