"""Every exception ddrm_kit raises for a user mistake.

Every message is one line that says what to do; the CLI prints it without a traceback.
All of them are ``ValueError`` subclasses (through :class:`DDRMError`), so callers can catch
``ValueError`` without importing ddrm_kit; the ones about missing files or an unreachable hub
are also ``FileNotFoundError`` / ``ConnectionError``. Operators raise ``operators.OperatorError``
(also a ``ValueError``), since ``operators`` does not import ``ddrm_kit``.
"""

from __future__ import annotations


class DDRMError(ValueError):
    """Base class of every ddrm_kit user error (a bad argument, file, model or shape)."""


class ModelNotFoundError(DDRMError, FileNotFoundError):
    """A prior (local folder, hub id or the built-in weights) does not exist."""


class UnsupportedModelError(DDRMError):
    """A checkpoint exists but is not a pixel-space, unconditional DDPM-style UNet2DModel."""


class HubUnavailableError(DDRMError, ConnectionError):
    """A hub id was asked for but the Hugging Face Hub cannot be reached (offline)."""


class ImageNotFoundError(DDRMError, FileNotFoundError):
    """An input image, mask or kernel file does not exist."""


class ImageFileError(DDRMError):
    """A file that is not a usable image (or mask/kernel), or an output path that cannot be written."""


class BenchError(DDRMError):
    """A bench option, data folder or image the bench cannot use."""


class BenchDataNotFoundError(BenchError, FileNotFoundError):
    """The ``--data`` folder or ``--metric-weights`` folder does not exist or holds no images."""


class TrainingError(DDRMError):
    """A training option or data folder the trainer cannot use."""


class TrainingDataNotFoundError(TrainingError, FileNotFoundError):
    """A --data folder that is missing or holds no readable image."""


class CheckpointConfigError(DDRMError):
    """An unknown or malformed --model-config, or checkpoint weights that do not show their network config."""


class CheckpointWeightsError(UnsupportedModelError):
    """Checkpoint weights that do not fit their network config: missing, unused or misshapen."""


class ClassLabelError(DDRMError):
    """A class-conditional network without --class-label, a label it lacks, or a label for an unconditional one."""


class PlainFolderError(DDRMError):
    """A network that needs ddrm-kit's adapter, so ``ddrm convert`` cannot write a plain diffusers folder."""


class PriorSettingsError(DDRMError):
    """A prior's ddrm_settings.json (sampler settings per task family) that is not valid."""
