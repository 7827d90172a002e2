"""Train a larger prior on a lent GPU and bring its weights back in pieces the device tool returns.

    python benchmarks/gpu_train_prior.py --prepare                 # here: training photos -> .gpu_data/ (git-ignored)
    python benchmarks/gpu_train_prior.py --dry-run --out DIR       # here: the whole path on the CPU, tiny, seconds

There, after the GPU suite and in the same device run (carry .whl and .gpu_data; the suite's files
packed into one, so that with the prior's seven there are eight, what the device tool brings back):

    python3 benchmarks/gpu_suite.py --budget-s 420 --out /tmp/suite; tar czf $OUT/suite.tgz -C /tmp/suite .;
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site:. python3 benchmarks/gpu_train_prior.py --minutes 3 --out $OUT/prior

The built-in prior's data and recipe (BSDS500 train + test with the same 16 photos held out, 64x64
crops, DDPM linear schedule, v-prediction, EMA 0.999) on a wider and deeper UNet with attention at
its lowest level: channels 64,128,192,256, two ResNet layers per block, 21.3 M parameters (the
built-in prior has 4.06 M), batch 128 at lr 2e-4 (DDPM's values for a network of this size), bf16
autocast. The EMA weights come back as a flat prior folder: float16 safetensors shards of at most
16 MB (three) with diffusers' index, config.json, scheduler_config.json and holdout.csv, which
`ddrm solve --model DIR` and `load_prior(DIR)` load as they are. The run folder stays on the GPU
machine (a resume there needs the same lease).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from ddrm_kit.train import HOLDOUT_CSV, export_prior, train

REPO = Path(__file__).resolve().parents[1]

DATA = REPO / ".gpu_data"
SOURCES = {"train": REPO.parent / "shared" / "data" / "BSDS500" / "train",
           "test": REPO.parent / "shared" / "data" / "BSDS500" / "test"}
RECIPE = {"size": 64, "channels": (64, 128, 192, 256), "layers_per_block": 2, "attention_levels": 1,
          "batch": 128, "lr": 2e-4, "ema": 0.999, "seed": 0, "prediction": "v_prediction"}
# the same path on the CPU in seconds: a tiny UNet, a few steps, shards small enough to be several
DRY = {**RECIPE, "size": 16, "channels": (8, 16), "layers_per_block": 1, "batch": 4}
SHARD = "16MB"  # 16e6 bytes, under the device tool's 16 MiB per file
DRY_SHARD = "20KB"
RETURNED = (7, 16 * 2**20)  # files, bytes per file: what the device tool brings back beside suite.tgz


def prepare() -> None:
    """Copy the training folders into .gpu_data/, which a device run carries."""
    for name, src in SOURCES.items():
        if not src.is_dir():
            raise click.ClickException(f"{src} is missing: the training photos are not on this machine")
        shutil.copytree(src, DATA / name, dirs_exist_ok=True)
    size = sum(f.stat().st_size for f in DATA.rglob("*") if f.is_file())
    click.echo(f"{DATA}: {size / 2**20:.1f} MiB; carry it with .whl (run(carry=['.whl', '.gpu_data']))")


@click.command()
@click.option("--prepare", "prepare_only", is_flag=True, help="Here: copy the training photos into .gpu_data/ and stop.")
@click.option("--data", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="Training folders (default: .gpu_data/train and .gpu_data/test).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder of the exported prior (on the GPU machine: under $OUT).")
@click.option("--run", "run_dir", default="/tmp/gpu_prior_run", show_default=True, type=click.Path(file_okay=False),
              help="Run folder (checkpoints; not brought back).")
@click.option("--minutes", default=4.0, show_default=True, type=click.FloatRange(min=0), help="Training time.")
@click.option("--loss-weighting", default="min_snr", show_default=True, type=click.Choice(["uniform", "min_snr"]))
@click.option("--dry-run", is_flag=True, help="Here: a tiny UNet for 3 steps on the CPU, the same export.")
def main(prepare_only, data, out, run_dir, minutes, loss_weighting, dry_run) -> None:
    """Train a larger prior on the GPU for --minutes and export it in shards the device tool returns."""
    if prepare_only:
        prepare()
        return
    if out is None:
        raise click.UsageError("give --out (on the GPU machine: $OUT/prior)")
    folders = list(data) or [str(DATA / "train"), str(DATA / "test")]
    missing = [f for f in folders if not Path(f).is_dir()]
    if missing:
        raise click.ClickException(f"{missing[0]} is missing: run --prepare here and carry .gpu_data")
    recipe = {**(DRY if dry_run else RECIPE), "loss_weighting": loss_weighting}
    budget = {"steps": 3, "device": "cpu", "precision": "fp32"} if dry_run else {"minutes": minutes, "device": "cuda"}
    train(folders, run_dir, resume=True, checkpoint_every=0.5, progress=False, **budget, **recipe)
    dest = export_prior(run_dir, out, max_shard_size=DRY_SHARD if dry_run else SHARD)
    shutil.copyfile(Path(run_dir) / HOLDOUT_CSV, dest / HOLDOUT_CSV)
    files = sorted(dest.iterdir())
    for f in files:
        click.echo(f"{f.name}  {f.stat().st_size / 2**20:.2f} MiB")
    click.echo((dest / HOLDOUT_CSV).read_text().strip().splitlines()[-1])
    if not dry_run and (len(files) > RETURNED[0] or any(f.stat().st_size > RETURNED[1] for f in files)):
        click.echo(f"warning: {dest} holds more than {RETURNED[0]} files or a file over 16 MiB; "
                   "some will not come back", err=True)


if __name__ == "__main__":
    main()
