"""Exceptions raised by ddrm_kit for user mistakes.

Every message is one line that says what to do; the CLI prints it without a traceback.
All of them are ``ValueError`` subclasses (through :class:`DDRMError`), so callers can catch
``ValueError`` without importing ddrm_kit; the ones about missing files or an unreachable hub
are also ``FileNotFoundError`` / ``ConnectionError``.
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
