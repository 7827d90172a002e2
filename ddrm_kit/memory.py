"""How much memory a restoration needs, estimated from sizes alone, and how much the machine has.

``ddrm solve`` and ``ddrm sample`` compare the two before they load an image or a model, so that a
huge image is refused with a figure instead of swapping or being killed. Only sizes are read: the
image header, the UNet's config.json and the operator's registry entry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Estimate", "available_bytes", "estimate", "shortfall", "size_text"]

# Bytes per float32 activation of the UNet per pixel and first-block channel: the built-in prior
# (block widths 32-64-128-128, channels_last, no grad) peaks at 1.7 KB per pixel on 1024x1024
# (2.5 KB on 512x512, where fixed costs weigh more), i.e. about 14 first-block-wide float32 maps.
_UNET_MAPS = 14
# Working copies of the image-sized tensors: DDRM's spectral vectors (x̄, ȳ, z, x̄0, the update and its
# coefficients), the network's input, ε̂ and x̂0, the observation and the result (about 20 floats per entry).
_SAMPLER_FLOATS = 20
# Operator tensors per image entry (C*H*W), measured on 2048x2048x3 builds: the separable blur and
# bicubic SVDs keep permutations, index maps and spectral grids (~90 B), inpainting two permutations
# (~40 B); the rest (block SR, identity, colour, Fourier, JPEG) a few image-sized buffers.
_OPERATOR_BYTES = {"operators.blur": 96, "operators.bicubic": 96, "operators.inpaint": 48}
_OPERATOR_DEFAULT_BYTES = 32
# Separable SVDs also hold dense float64 1-D factors (U and V per axis) and their SVD's workspace.
_SEPARABLE = ("operators.blur", "operators.bicubic")


@dataclass(frozen=True)
class Estimate:
    """Bytes a restoration needs: the network's activations, DDRM's vectors and images, the operator."""

    network: int
    sampler: int
    operator: int

    @property
    def total(self) -> int:
        return self.network + self.sampler + self.operator

    def describe(self) -> str:
        """``about 9.4 GB (network 7.5 GB, sampler 1.0 GB, operator 0.9 GB)``."""
        parts = ", ".join(f"{k} {size_text(getattr(self, k))}" for k in ("network", "sampler", "operator"))
        return f"about {size_text(self.total)} ({parts})"


def size_text(n: int) -> str:
    """``9.4 GB``, or ``35.2 MB`` under a gigabyte."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def estimate(image_shape: Sequence[int], batch: int, unet_config: Mapping[str, Any], factory: Any) -> Estimate:
    """A rough estimate of the peak memory of restoring ``batch`` images of ``image_shape`` (C, H, W).

    Model: network = batch x H x W x first block width x 14 float32 maps (calibrated on the built-in
    prior; a UNet without a config counts as 128 wide); sampler = batch x C x H x W x 20 float32;
    operator = C x H x W x 32-96 bytes by operator module, plus 6 float64 H x H and W x W matrices
    for separable blurs and bicubic SR (``factory`` is the registry entry's ``"module:function"``).
    Self-attention is assumed to run in torch's memory-efficient kernels (no T x T score matrix), and
    the weights are left out (8 MB for the built-in prior, a few hundred MB for the papers' priors).
    """
    c, h, w = (int(d) for d in image_shape)
    pixels = h * w
    widths = unet_config.get("block_out_channels") or (128,)
    network = batch * pixels * int(widths[0]) * _UNET_MAPS * 4
    sampler = batch * c * pixels * _SAMPLER_FLOATS * 4
    module = factory.partition(":")[0] if isinstance(factory, str) else ""
    operator = c * pixels * _OPERATOR_BYTES.get(module, _OPERATOR_DEFAULT_BYTES)
    if module in _SEPARABLE:
        operator += 6 * (h * h + w * w) * 8
    return Estimate(network, sampler, operator)


def available_bytes(device: str = "cpu") -> int | None:
    """Free memory where ``device``'s tensors live: CUDA's free memory, else the machine's (None: unknown)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    return _host_available()


def _host_available() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free pages from sysconf, else None (e.g. macOS)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def shortfall(need: Estimate, device: str) -> str | None:
    """None when ``need`` fits the memory ``device`` has free now (or that is unknown), else the figure in words."""
    where = "this machine" if not device.startswith("cuda") else device
    checks = [(need.total, available_bytes(device), where)]
    if device.startswith("cuda"):
        # The operator is built on the host and the images stay there: the host holds those too.
        checks.append((need.operator + need.sampler, _host_available(), "this machine"))
    for n, free, place in checks:
        if free is not None and n > free:
            return f"{size_text(free)} are free on {place}"
    return None
