"""``ddrm convert``: a papers' checkpoint file (guided-diffusion .pt, DDPM .ckpt) as a plain diffusers folder."""

from __future__ import annotations

import click

from .errors import Command
from .options import at_least, output_option


@click.command("convert", cls=Command)
@click.argument("checkpoint", metavar="CKPT")
@click.option("--model-config", default=None, metavar="C",
              help="The network's config: imagenet_256, imagenet_256_cc, imagenet_512_cc, celeba_hq, bedroom, cat, "
                   "church, or a DDRM YAML file (default: from the file name, else from the weights).")
@click.option("--class-label", type=int, default=None, callback=at_least(0), metavar="N",
              help="Write a class-conditional network as an unconditional one for class N "
                   "(default: keep it class-conditional).")
@output_option("Output folder (diffusion_pytorch_model.safetensors, config.json, scheduler_config.json, README.md).")
def convert_command(checkpoint: str, model_config: str | None, class_label: int | None, output: str) -> None:
    """Convert CKPT (a .pt/.pth/.ckpt/.bin/.safetensors state dict) into a diffusers UNet2DModel folder.

    The folder loads with `--model DIR` and with diffusers' UNet2DModel.from_pretrained(DIR), and
    loads faster than the checkpoint file, which is converted anew on every load.
    """
    from ddrm_kit.checkpoints import write_folder

    folder = write_folder(checkpoint, output, config=model_config, class_label=class_label)
    click.echo(f"wrote {folder}")
