"""Writing a converted checkpoint as a plain diffusers folder (what ``ddrm convert`` makes).

The folder holds ``diffusion_pytorch_model.safetensors``, ``config.json`` (a plain ``UNet2DModel``),
``scheduler_config.json`` (a ``DDPMScheduler``) and a model card naming the source file, so
``UNet2DModel.from_pretrained(folder)`` and ``--model folder`` load it. With a class label, a
class-conditional network is written as an unconditional one for that class: its class embedding
row is added into the timestep MLP's last bias, which is where the original adds it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import diffusers
import torch
from safetensors.torch import save_file

from ddrm_kit.atomic import move_tree
from ddrm_kit.errors import ImageFileError, PlainFolderError

from .load import CheckpointInfo, open_checkpoint

WEIGHTS = "diffusion_pytorch_model.safetensors"
FILES = (WEIGHTS, "config.json", "scheduler_config.json", "README.md")


def write_folder(path: str | os.PathLike, output: str | os.PathLike, config: str | os.PathLike | None = None,
                 class_label: int | None = None) -> Path:
    """Convert the checkpoint file ``path`` and write it to the folder ``output``; returns the folder.

    ``output`` must be new, empty, or an earlier conversion (its four files are replaced).
    """
    dest = Path(output).expanduser()
    _check_destination(dest)
    opened = open_checkpoint(path, config)
    problem = opened.layout.plain_problem
    if problem is not None:
        raise PlainFolderError(f"{opened.name} cannot be written as a plain diffusers folder: {problem}; "
                               f"load the checkpoint file itself instead (--model {opened.source})")
    unet, scheduler_config, info = opened.convert(class_label)
    unet_config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
    state = unet.state_dict()
    if class_label is not None:
        # emb = MLP(t) + E[label], and MLP(t) ends in linear_2: fold the row into its bias.
        row = state.pop("class_embedding.weight")[class_label]
        state["time_embedding.linear_2.bias"] = state["time_embedding.linear_2.bias"] + row
        unet_config["num_class_embeds"] = None
    meta = {"_class_name": "UNet2DModel", "_diffusers_version": diffusers.__version__}
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".convert-"))
    try:
        # Written straight from the (memory-mapped) tensors: no second copy of the network in RAM.
        save_file(state, tmp / WEIGHTS, metadata={"format": "pt"})
        _write_json(tmp / "config.json", {**meta, **unet_config})
        _write_json(tmp / "scheduler_config.json", {**scheduler_config, "_diffusers_version": diffusers.__version__})
        (tmp / "README.md").write_text(_model_card(info, class_label, unet_config, state), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    move_tree(tmp, dest)
    return dest


def _check_destination(dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise ImageFileError(f"{dest}: is a file; -o takes a folder for the converted model")
    if dest.is_dir():
        others = sorted(p.name for p in dest.iterdir() if p.name not in FILES)
        if others:
            raise ImageFileError(f"{dest}: holds other files ({', '.join(others[:3])}); give a new or empty folder")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _model_card(info: CheckpointInfo, label: int | None, config: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    params = sum(t.numel() for t in state.values())
    classes = (f"Bound to class {label} of {info.num_classes} (an unconditional network for that class)."
               if label is not None else
               f"Class-conditional ({info.num_classes} classes): pass `class_labels` when calling it."
               if info.num_classes else "Unconditional.")
    size = f"{config['sample_size']} pixels square" if config["sample_size"] else "training size unknown"
    outputs = ("ε and the learned variance (the first half of the channels is ε)"
               if config["out_channels"] == 2 * config["in_channels"] else "ε")
    return (
        f"---\nlibrary_name: diffusers\ntags: [ddrm-kit, diffusion]\n---\n\n"
        f"# {info.source.stem} as a diffusers UNet2DModel\n\n"
        f"Converted by `ddrm convert` from the {info.family} checkpoint **{info.source.name}** "
        f"(config `{info.config}`: {info.how}); the network computes what the original does, to float32 rounding.\n\n"
        f"- {params:,} parameters; {config['in_channels']}-channel images, {size}; "
        f"outputs {outputs}.\n- {classes}\n"
        f"- Noise schedule: see `scheduler_config.json` (DDPMScheduler).\n\n"
        f"Load it with `UNet2DModel.from_pretrained(folder)` or `ddrm solve --model folder` (a class-conditional "
        f"one with `--class-label N`). The original "
        f"checkpoint's license and terms apply to these weights.\n")
