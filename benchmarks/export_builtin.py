"""Copy the latest EMA weights of a `ddrm train` run into the package's built-in prior folder.

    python benchmarks/export_builtin.py [--run /work/runs/builtin] [--dest ddrm_kit/builtin]

Writes config.json + diffusion_pytorch_model.safetensors (float16) + scheduler_config.json into
the destination (README.md there is kept) and prints the run's step, training time and held-out loss,
which go into the model card.
"""

from __future__ import annotations

import csv
from pathlib import Path

import click

from ddrm_kit.train import CHECKPOINT, HOLDOUT_CSV, export_prior

PACKAGE_BUILTIN = Path(__file__).resolve().parents[1] / "ddrm_kit" / "builtin"


@click.command()
@click.option("--run", default="/work/runs/builtin", show_default=True, type=click.Path(file_okay=False, exists=True))
@click.option("--dest", default=str(PACKAGE_BUILTIN), show_default=True, type=click.Path(file_okay=False))
def main(run: str, dest: str) -> None:
    """Export the run's EMA UNet as the built-in prior and report where the run stands."""
    out = export_prior(run, dest)
    weights = out / "diffusion_pytorch_model.safetensors"
    with open(Path(run) / HOLDOUT_CSV, newline="") as f:
        header, *rows = list(csv.reader(f))
    last = dict(zip(header, rows[-1]))
    # the fifth column is the EMA loss on the fixed crops; its name says whether they were held out
    click.echo(
        f"exported {run} -> {out} ({weights.stat().st_size / 2**20:.1f} MiB): step {last['step']}, "
        f"{last['images_seen']} crops, {float(last['train_seconds']) / 3600:.2f} h of training, "
        f"{header[4]} {rows[-1][4]}"
    )
    if not (Path(run) / CHECKPOINT).exists():
        click.echo("warning: the run has no checkpoint.pt; it cannot be resumed", err=True)


if __name__ == "__main__":
    main()
