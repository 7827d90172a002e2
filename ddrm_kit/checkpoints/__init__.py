"""The papers' own checkpoints as exact ``diffusers`` ``UNet2DModel`` networks.

guided-diffusion ("ADM") ``.pt`` files and DDPM ``.ckpt`` files in the DDIM code base's layout,
described by the official DDRM configs (seven built in, or a YAML file in their format):

- :func:`load_checkpoint` converts a file in memory: ``(unet, scheduler_config, info)``
  (:func:`open_checkpoint` first reads it and chooses its config, before the costly conversion);
- :func:`write_folder` writes it as a plain diffusers folder (``ddrm convert``).
"""

from __future__ import annotations

from .configs import PRESETS, CheckpointConfig, Schedule, load_config
from .folder import write_folder
from .load import Checkpoint, CheckpointInfo, OpenedCheckpoint, is_checkpoint_file, load_checkpoint, open_checkpoint
from .unet import CheckpointUNet, bind_class

__all__ = [
    "PRESETS", "CheckpointConfig", "Schedule", "load_config", "write_folder", "Checkpoint", "CheckpointInfo",
    "OpenedCheckpoint", "is_checkpoint_file", "load_checkpoint", "open_checkpoint", "CheckpointUNet", "bind_class",
]
