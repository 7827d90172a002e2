"""Copy the latest EMA weights of a `ddrm train` run into the package's built-in prior folder.

    python benchmarks/export_builtin.py --run /work/runs/builtin [--dest ddrm_kit/builtin]
    python benchmarks/export_builtin.py [--run RUN] --high-noise /work/runs/v2 --from-t 600 [--dest ...]

``--run`` writes config.json + diffusion_pytorch_model.safetensors (float16) + scheduler_config.json
into the destination (README.md and ddrm_settings.json there are kept). ``--high-noise`` makes a
second run the high-noise expert (docs/design.md, Noise-level experts): it is exported to
``DEST/high_noise`` and ``DEST/experts.json`` names it with ``--from-t``; without ``--run`` the
destination's own UNet stays the low-noise expert. ``--run`` alone removes an earlier pair's
``experts.json`` and ``high_noise/``, and says so. Each run's step, training time and held-out
loss are printed for the model card.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import click

from ddrm_kit.atomic import write_text
from ddrm_kit.experts import EXPERTS_JSON
from ddrm_kit.train import CHECKPOINT, HOLDOUT_CSV, export_prior

PACKAGE_BUILTIN = Path(__file__).resolve().parents[1] / "ddrm_kit" / "builtin"
HIGH_NOISE = "high_noise"


def export_run(run: Path, dest: Path, what: str) -> None:
    out = export_prior(run, dest)
    weights = out / "diffusion_pytorch_model.safetensors"
    with open(run / HOLDOUT_CSV, newline="") as f:
        header, *rows = list(csv.reader(f))
    last = dict(zip(header, rows[-1]))
    # the fifth column is the EMA loss on the fixed crops; its name says whether they were held out
    click.echo(
        f"exported {what} {run} -> {out} ({weights.stat().st_size / 2**20:.1f} MiB): step {last['step']}, "
        f"{last['images_seen']} crops, {float(last['train_seconds']) / 3600:.2f} h of training, "
        f"{header[4]} {rows[-1][4]}"
    )
    if not (run / CHECKPOINT).exists():
        click.echo(f"warning: {run} has no checkpoint.pt; it cannot be resumed", err=True)


@click.command()
@click.option("--run", type=click.Path(file_okay=False, exists=True),
              help="The run to export as the prior (the low-noise expert with --high-noise).")
@click.option("--dest", default=str(PACKAGE_BUILTIN), show_default=True, type=click.Path(file_okay=False))
@click.option("--high-noise", type=click.Path(file_okay=False, exists=True),
              help="A second run: the high-noise expert, for timesteps from --from-t on.")
@click.option("--from-t", type=click.IntRange(min=1), help="The high-noise expert's first timestep.")
def main(run: str | None, dest: str, high_noise: str | None, from_t: int | None) -> None:
    """Export the run's EMA UNet as the built-in prior (with a high-noise expert) and report where the runs stand."""
    if (high_noise is None) != (from_t is None):
        raise click.UsageError("--high-noise and --from-t go together")
    if run is None and high_noise is None:
        raise click.UsageError("give --run, --high-noise with --from-t, or both")
    dest_dir = Path(dest)
    if run is not None:
        export_run(Path(run), dest_dir, "the prior" if high_noise is None else "the low-noise expert")
    elif not (dest_dir / "config.json").is_file():
        raise click.UsageError(f"{dest_dir} holds no prior to keep as the low-noise expert: give --run")
    if high_noise is None:
        if (dest_dir / EXPERTS_JSON).exists() or (dest_dir / HIGH_NOISE).exists():
            (dest_dir / EXPERTS_JSON).unlink(missing_ok=True)
            shutil.rmtree(dest_dir / HIGH_NOISE, ignore_errors=True)
            click.echo(f"removed the earlier high-noise expert ({EXPERTS_JSON}, {HIGH_NOISE}/) from {dest_dir}")
        return
    export_run(Path(high_noise), dest_dir / HIGH_NOISE, "the high-noise expert")
    write_text(dest_dir / EXPERTS_JSON, json.dumps({"high_noise": HIGH_NOISE, "from_t": from_t}, indent=1) + "\n")
    click.echo(f"wrote {dest_dir / EXPERTS_JSON}: the high-noise expert from t = {from_t}")


if __name__ == "__main__":
    main()
