"""Palette (Saharia et al. 2022): the condition image and Algorithm 2, on the operators DDRM uses.

A Palette model is a conditional ε-predictor ``f(c, y_t, t)`` trained on pairs that the operator
makes from clean images, ``c = palette_condition(op, H x0 + σ_y n)`` (Algorithm 1). Sampling is
Algorithm 2; with ``ᾱ_t`` the prior's ``alphas_cumprod`` (Palette's ``γ_t``), ``α_t = ᾱ_t / ᾱ_{t-1}``
and ``ᾱ_{-1} = 1``::

    y_T ~ N(0, I),   y_{t-1} = (y_t - (1 - α_t) / sqrt(1 - ᾱ_t) ε̂) / sqrt(α_t) + sqrt(1 - α_t) z,

``z ~ N(0, I)`` and ``z = 0`` at the last step (t = 0), whose result is the clean estimate
``x̂0 = (y_0 - sqrt(1 - ᾱ_0) ε̂) / sqrt(ᾱ_0)``.

Fewer steps keep the timesteps ``sampler.timesteps(steps, T)``. From a kept ``t`` to the next kept
``s`` (``ᾱ_s = 1`` after the last one), with ``α_{t|s} = ᾱ_t / ᾱ_s`` and ``β_{t|s} = 1 - α_{t|s}``,
DDPM's posterior is ``q(y_s | y_t, x0) = N(μ̃, β̃ I)``::

    μ̃ = sqrt(ᾱ_s) β_{t|s} / (1 - ᾱ_t) x0 + sqrt(α_{t|s}) (1 - ᾱ_s) / (1 - ᾱ_t) y_t,
    β̃ = β_{t|s} (1 - ᾱ_s) / (1 - ᾱ_t).

Putting in ``x0 = x̂0 = (y_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t)``, using
``sqrt(ᾱ_s / ᾱ_t) = 1 / sqrt(α_{t|s})`` and ``β_{t|s} + α_{t|s} (1 - ᾱ_s) = 1 - ᾱ_t``::

    μ̃ = (y_t - β_{t|s} / sqrt(1 - ᾱ_t) ε̂) / sqrt(α_{t|s}),

which is Algorithm 2's mean with ``α_t`` replaced by ``α_{t|s}`` (identical when ``s = t - 1``). A
step draws ``y_s = μ̃ + sqrt(v) z``: ``v = β̃`` when ``steps < T``, and ``v = β_{t|s} = 1 - α_t`` when
``steps == T``, Palette's own choice, so that the full schedule runs Algorithm 2 verbatim. The larger
variance over-disperses badly on a coarse schedule (docs/design.md: "Palette").

``clip_denoised=True`` (the default) clamps ``x̂0`` to ``[-1, 1]`` and takes ``μ̃`` from the clamped
``x̂0`` and ``y_t`` (the first form above), as DDPM's reference sampler and diffusers'
``DDPMScheduler`` (``clip_sample``) do. Near ``t = T`` an error ``δ`` in ``ε̂`` is an error
``δ sqrt((1 - ᾱ_t) / ᾱ_t)``, about ``150 δ``, in ``x̂0``; unclamped, a briefly trained model's early
steps push ``y_t`` off the images it was trained on and it does not come back. ``False`` runs the
update above verbatim (Algorithm 2 when ``steps == T``).
"""

from __future__ import annotations

import math

import torch

from .errors import DDRMError
from .prior import Prior
from .sampler import timesteps
from .sampling import codec_image_shape, on_device, randn, step_range, timestep_batches, validate_y

__all__ = ["palette", "palette_condition", "palette_samples", "restore_palette"]

Generators = torch.Generator | list[torch.Generator] | None


def _check_observation(op, y: torch.Tensor) -> tuple[int, ...]:
    """The image shape behind ``y`` after checking ``op`` and ``y``'s shape (one-line DDRMErrors)."""
    from .restore import is_codec

    if is_codec(op):
        shape = codec_image_shape(op, y)
        validate_y(y, shape)
        return shape
    if not all(hasattr(op, a) for a in ("H", "H_pinv", "measurement_shape", "image_shape")):
        raise DDRMError(
            f"op must be an operators.SVDOperator or operators.codec.CodecOperator, got {type(op).__name__}")
    validate_y(y, tuple(int(d) for d in op.measurement_shape))
    return tuple(int(d) for d in op.image_shape)


def _check_generators(generator: Generators, batch: int, device: torch.device) -> None:
    if isinstance(generator, (list, tuple)) and len(generator) != batch:
        raise DDRMError(f"got {len(generator)} generators for a batch of {batch}: pass one per image, or one")
    for g in generator if isinstance(generator, (list, tuple)) else [generator]:
        if g is not None and g.device.type != device.type:
            raise DDRMError(f"generator is on {g.device} but the sampler runs on {device}: "
                            f"pass torch.Generator(device='{device.type}')")


def palette_condition(op, y: torch.Tensor, generator: Generators = None) -> torch.Tensor:
    """Palette's condition image: ``H⁺y`` (codec: ``y``), N(0, 1) noise where a full-size ``y`` is missing."""
    from .restore import baseline

    _check_observation(op, y)
    c = baseline(op, y)
    if getattr(op, "observation_kind", "image") == "full_image":
        _check_generators(generator, y.shape[0], c.device)
        # Noise projected on the null space of H, i.e. exactly the missing pixels of a mask; computed
        # before it is added, so that the observed pixels keep y's values bit for bit.
        zeta = randn(torch.empty_like(c), generator)
        c = c + zeta.sub_(op.H_pinv(op.H(zeta)))
    return c


def palette(prior: Prior, op, y: torch.Tensor, steps: int | None = None, generator: Generators = None,
            progress: bool = True, clip_denoised: bool = True) -> torch.Tensor:
    """Palette (Saharia et al. 2022), Algorithm 2 given ``palette_condition(op, y)``; strided when ``steps < T``."""
    if not isinstance(prior, Prior):
        raise DDRMError(f"prior must be a ddrm_kit.Prior (see load_palette_prior), got {type(prior).__name__}")
    if not prior.conditional:
        raise DDRMError("prior is not a conditional (Palette) model: load one with load_palette_prior, "
                        "or restore with ddrm() for an unconditional prior")
    image_shape = _check_observation(op, y)
    if prior.channels is not None and prior.channels != image_shape[0]:
        raise DDRMError(
            f"the Palette model works on {prior.channels}-channel images but the operator on {image_shape[0]}-channel "
            "ones: build the operator for the model's channel count")
    total = prior.num_train_timesteps
    ts = timesteps(total if steps is None else steps, total)
    device = prior.device
    _check_generators(generator, y.shape[0], device)
    op = on_device(op, device)
    y = y.to(device=device, dtype=torch.float32)
    with torch.no_grad():
        # One stream per image: the condition's fill noise, then y_T, then one z per step.
        c = palette_condition(op, y, generator)
        return _run(prior, c, ts, generator, progress, clip_denoised)


def _run(prior: Prior, c: torch.Tensor, ts: list[int], generator: Generators, progress: bool,
         clip_denoised: bool) -> torch.Tensor:
    ac = prior.alphas_cumprod
    abar = [float(ac[t]) for t in ts] + [1.0]  # after the last kept timestep comes the clean image
    algorithm2 = len(ts) == prior.num_train_timesteps
    t_dev = timestep_batches(ts, 1, c.device)
    batch = c.shape[0]
    y_t = randn(torch.empty_like(c), generator)
    z = torch.empty_like(c)
    last = len(ts) - 1
    for i in step_range(len(ts), progress, "Palette"):
        a_t, a_s = abar[i], abar[i + 1]
        alpha = a_t / a_s
        beta = 1.0 - alpha
        eps = prior(y_t, t_dev[i].expand(batch), c)
        if clip_denoised:
            x0 = (y_t - math.sqrt(1.0 - a_t) * eps).div_(math.sqrt(a_t)).clamp_(-1, 1)
            y_t = y_t.mul_(math.sqrt(alpha) * (1.0 - a_s) / (1.0 - a_t)).add_(x0, alpha=math.sqrt(a_s) * beta / (1.0 - a_t))
        else:
            y_t = y_t.sub_(eps, alpha=beta / math.sqrt(1.0 - a_t)).mul_(1.0 / math.sqrt(alpha))
        if i < last:
            var = beta if algorithm2 else beta * (1.0 - a_s) / (1.0 - a_t)
            y_t.add_(randn(z, generator), alpha=math.sqrt(var))
    return y_t.clamp_(-1, 1)


def palette_samples(prior: Prior, op, y: torch.Tensor, steps: int | None = None, average: int = 1,
                    generator: Generators = None, progress: bool = True, clip_denoised: bool = True) -> torch.Tensor:
    """The ``average`` Palette samples of ``y`` that :func:`restore_palette` averages: ``(K, B, ...)``.

    They are drawn in turn from the same generators, so the first is exactly what ``average=1`` returns.
    """
    if isinstance(average, bool) or not isinstance(average, int) or average < 1:
        raise DDRMError(f"average must be a positive integer, got {average!r}")
    return torch.stack([palette(prior, op, y, steps=steps, generator=generator, progress=progress,
                                clip_denoised=clip_denoised) for _ in range(average)])


def restore_palette(prior: Prior, op, y: torch.Tensor, steps: int | None = None, average: int = 1,
                    generator: Generators = None, progress: bool = True, clip_denoised: bool = True) -> torch.Tensor:
    """Palette on ``y``, the mean of :func:`palette_samples`' ``average`` samples (as ``restore``)."""
    return palette_samples(prior, op, y, steps, average, generator, progress, clip_denoised).mean(0)
