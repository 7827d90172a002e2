"""``ddrm convert``: a papers' checkpoint file (guided-diffusion .pt, DDPM .ckpt) as a plain diffusers folder."""

from __future__ import annotations

import click

from .errors import Command
from .options import class_label_option, model_config_option, output_option


@click.command("convert", cls=Command)
@click.argument("checkpoint", metavar="CKPT")
@model_config_option("CKPT")
@class_label_option("Write a class-conditional network as an unconditional one for class N "
                    "(default: keep it class-conditional; --class-label is then given when it is used).")
@output_option("Output folder (diffusion_pytorch_model.safetensors, config.json, scheduler_config.json, README.md).")
def convert_command(checkpoint: str, model_config: str | None, class_label: int | None, output: str) -> None:
    """Convert CKPT (a .pt/.pth/.ckpt/.bin/.safetensors state dict) into a diffusers UNet2DModel folder.

    The folder loads with `--model DIR` and with diffusers' UNet2DModel.from_pretrained(DIR), and
    loads faster than the checkpoint file, which is converted anew on every load.
    """
    from ddrm_kit.checkpoints import write_folder

    folder = write_folder(checkpoint, output, config=model_config, class_label=class_label)
    click.echo(f"wrote {folder} (use it with --model {folder})")
