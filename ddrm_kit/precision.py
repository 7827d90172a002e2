"""The network precisions, named the same way by every command and by the library (torch-free)."""

from __future__ import annotations

#: ``--precision`` name -> the torch dtype's name.
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(precision: str):
    """The torch dtype of a precision name (``fp32``, ``fp16``, ``bf16``)."""
    import torch

    return getattr(torch, PRECISIONS[precision])
