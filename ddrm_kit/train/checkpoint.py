"""The run folder on disk: checkpoint.pt (the state to resume from), the save_pretrained export of the
EMA weights, holdout.csv, train_config.json (and a Palette run's palette.json), and the export of a run
as a flat prior folder.

Every file is written through ``ddrm_kit.atomic``, so a kill at any moment leaves the previous
complete file in place.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddrm_kit.atomic import atomic_write, move_tree, write_bytes, write_text
from ddrm_kit.errors import TrainingDataNotFoundError, TrainingError
from ddrm_kit.palette_model import PALETTE_JSON, PaletteTask, write_palette_task

from .recipe import TrainConfig

CHECKPOINT = "checkpoint.pt"
HOLDOUT_CSV = "holdout.csv"
CONFIG_JSON = "train_config.json"
# train_loss is in the recipe's own units (its target and weighting); the held-out loss is always the
# unweighted mean squared ε error of the EMA weights (a v-prediction converted to ε), so runs compare.
# Files begun before the column's rename keep "holdout_loss_ema": the same ε error (every run then was ε).
HOLDOUT_COLUMNS = ["step", "images_seen", "train_seconds", "train_loss", "holdout_eps_mse_ema", "lr"]
# A run that holds no image out (under 50) measures that error on fixed crops of its training images and
# names the column so; its files begun before this name say holdout_eps_mse_ema and keep that header.
TRAIN_CROPS_COLUMN = "train_crops_eps_mse_ema"


def check_run_folder(out: Path) -> None:
    """Refuse a run folder that is, or lies under, an existing file (before any work is done)."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise TrainingError(f"-o/--output {out}: {folder} is a file, not a folder; choose another run folder")
            return


def load_state(out: Path) -> dict[str, Any] | None:
    """The run's last checkpoint, or None when it has none."""
    path = out / CHECKPOINT
    if not path.exists():
        return None
    # the checkpoint holds numpy and Python RNG states besides tensors
    return torch.load(path, map_location="cpu", weights_only=False)


def save_state(out: Path, state: dict[str, Any]) -> None:
    atomic_write(out / CHECKPOINT, lambda tmp: torch.save(state, tmp))


def make_state(cfg: TrainConfig, model, ema_model, opt, crop_rng, noise_gen, *,
               step: int, images_seen: int, train_seconds: float) -> dict[str, Any]:
    """Everything ``--resume`` needs to continue exactly: recipe, counters, weights, optimizer, RNG states."""
    return {
        "config": asdict(cfg),
        "step": step,
        "images_seen": images_seen,
        "train_seconds": train_seconds,
        "model": model.state_dict(),
        "ema": ema_model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": rng_state(crop_rng, noise_gen),
    }


def restore_state(state: dict[str, Any], model, ema_model, opt, crop_rng, noise_gen) -> tuple[int, int, float]:
    """Load a checkpoint into the run's objects; returns its step, images_seen and train_seconds."""
    model.load_state_dict(state["model"])
    ema_model.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"], crop_rng, noise_gen)
    return state["step"], state["images_seen"], state["train_seconds"]


def rng_state(crop_rng: np.random.Generator, noise_gen: torch.Generator) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "crop": crop_rng.bit_generator.state,
        "noise": noise_gen.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], crop_rng: np.random.Generator, noise_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    crop_rng.bit_generator.state = state["crop"]
    noise_gen.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_config(out: Path, cfg: TrainConfig) -> None:
    """Write train_config.json, and a Palette run's palette.json (before any checkpoint: never mistaken for a prior)."""
    write_text(out / CONFIG_JSON, json.dumps(asdict(cfg), indent=2))
    if cfg.palette is not None:
        write_palette_task(out, PaletteTask(**cfg.palette))


def append_holdout_row(out: Path, row: list[Any], held_out: bool) -> None:
    """Add one checkpoint's line to holdout.csv (with the header when the file is new; see TRAIN_CROPS_COLUMN)."""
    path = out / HOLDOUT_CSV
    old = path.read_bytes() if path.exists() else b""
    lines = io.StringIO()
    writer = csv.writer(lines)  # csv's own "\r\n" line ends, as in the files of earlier runs
    if not old:
        writer.writerow(HOLDOUT_COLUMNS if held_out else [*HOLDOUT_COLUMNS[:4], TRAIN_CROPS_COLUMN, *HOLDOUT_COLUMNS[5:]])
    writer.writerow(row)
    write_bytes(path, old + lines.getvalue().encode())


@contextlib.contextmanager
def _staged(dest: Path) -> Iterator[Path]:
    """A temporary folder inside ``dest`` whose files replace those in ``dest`` one by one when the block succeeds."""
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".export."))
    try:
        yield tmp
        move_tree(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_pretrained(model, scheduler, out: Path, palette: bool) -> None:
    """Save the UNet (safetensors) and scheduler as ``unet/`` + ``scheduler/``, a prior's with DDPMPipeline's index."""
    import diffusers

    with _staged(out) as tmp:
        model.save_pretrained(tmp / "unet", safe_serialization=True)
        scheduler.save_pretrained(tmp / "scheduler")
        # DDPMPipeline cannot sample a Palette model's 6-channel UNet; load_palette_prior reads no index
        if not palette:
            index = {
                "_class_name": "DDPMPipeline",
                "_diffusers_version": diffusers.__version__,
                "scheduler": ["diffusers", "DDPMScheduler"],
                "unet": ["diffusers", "UNet2DModel"],
            }
            (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    if palette:
        (out / "model_index.json").unlink(missing_ok=True)  # the index that earlier trainers wrote


def export_prior(run: str | os.PathLike, dest: str | os.PathLike, dtype: str = "float16",
                 max_shard_size: str | None = None) -> Path:
    """Copy a run's EMA UNet + scheduler into a flat ``save_pretrained`` folder (the built-in prior layout).

    The weights are stored in ``dtype`` (float16 halves the file; loaders upcast as they need), in
    one file, or in safetensors shards of at most ``max_shard_size`` (e.g. ``"15MB"``) with
    diffusers' index, which every loader reads the same.
    Files are replaced atomically; other files in ``dest`` (such as README.md) are kept. A Palette
    run's ``palette.json`` goes with it.
    """
    from diffusers import DDPMScheduler, UNet2DModel

    run, dest = Path(run), Path(dest)
    if not (run / "unet").is_dir():
        raise TrainingDataNotFoundError(f"{run} holds no trained model yet (no unet/ folder); wait for its first checkpoint")
    unet = UNet2DModel.from_pretrained(run, subfolder="unet", torch_dtype=getattr(torch, dtype))
    sched = DDPMScheduler.from_pretrained(run, subfolder="scheduler")
    with _staged(dest) as tmp:
        unet.save_pretrained(tmp, safe_serialization=True, max_shard_size=max_shard_size or "10GB")  # diffusers' default: one file
        sched.save_pretrained(tmp)
        # the shipped config must not carry this machine's run path
        config = json.loads((tmp / "config.json").read_text())
        config.pop("_name_or_path", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if (run / PALETTE_JSON).is_file():
            shutil.copyfile(run / PALETTE_JSON, tmp / PALETTE_JSON)
        written = {f.name for f in tmp.iterdir()}
    # weights of an earlier export in the other layout (one file / shards) would shadow or confuse the new ones
    for stale in dest.glob("diffusion_pytorch_model*.safetensors*"):
        if stale.name not in written:
            stale.unlink()
    return dest
