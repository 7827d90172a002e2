"""The DDRM sampler: linear SVD operators and the DDRM-JPEG path for codec operators."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .errors import DDRMError
from .prior import Prior
from .prior_settings import JPEG_T0_FRACTION, sampler_settings
from .sampling import codec_image_shape, on_device, randn, step_range, timestep_batches, validate_y

__all__ = ["ddrm", "timesteps", "JPEG_T0_FRACTION"]

Callback = Callable[[int, int, torch.Tensor], None]


def timesteps(steps: int, num_train_timesteps: int, t_start: int | None = None) -> list[int]:
    """The DDIM/DDRM schedule: ``steps`` distinct timesteps ``floor(i * t_start / steps)``, descending.

    With ``t_start = T`` (default) and ``steps`` dividing ``T`` this is the papers'
    ``range(0, T, T // steps)`` reversed, e.g. 950, 900, ..., 0 for 20 of 1000; otherwise it still
    gives exactly ``steps`` timesteps in ``[0, t_start)``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DDRMError(f"steps must be a positive integer, got {steps!r}")
    if num_train_timesteps < 1:
        raise DDRMError(f"num_train_timesteps must be positive, got {num_train_timesteps}")
    top = num_train_timesteps if t_start is None else int(t_start)
    if not 1 <= top <= num_train_timesteps:
        raise DDRMError(f"t_start must be in [1, {num_train_timesteps}], got {t_start}")
    if steps > top:
        raise DDRMError(f"steps={steps} exceeds the {top} available timesteps: use steps <= {top}")
    return [(i * top) // steps for i in reversed(range(steps))]


def _check_unit(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise DDRMError(f"{name} must be in [0, 1], got {value}")
    return value


def ddrm(
    prior: Prior,
    op,
    y: torch.Tensor,
    steps: int | None = None,
    eta: float | None = None,
    eta_b: float | None = None,
    sigma_y: float = 0.0,
    generator: torch.Generator | list[torch.Generator] | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    clip_denoised: bool = False,
    t0: int | None = None,
) -> torch.Tensor:
    """DDRM (Kawar et al. 2022), and DDRM-JPEG (Kawar et al. 2022b) for ``operators.codec.CodecOperator``.

    Restores ``y = H x + N(0, sigma_y²)`` (``y`` of shape (B, *op.measurement_shape)) or, for a
    codec, ``y`` = the decoded image. ``steps``, ``eta``, ``eta_b`` and (codecs) ``t0``, the first
    timestep of DDRM-JPEG, left ``None`` come from the prior's settings for the operator's family
    (``prior.settings``, from its ``ddrm_settings.json``), else the papers' values: 20 steps, eta/eta_b
    0.85/1.0 (linear) and 1.0/0.4 with t0 = 0.3 T (codec); see ``prior_settings.sampler_settings``.
    Runs exactly ``steps`` prior evaluations and returns the last clean-image prediction
    (the codec path adds ``eta_b (y - J(x̂0))``), clamped to [-1, 1], shape (B, *op.image_shape).
    ``callback(step_index, t, x0_pred)`` sees every intermediate prediction. ``generator`` is one
    ``torch.Generator`` for the batch or a list of one per image (then each image's result does not
    depend on the batch it is in). ``clip_denoised`` clamps every x̂0 to [-1, 1] before it is used
    (diffusers' ``clip_sample``; not in the papers, off by default): it keeps a weak prior's
    predictions in range where the operator leaves them unconstrained (colourisation's chroma).

    ``op`` is never moved or modified: when its tensors are not on the prior's device, the sampler
    uses a copy there, made on the first call and reused while ``op``'s tensors are unchanged. A
    codec built without ``image_shape`` (``operators.JPEG(quality=10)``) takes the size of ``y``.
    """
    from operators.codec import CodecOperator

    codec = isinstance(op, CodecOperator)
    if not codec and not all(hasattr(op, a) for a in ("V", "Vt", "Ut", "singulars", "image_shape")):
        raise DDRMError(
            f"op must be an operators.SVDOperator or operators.codec.CodecOperator, got {type(op).__name__}")
    if not isinstance(prior, Prior):
        raise DDRMError(f"prior must be a ddrm_kit.Prior (see load_prior), got {type(prior).__name__}")
    chosen = sampler_settings(prior, op, steps=steps, eta=eta, eta_b=eta_b, t0=t0)
    eta = _check_unit("eta", chosen["eta"])
    eta_b = _check_unit("eta_b", chosen["eta_b"])
    sigma_y = float(sigma_y)
    if not (sigma_y >= 0.0 and math.isfinite(sigma_y)):
        raise DDRMError(f"sigma_y must be a finite value >= 0, got {sigma_y}")
    if codec and sigma_y > 0:
        raise DDRMError("sigma_y applies to linear operators only; codec (JPEG) operators need sigma_y=0")
    image_shape = codec_image_shape(op, y) if codec else tuple(int(d) for d in op.image_shape)
    validate_y(y, image_shape if codec else tuple(int(d) for d in op.measurement_shape))
    if prior.channels is not None and prior.channels != image_shape[0]:
        raise DDRMError(
            f"the prior works on {prior.channels}-channel images but the operator on {image_shape[0]}-channel "
            "ones: build the operator for the prior's channel count")
    device = prior.device
    gens = generator if isinstance(generator, (list, tuple)) else [generator]
    if isinstance(generator, (list, tuple)) and len(generator) != y.shape[0]:
        raise DDRMError(f"got {len(generator)} generators for a batch of {y.shape[0]}: pass one per image, or one")
    for g in gens:
        if g is not None and g.device.type != device.type:
            raise DDRMError(
                f"generator is on {g.device} but the prior runs on {device}: "
                f"pass torch.Generator(device='{device.type}')")
    ts = timesteps(chosen["steps"], prior.num_train_timesteps, chosen["t0"] if codec else None)
    # Operator tensors must live where the sampler works: copied there once, never per step.
    op = on_device(op, device)
    y = y.to(device=device, dtype=torch.float32)
    with torch.no_grad():
        run = _run_codec if codec else _run_linear
        return run(prior, op, y, ts, eta, eta_b, sigma_y, generator, progress, callback, bool(clip_denoised))


def _run_linear(prior: Prior, op, y: torch.Tensor, ts: list[int], eta: float, eta_b: float, sigma_y: float,
                generator: torch.Generator | list[torch.Generator] | None, progress: bool,
                callback: Callback | None, clip: bool) -> torch.Tensor:
    device = prior.device
    batch = y.shape[0]
    n = math.prod(op.image_shape)
    # Per-entry quantities, computed once per call (the step loop only combines them).
    s_m = op.singulars().to(device=device, dtype=torch.float32).reshape(-1)
    m = s_m.numel()
    s = torch.zeros(n, device=device)
    s[:m] = s_m
    observed = s > 0  # s_k = 0 entries (and k >= m) are the null space
    safe_s = torch.where(observed, s, torch.ones_like(s))
    ybar = torch.zeros(batch, n, device=device)
    ybar[:, :m] = op.Ut(y).to(torch.float32).reshape(batch, m)
    ybar = torch.where(observed, ybar / safe_s, torch.zeros_like(ybar))
    # σ_y² / s_k² (0 on the null space), the measurement noise seen in spectral coordinates.
    noise_var = torch.where(observed, (sigma_y / safe_s) ** 2, torch.zeros_like(s))

    ac = prior.alphas_cumprod
    abar = [float(ac[t]) for t in ts]
    sig = [math.sqrt((1 - a) / a) for a in abar]
    c_eps = math.sqrt(1.0 - eta * eta)
    t_dev = timestep_batches(ts, batch, device)
    z = torch.empty(batch, n, device=device)

    # Initialisation at σ_T: measured entries start at ȳ plus the noise missing from y.
    randn(z, generator)
    sig_t = sig[0]
    start_obs = observed & (s * sig_t > sigma_y)
    init_std = torch.where(start_obs, (sig_t * sig_t - noise_var).clamp_min(0).sqrt(), torch.full_like(s, sig_t))
    xbar = torch.where(start_obs, ybar, torch.zeros_like(ybar)) + init_std * z

    # Each update is x̄' = A ⊙ x̄0 + Bc ⊙ x̄ + Dc ⊙ ȳ + S ⊙ z with per-entry coefficients (n,) set by the
    # entry's case (docs/design.md), using ε̄ = (x̄ - x̄0) / σ; only 4 passes over the (B, n) batch per step.
    unobserved = ~observed
    if sigma_y == 0.0:
        # Noiseless: every observed entry is "noisier than y" at every σ' > 0, so Dc ⊙ ȳ is fixed.
        d_term = eta_b * ybar
    steps = len(ts)
    x0 = None
    for i in step_range(steps, progress, "DDRM"):
        sqrt_a = math.sqrt(abar[i])
        xv = op.V(xbar).reshape(batch, *op.image_shape)
        # Network input in VP coordinates: x_t = sqrt(ᾱ) (x0 + σ ε).
        eps = prior(xv * sqrt_a, t_dev[i])
        x0 = torch.add(xv, eps, alpha=-sig[i])
        if clip:
            # ε̄ stays implied by (x̄ - x̄0) / σ, so the null-space update remains self-consistent.
            x0.clamp_(-1, 1)
        if callback is not None:
            callback(i, ts[i], x0)
        if i == steps - 1:
            break
        x0bar = op.Vt(x0).reshape(batch, n).to(torch.float32)
        sn = sig[i + 1]
        k = sn * c_eps / sig[i]  # null space: x̄0 + σ' sqrt(1-η²) ε̄ = (1 - k) x̄0 + k x̄
        if sigma_y == 0.0:
            a_coef = torch.where(observed, 1.0 - eta_b, 1.0 - k)
            b_coef = unobserved * k
            s_coef = torch.where(observed, sn, sn * eta)
            new = torch.addcmul(d_term, a_coef, x0bar)
        else:
            thresh = sigma_y / sn
            noisier = s > thresh
            less = observed & (s < thresh)
            w = (sn * c_eps / sigma_y) * s  # less noisy than y: pulled towards ȳ by σ' sqrt(1-η²) s / σ_y
            a_coef = torch.where(noisier, 1.0 - eta_b, torch.where(less, 1.0 - w, 1.0 - k))
            b_coef = (~(noisier | less)) * k
            d_coef = torch.where(noisier, eta_b, less * w)
            s_coef = torch.where(noisier, (sn * sn - eta_b * eta_b * noise_var).clamp_min(0).sqrt(), sn * eta)
            new = torch.addcmul(d_coef * ybar, a_coef, x0bar)
        randn(z, generator)
        xbar = new.addcmul_(b_coef, xbar).addcmul_(s_coef, z)
    return x0.clamp(-1, 1)


def _run_codec(prior: Prior, op, y: torch.Tensor, ts: list[int], eta: float, eta_b: float, sigma_y: float,
               generator: torch.Generator | list[torch.Generator] | None, progress: bool,
               callback: Callback | None, clip: bool) -> torch.Tensor:
    device = prior.device
    batch = y.shape[0]
    ac = prior.alphas_cumprod
    abar = [float(ac[t]) for t in ts]
    t_dev = timestep_batches(ts, batch, device)
    z = torch.empty_like(y)

    # Start from the decoded image y0 noised to the first timestep.
    randn(z, generator)
    x = math.sqrt(abar[0]) * y + math.sqrt(1 - abar[0]) * z
    steps = len(ts)
    out = None
    for i in step_range(steps, progress, "DDRM-JPEG"):
        eps = prior(x, t_dev[i])
        x0 = torch.add(x, eps, alpha=-math.sqrt(1 - abar[i])).mul_(1 / math.sqrt(abar[i]))
        if clip:
            x0.clamp_(-1, 1)
        if callback is not None:
            callback(i, ts[i], x0)
        # η_b x̃ + (1 - η_b) x̂0 with x̃ = x̂0 - J(x̂0) + y0.
        guided = torch.add(x0, torch.sub(y, op.J(x0).to(torch.float32)), alpha=eta_b)
        if i == steps - 1:
            out = guided
            break
        a_next = abar[i + 1]
        randn(z, generator)
        noise = math.sqrt(1 - a_next)
        x = guided.mul_(math.sqrt(a_next)).add_(z, alpha=noise * eta).add_(eps, alpha=noise * (1 - eta))
    return out.clamp(-1, 1)
