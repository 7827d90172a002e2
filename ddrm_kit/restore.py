"""The restoration pipeline every command and script shares: seed, observe, restore, average, score.

``ddrm solve``, ``ddrm degrade``, ``ddrm bench``, the benchmarks and the examples all go through
these functions, so one image, operator, seed and settings give the same observation and the same
result everywhere.

Seeds: image ``key`` (its file name, or any string naming it) and the run's ``seed`` give each
image its own generators, one per *stream*: :data:`NOISE` draws the simulated measurement noise
(on the CPU, so the observation does not depend on the device) and :data:`SAMPLER` drives the
sampler (on the prior's device). Nothing depends on an image's position in a run, on the batch
size or on the number of ranks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import DDRMError

__all__ = ["NOISE", "SAMPLER", "Settings", "generators", "image_seed", "is_codec", "observe", "baseline",
           "restore", "restore_samples", "sample_generators", "score"]

#: The generator stream of the sampler's noise.
SAMPLER = 0
#: The generator stream of the simulated measurement noise.
NOISE = 1


@dataclass(frozen=True)
class Settings:
    """The sampler's settings for one restoration (``None``: the prior's setting for the operator, else the papers')."""

    steps: int | None = None
    eta: float | None = None
    eta_b: float | None = None
    clip_denoised: bool = False
    average: int = 1  # restorations averaged per image (a posterior-mean estimate)

    def __post_init__(self) -> None:
        if isinstance(self.average, bool) or not isinstance(self.average, int) or self.average < 1:
            raise DDRMError(f"average must be a positive integer, got {self.average!r}")


def image_seed(seed: int, key: str, stream: int = SAMPLER) -> int:
    """The 63-bit seed of image ``key`` in a run seeded with ``seed``, for one generator ``stream``."""
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    words = np.frombuffer(digest[:16], dtype=np.uint32).tolist()
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(stream), *words])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> 1)


def generators(seed: int, keys: Sequence[str], stream: int, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One ``torch.Generator`` per image key, on ``device``, for ``stream``."""
    return [torch.Generator(device=device).manual_seed(image_seed(seed, k, stream)) for k in keys]


def is_codec(op) -> bool:
    """Whether ``op`` is a non-linear codec (JPEG, quantisation) restored by DDRM-JPEG."""
    from operators.codec import CodecOperator

    return isinstance(op, CodecOperator)


def observe(op, x: torch.Tensor, sigma_y: float = 0.0, generator: Sequence[torch.Generator] | None = None) -> torch.Tensor:
    """Simulate the observation of clean images ``x``: ``H(x) + sigma_y z`` (linear), ``J(x)`` (codec).

    ``sigma_y`` is in the units of ``x`` ([-1, 1] images). ``z`` is drawn on the CPU in float32 from
    one generator per image (see :func:`generators`, stream :data:`NOISE`).
    """
    if is_codec(op):
        if sigma_y:
            raise DDRMError("measurement noise does not apply to codec (JPEG, quantisation) operators: use sigma_y=0")
        return op.J(x)
    y = op.H(x)
    if sigma_y:
        if generator is None or len(generator) != y.shape[0]:
            raise DDRMError(f"noisy observations need one generator per image ({y.shape[0]})")
        z = torch.stack([torch.randn(y.shape[1:], generator=g, dtype=torch.float32) for g in generator])
        y = y + sigma_y * z.to(device=y.device, dtype=y.dtype)
    return y


def baseline(op, y: torch.Tensor) -> torch.Tensor:
    """The no-prior answer: the pseudo-inverse ``H_pinv(y)``, or the decoded image for a codec."""
    return y if is_codec(op) else op.H_pinv(y)


def sample_generators(generator: Sequence[torch.Generator], samples: int) -> list[torch.Generator]:
    """Per-image generators for ``samples`` draws, sample-major: draw 0 uses ``generator`` itself, draw k
    a generator seeded from the image's own seed (``initial_seed()``) and k, so every draw of every
    image is fixed by that image's generator alone."""
    out = list(generator)
    for k in range(1, samples):
        for g in generator:
            state = np.random.SeedSequence([g.initial_seed(), k])
            seed = int(state.generate_state(1, dtype=np.uint64)[0] >> 1)
            out.append(torch.Generator(device=g.device).manual_seed(seed))
    return out


def restore_samples(prior, op, y: torch.Tensor, settings: Settings = Settings(), sigma_y: float = 0.0,
                    generator: torch.Generator | list[torch.Generator] | None = None,
                    progress: bool = True) -> torch.Tensor:
    """The ``settings.average`` DDRM samples of ``y`` that :func:`restore` averages: ``(K, B, *op.image_shape)``.

    With one generator per image (a list), the K samples of the whole batch go through the network
    together as one batch of K·B (:func:`sample_generators` gives each its own generator), and the
    first sample is exactly what ``average=1`` returns. With one generator or none, the samples
    are drawn one after another.
    """
    from .sampler import ddrm

    k = settings.average

    def run(obs: torch.Tensor, gens) -> torch.Tensor:
        return ddrm(prior, op, obs, steps=settings.steps, eta=settings.eta, eta_b=settings.eta_b, sigma_y=sigma_y,
                    generator=gens, progress=progress, clip_denoised=settings.clip_denoised)

    if k == 1:
        return run(y, generator)[None]
    if isinstance(generator, (list, tuple)):
        out = run(y.repeat(k, *([1] * (y.dim() - 1))), sample_generators(generator, k))
        return out.reshape(k, *y.shape[:1], *out.shape[1:])
    return torch.stack([run(y, generator) for _ in range(k)])


def restore(prior, op, y: torch.Tensor, settings: Settings = Settings(), sigma_y: float = 0.0,
            generator: torch.Generator | list[torch.Generator] | None = None, progress: bool = True) -> torch.Tensor:
    """DDRM on ``y``, the mean of :func:`restore_samples`' ``settings.average`` samples; ``(B, *op.image_shape)`` in [-1, 1]."""
    return restore_samples(prior, op, y, settings, sigma_y, generator, progress).mean(0)


def score(x: torch.Tensor, ref: torch.Tensor) -> dict[str, list[float]]:
    """Per-image PSNR (float), PSNR after 8-bit rounding and SSIM (NaN for images under 11 pixels)."""
    from .metrics import psnr, psnr_uint8, ssim

    x, ref = x.float().cpu(), ref.float().cpu()
    small = min(ref.shape[-2:]) < 11
    return {
        "psnr": psnr(x, ref).tolist(),
        "psnr_uint8": psnr_uint8(x, ref).tolist(),
        "ssim": [float("nan")] * x.shape[0] if small else ssim(x, ref).tolist(),
    }
