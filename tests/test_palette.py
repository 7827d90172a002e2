"""Palette: the uncrop operator, the condition image, Algorithm 2's exact law under a jointly Gaussian
model, its strided form, and Palette model folders (the conditional UNet, palette.json, the loader)."""

from __future__ import annotations

import doctest
import functools
import json
import math

import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

import ddrm_kit
import operators
from conftest import linear_alphas_cumprod, tiny_unet
from ddrm_kit import Prior, load_palette_prior, load_prior, palette, palette_condition, timesteps
from ddrm_kit.errors import DDRMError, ModelNotFoundError, UnsupportedModelError
from ddrm_kit.palette_model import (PALETTE_JSON, ConditionalUNet, PaletteTask, read_palette_task,
                                    write_palette_task)
from ddrm_kit.prior import _UNetEps
from operators import OperatorError
from operators.inpaint import Inpainting, Uncropping
from operators.testing import check_svd_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest.py)

AC = linear_alphas_cumprod()  # T = 1000, DDPM's linear schedule
T = len(AC)
D = torch.float64


# ---- a jointly Gaussian (x0, c) model and its exact conditional ε-predictor -------------------------


def smooth_gaussian(shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, Sigma)`` of smooth images with correlated channels (std ~0.12); conftest's smooth prior for 1x4x4."""
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    p = torch.stack([yy.flatten(), xx.flatten()], 1).to(D)
    spatial = torch.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / 4.0)
    channel = 0.5 * torch.ones(c, c, dtype=D) + 0.5 * torch.eye(c, dtype=D)
    n = c * h * w
    sigma = 0.012 * torch.kron(channel, spatial) + 0.002 * torch.eye(n, dtype=D)
    return 0.1 * torch.sin(torch.arange(n, dtype=D)), sigma


class JointGaussian:
    """``x0 ~ N(mu, Sigma)`` and ``c = palette_condition(op, H x0 + sigma_y n) = A x0 + e``, ``e ~ N(0, R)``.

    ``A = H⁺H``; ``R = sigma_y² H⁺H⁺ᵀ``, plus ``I - A`` for a full-size observation (the N(0, 1) fill of
    the null space, independent of x0). With ``y_t = a x0 + b ε`` (``a = sqrt(ᾱ_t)``, ``b = sqrt(1 - ᾱ_t)``),
    ``(ε, y_t, c)`` is jointly Gaussian: ``Cov(y_t) = a²Σ + b²I``, ``Cov(y_t, c) = aΣAᵀ``,
    ``Cov(c) = AΣAᵀ + R``, ``Cov(ε, y_t) = bI``, ``Cov(ε, c) = 0``, so
    ``E[ε | y_t, c] = [bI, 0] Cov([y_t; c])⁺ [y_t - a mu; c - A mu] = K_t (y_t - a mu) + L_t (c - A mu)``.
    """

    def __init__(self, name: str, shape: tuple[int, int, int], sigma_y: float) -> None:
        self.op = operators.get_operator(name, shape)
        self.shape, self.sigma_y = shape, sigma_y
        self.mu, self.sigma = smooth_gaussian(shape)
        n = self.n = self.mu.numel()
        op = self.op.double()
        self.a_mat = op.H_pinv(op.H(torch.eye(n, dtype=D).reshape(n, *shape))).reshape(n, n).T
        m = math.prod(op.measurement_shape)
        pinv = op.H_pinv(torch.eye(m, dtype=D).reshape(m, *op.measurement_shape)).reshape(m, n).T
        self.r_mat = sigma_y**2 * pinv @ pinv.T
        if op.observation_kind == "full_image":
            self.r_mat = self.r_mat + torch.eye(n, dtype=D) - self.a_mat
        a = AC.sqrt()[:, None, None]
        b = (1 - AC).sqrt()[:, None, None]
        eye = torch.eye(n, dtype=D)
        sa = self.sigma @ self.a_mat.T
        cov = torch.cat([torch.cat([a**2 * self.sigma + b**2 * eye, (a * sa).expand(T, n, n)], 2),
                         torch.cat([(a * sa.T).expand(T, n, n), (self.a_mat @ sa + self.r_mat).expand(T, n, n)], 2)], 1)
        gain = torch.cat([b * eye, torch.zeros(T, n, n, dtype=D)], 2) @ torch.linalg.pinv(cov, hermitian=True)
        self.k, self.l = gain[:, :, :n], gain[:, :, n:]
        # ε = [y_t, c] @ W_t + w_t in float32, one matmul per call: the sampling tests call it 1000 times
        self.w = gain.transpose(1, 2).float()
        self.w0 = (-(a[:, :, 0] * (self.k @ self.mu)) - self.l @ (self.a_mat @ self.mu)).float()

    def eps(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        k = int(t[0])  # palette() evaluates one timestep for the whole batch
        yc = torch.cat([x.reshape(x.shape[0], -1), c.reshape(c.shape[0], -1)], 1)
        return torch.addmm(self.w0[k], yc, self.w[k]).reshape(x.shape)

    def prior(self) -> Prior:
        return Prior(self.eps, AC, channels=self.shape[0], conditional=True)

    def draw_c(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """An observation ``y`` of a draw of x0 and the condition ``c`` palette_condition makes of it."""
        gen = torch.Generator().manual_seed(seed)
        x = self.mu + torch.linalg.cholesky(self.sigma) @ torch.randn(self.n, generator=gen, dtype=D)
        y = self.op.H(x.float().reshape(1, *self.shape))
        y = y + self.sigma_y * torch.randn(y.shape, generator=gen)
        return y, palette_condition(self.op, y, gen)

    def conditional(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and covariance of x0 given c (Schur complement)."""
        gain = self.sigma @ self.a_mat.T @ torch.linalg.pinv(self.a_mat @ self.sigma @ self.a_mat.T + self.r_mat,
                                                             hermitian=True)
        mean = self.mu + gain @ (c.double().reshape(-1) - self.a_mat @ self.mu)
        return mean, self.sigma - gain @ self.a_mat @ self.sigma

    def law(self, c: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean and covariance of palette()'s output: each step is affine in y plus independent noise."""
        eye = torch.eye(self.n, dtype=D)
        ts = timesteps(steps, T)
        abar = [float(AC[t]) for t in ts] + [1.0]
        mean, cov = torch.zeros(self.n, dtype=D), eye.clone()
        rc = self.l[ts] @ (c.double().reshape(-1) - self.a_mat @ self.mu)
        for i, t in enumerate(ts):
            a_t, a_s = abar[i], abar[i + 1]
            alpha, beta = a_t / a_s, 1 - a_t / a_s
            # ε̂ = K y + h, y' = (y - β/sqrt(1-ᾱ) ε̂) / sqrt(α) + sqrt(v) z
            h = -math.sqrt(a_t) * self.k[t] @ self.mu + rc[i]
            g = (eye - beta / math.sqrt(1 - a_t) * self.k[t]) / math.sqrt(alpha)
            mean = g @ mean - beta / math.sqrt(1 - a_t) / math.sqrt(alpha) * h
            cov = g @ cov @ g.T
            if i < len(ts) - 1:
                cov = cov + (beta if steps == T else beta * (1 - a_s) / (1 - a_t)) * eye
        return mean, cov


@functools.lru_cache(maxsize=None)
def joint(name: str, shape: tuple[int, int, int], sigma_y: float) -> JointGaussian:
    """One :class:`JointGaussian` per case (its 1000 gains take a moment to build)."""
    return JointGaussian(name, shape, sigma_y)


def sample(model: JointGaussian, y: torch.Tensor, steps: int | None, batch: int, seed: int = 3) -> torch.Tensor:
    """``batch`` palette() samples (flattened) given the single observation ``y``.

    palette() makes each image's condition itself. For a full-size observation every image gets its
    own fill noise, but that noise lives in the null space of H and is independent of x0, so
    p(x0 | c) is the same for all of them (the exact predictor ignores it).
    """
    out = palette(model.prior(), model.op, y.expand(batch, *y.shape[1:]), steps=steps,
                  generator=torch.Generator().manual_seed(seed), progress=False, clip_denoised=False)
    return out.reshape(batch, -1).double()


def assert_law(out: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> None:
    """Sample mean and covariance within sampling error of (mean, cov), as tests/test_sampler.py checks DDRM's."""
    batch = out.shape[0]
    d = cov.diagonal().clamp_min(0)
    mean_err = (out.mean(0) - mean).abs()
    assert (mean_err <= 5 * (d / batch).sqrt() + 2e-4).all(), mean_err.max()
    cov_se = ((d[:, None] * d[None] + cov**2) / batch).sqrt()
    cov_err = (torch.cov(out.T) - cov).abs()
    assert (cov_err <= 6 * cov_se + 2e-5).all(), (cov_err / (cov_se + 1e-12)).max()


LAW_CASES = [("sr2", (1, 4, 4), 0.1), ("inp_box", (1, 4, 4), 0.0), ("uncrop", (1, 4, 4), 0.05),
             ("color", (3, 2, 2), 0.1)]


@pytest.mark.parametrize(("name", "shape", "sigma_y"), LAW_CASES)
def test_full_schedule_samples_the_true_conditional(name, shape, sigma_y):
    model = joint(name, shape, sigma_y)
    y, c = model.draw_c()
    mean, cov = model.conditional(c)
    # Algorithm 2 with the exact predictor is a discretisation: on T = 1000 its closed-form law is
    # within a fraction of the sampling error of p(x0 | c) (docs/design.md, "Palette") ...
    law_mean, law_cov = model.law(c, T)
    batch = 4000
    d = cov.diagonal().clamp_min(0)
    assert ((law_mean - mean).abs() <= 0.1 * (d / batch).sqrt() + 1e-7).all()
    assert ((law_cov - cov).abs() <= ((d[:, None] * d[None] + cov**2) / batch).sqrt() + 1e-7).all()
    # ... so the samples must match the true conditional itself.
    assert_law(sample(model, y, None, batch), mean, cov)


@pytest.mark.parametrize(("name", "shape", "sigma_y", "steps"),
                         [("sr2", (1, 4, 4), 0.1, 20), ("color", (3, 2, 2), 0.1, 50)])
def test_strided_samples_match_the_closed_form_law(name, shape, sigma_y, steps):
    model = joint(name, shape, sigma_y)
    y, c = model.draw_c(seed=1)
    mean, cov = model.conditional(c)
    law_mean, law_cov = model.law(c, steps)
    # The true conditional mean is a fixed point of every step's mean map: the strided mean is exact ...
    assert (law_mean - mean).abs().max() < 1e-6
    # ... but ancestral steps with the posterior variance lose spread (Var[x0 | y_t] is dropped): fewer
    # steps, less covariance; the law tends to p(x0 | c) as steps -> T.
    assert (law_cov.diagonal() < cov.diagonal()).all()
    assert (model.law(c, 4 * steps)[1] - cov).abs().max() < (law_cov - cov).abs().max()
    assert_law(sample(model, y, steps, 4000), law_mean, law_cov)


def test_exact_predictor_is_the_conditional_gaussian_denoiser():
    # The joint-covariance form equals E[ε | y_t] under the prior N(m_c, S_c) of x0 given c.
    model = joint("sr2", (1, 4, 4), 0.1)
    _, c = model.draw_c()
    m_c, s_c = model.conditional(c)
    x = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for t in (0, 300, 999):
        a = float(AC[t])
        want = math.sqrt(1 - a) * torch.linalg.solve(a * s_c + (1 - a) * torch.eye(16, dtype=D),
                                                     (x.reshape(5, -1).double() - math.sqrt(a) * m_c).T).T
        got = model.eps(x, torch.full((5,), t), c.expand(5, -1, -1, -1))
        torch.testing.assert_close(got.double().reshape(5, -1), want, atol=2e-6, rtol=1e-5)


# ---- Algorithm 2 verbatim and its strided form, step by step --------------------------------------


def reference(prior: Prior, c: torch.Tensor, steps: int, seed: int, clip: bool) -> torch.Tensor:
    """Palette's Algorithm 2 (steps = T), or DDPM's posterior N(μ̃(x̂0), β̃) between kept timesteps, in float64.

    With ``clip``, x̂0 is clamped to [-1, 1] and μ̃ is taken from it (the variance stays Algorithm 2's
    for steps = T).
    """
    ac = prior.alphas_cumprod
    ts = timesteps(steps, len(ac))
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(c.shape, generator=gen).double()
    for i, t in enumerate(ts):
        eps = prior(y.float(), torch.full((c.shape[0],), t), c).double()
        if steps == len(ac) and not clip:  # 1-indexed t+1 of the paper: γ = ᾱ_t, α = ᾱ_t / ᾱ_{t-1}
            gamma, alpha = float(ac[t]), float(ac[t] / (ac[t - 1] if t > 0 else 1.0))
            y = (y - (1 - alpha) / math.sqrt(1 - gamma) * eps) / math.sqrt(alpha)
            std = math.sqrt(1 - alpha)
        else:
            a_t = float(ac[t])
            a_s = float(ac[ts[i + 1]]) if i + 1 < len(ts) else 1.0
            beta = 1 - a_t / a_s
            x0 = (y - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            if clip:
                x0 = x0.clamp(-1, 1)
            y = math.sqrt(a_s) * beta / (1 - a_t) * x0 + math.sqrt(a_t / a_s) * (1 - a_s) / (1 - a_t) * y
            std = math.sqrt(beta if steps == len(ac) else beta * (1 - a_s) / (1 - a_t))
        if i < len(ts) - 1:
            y = y + std * torch.randn(c.shape, generator=gen).double()
    return y.clamp(-1, 1).float()


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("steps", [50, 7, 1])
def test_steps_follow_algorithm_2_and_the_posterior(steps, clip):
    ac = AC[::20].clone()  # a 50-step schedule
    prior = Prior(lambda x, t, c: 0.6 * x - 0.3 * c + 0.01 * t.view(-1, 1, 1, 1), ac, conditional=True)
    op = operators.get_operator("sr2", (3, 4, 6))
    y = torch.rand(2, 3, 2, 3, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    out = palette(prior, op, y, steps=None if steps == 50 else steps, generator=torch.Generator().manual_seed(5),
                  progress=False, clip_denoised=clip)
    torch.testing.assert_close(out, reference(prior, op.H_pinv(y), steps, 5, clip), atol=2e-5, rtol=1e-5)
    if clip and steps > 1:  # ε̂ here drives x̂0 out of [-1, 1]; with one step the final clamp is the same
        assert not torch.allclose(out, reference(prior, op.H_pinv(y), steps, 5, False), atol=1e-3)


def test_prior_sees_every_kept_timestep_with_the_condition():
    seen = []

    def eps(x, t, c):
        seen.append((t.clone(), c.clone()))
        return torch.zeros_like(x)

    op = operators.get_operator("sr2", (1, 4, 4))
    y = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    prior = Prior(eps, AC[:40].clone(), conditional=True)
    palette(prior, op, y, progress=False)
    assert [int(t[0]) for t, _ in seen] == list(range(39, -1, -1))
    assert all(t.shape == (3,) and t.dtype == torch.long and torch.equal(c, op.H_pinv(y)) for t, c in seen)
    seen.clear()
    palette(prior, op, y, steps=7, progress=False)
    assert [int(t[0]) for t, _ in seen] == timesteps(7, 40)


# ---- the condition image --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sr2", "color", "deblur_gauss", "jpeg75", "quant3"])
def test_condition_is_the_pseudo_inverse_or_the_decoded_image(name):
    shape = (3, 8, 8)
    op = operators.get_operator(name, shape)
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    codec = isinstance(op, operators.CodecOperator)
    y = op.J(x) if codec else op.H(x)
    gen = torch.Generator().manual_seed(1)
    c = palette_condition(op, y, gen)
    assert torch.equal(c, y if codec else op.H_pinv(y))
    assert torch.equal(torch.randn(3, generator=gen), torch.randn(3, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(("name", "params"), [("inp_box", {}), ("uncrop", {"side": "top", "fraction": 0.25}),
                                              ("inp_random50", {})])
def test_condition_fills_missing_pixels_with_the_generators_noise(name, params):
    shape = (3, 8, 6)
    op = operators.get_operator(name, shape, **params)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = op.H(x)
    c = palette_condition(op, y, [torch.Generator().manual_seed(s) for s in (7, 8, 9)])
    kept = op.mask.expand(shape).expand_as(x)
    assert torch.equal(c[kept], x[kept])
    for i, s in enumerate((7, 8, 9)):
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(s))
        assert torch.equal(c[i][~kept[i]], noise[~kept[i]])
    # one image's condition does not depend on its batch
    alone = palette_condition(op, y[1:2], [torch.Generator().manual_seed(8)])
    assert torch.equal(alone, c[1:2])


# ---- the sampler's behaviour: seeds, batches, progress, errors -------------------------------------


def tiny_case(name: str = "inp_box", batch: int = 3):
    model = joint(name, (1, 4, 4), 0.05)
    x = torch.rand(batch, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.4 - 0.2
    return model, model.op.H(x)


def test_determinism_and_batch_independence():
    model, y = tiny_case()
    prior = model.prior()

    def run(y, seeds):
        return palette(prior, model.op, y, steps=10, generator=[torch.Generator().manual_seed(s) for s in seeds],
                       progress=False)

    both = run(y, [4, 5, 6])
    assert torch.equal(both, run(y, [4, 5, 6]))
    assert not torch.allclose(both, run(y, [4, 5, 7]))
    torch.testing.assert_close(both[2:], run(y[2:], [6]), atol=1e-6, rtol=0)  # batched matmuls may round differently
    one = palette(prior, model.op, y, steps=10, generator=torch.Generator().manual_seed(4), progress=False)
    assert torch.equal(one, palette(prior, model.op, y, steps=10, generator=torch.Generator().manual_seed(4),
                                    progress=False))
    assert one.shape == y.shape[:1] + (1, 4, 4) and one.dtype == torch.float32


def test_restore_palette_averages_samples_drawn_in_turn():
    from ddrm_kit.palette_sampler import restore_palette

    model, y = tiny_case()
    prior = model.prior()
    gen = torch.Generator().manual_seed(8)
    first = palette(prior, model.op, y, steps=5, generator=gen, progress=False)
    second = palette(prior, model.op, y, steps=5, generator=gen, progress=False)
    mean = restore_palette(prior, model.op, y, steps=5, average=2, generator=torch.Generator().manual_seed(8),
                           progress=False)
    torch.testing.assert_close(mean, (first + second) / 2, rtol=0, atol=0)
    with pytest.raises(DDRMError, match="average must be a positive integer"):
        restore_palette(prior, model.op, y, average=0)


def test_progress_bar_toggle(capsys):
    model, y = tiny_case()
    palette(model.prior(), model.op, y, steps=3, progress=False)
    assert "Palette" not in capsys.readouterr().err
    palette(model.prior(), model.op, y, steps=3, progress=True)
    assert "Palette" in capsys.readouterr().err


def test_no_host_sync_inside_the_step_loop(host_syncs):
    in_loop, syncs = host_syncs

    def eps(x, t, c):
        in_loop["on"] = True
        return torch.zeros_like(x)

    op = operators.get_operator("uncrop", (3, 8, 8))
    palette(Prior(eps, AC[:30].clone(), conditional=True), op, op.H(torch.zeros(1, 3, 8, 8)), progress=False)
    assert syncs == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"steps": 1001}, "steps"),
     ({"generator": [torch.Generator()]}, "1 generators for a batch of 3"),
     ({"y": torch.zeros(12)}, "batch dimension"), ({"y": torch.zeros(3, 1, 4, 4)}, r"measures \(B, 12\)"),
     ({"op": object()}, "op must be"), ({"prior": "model"}, "ddrm_kit.Prior"),
     ({"prior": Prior(lambda x, t: x, AC)}, "not a conditional"),
     ({"prior": Prior(lambda x, t, c: x, AC, channels=3, conditional=True)}, "3-channel")],
)
def test_validation_errors(kwargs, match):
    model, y = tiny_case()
    args = {"prior": model.prior(), "op": model.op, "y": y, "progress": False} | kwargs
    with pytest.raises(DDRMError, match=match) as err:
        palette(**args)
    assert "\n" not in str(err.value)


def test_prior_passes_the_condition_only_to_a_conditional_model():
    x, t, c = torch.zeros(2, 1, 2, 2), torch.tensor([3, 4]), torch.ones(2, 1, 2, 2)
    cond = Prior(lambda x, t, c: x + c + t.view(-1, 1, 1, 1), AC, conditional=True)
    assert cond.conditional and torch.equal(cond(x, t, c)[:, 0, 0, 0], torch.tensor([4.0, 5.0]))
    plain = Prior(lambda x, t: x + 1, AC)
    assert not plain.conditional and torch.equal(plain(x, t), x + 1)
    with pytest.raises(DDRMError, match="sample it with ddrm_kit.palette"):
        cond(x, t)
    with pytest.raises(DDRMError, match="takes no condition"):
        plain(x, t, c)
    with pytest.raises(DDRMError, match="ddrm_kit.palette"):
        ddrm_kit.ddrm(cond, operators.get_operator("deno", (1, 2, 2)), x, steps=2, progress=False)


def test_lazy_exports_are_the_functions():
    from ddrm_kit import palette_model, palette_sampler

    assert ddrm_kit.palette is palette_sampler.palette
    assert ddrm_kit.palette_condition is palette_sampler.palette_condition
    assert ddrm_kit.load_palette_prior is palette_model.load_palette_prior
    assert {"palette", "palette_condition", "load_palette_prior"} <= set(dir(ddrm_kit))


# ---- the uncrop operator ---------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "fraction", "missing"), [
    ("right", 0.5, (slice(None), slice(3, None))), ("left", 1 / 3, (slice(None), slice(0, 2))),
    ("top", 0.25, (slice(0, 1), slice(None))), ("bottom", 0.75, (slice(1, None), slice(None)))])
def test_uncrop_masks_one_side(side, fraction, missing):
    shape = (2, 4, 6)
    op = operators.get_operator("uncrop", shape, side=side, fraction=fraction)
    assert isinstance(op, Uncropping) and isinstance(op, Inpainting) and op.observation_kind == "full_image"
    want = torch.ones(4, 6, dtype=torch.bool)
    want[missing] = False
    assert torch.equal(op.mask, want)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(op.H(x), x[:, :, want].reshape(2, -1))
    assert torch.equal(op.H_pinv(op.H(x)), x * want)
    check_svd_protocol(op.double())
    assert f"side={side!r}" in repr(op)
    assert operators.get_spec("uncrop").observation_kind == "full_image"


@pytest.mark.parametrize(("params", "shape", "match"), [
    ({"side": "middle"}, (3, 8, 8), "'left', 'right', 'top' or 'bottom'"),
    ({"fraction": 0.0}, (3, 8, 8), r"in \(0, 1\)"), ({"fraction": 1.0}, (3, 8, 8), r"in \(0, 1\)"),
    ({"fraction": 1.5}, (3, 8, 8), r"in \(0, 1\)"), ({"fraction": "half"}, (3, 8, 8), "a number"),
    ({"fraction": 0.05}, (3, 8, 8), "removes 0 of the 8 columns"),
    ({"side": "top", "fraction": 0.95}, (3, 8, 9), "removes 8 of the 8 rows")])
def test_uncrop_errors_are_one_line(params, shape, match):
    with pytest.raises(OperatorError, match=match) as err:
        operators.get_operator("uncrop", shape, **params)
    assert "\n" not in str(err.value)


def test_uncrop_docstring_example_runs():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(Uncropping, "Uncropping", globs={}):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted >= 4 and runner.failures == 0


# ---- Palette model folders ---------------------------------------------------------------------------


def tiny_conditional_unet(channels: int = 3, in_channels: int | None = None) -> UNet2DModel:
    return tiny_unet(in_channels or 2 * channels, channels, sample_size=8)


def save_model(folder, unet, layout: str = "root", task: PaletteTask | None = None, **scheduler) -> None:
    sched = DDPMScheduler(num_train_timesteps=100, **scheduler)
    if layout == "root":
        unet.save_pretrained(folder)
        sched.save_pretrained(folder)
    else:
        DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(folder)
    if task is not None:
        write_palette_task(folder, task)


@pytest.mark.parametrize("layout", ["root", "pipeline"])
def test_saved_model_loads_as_a_conditional_prior(tmp_path, layout):
    unet = tiny_conditional_unet()
    task = PaletteTask("uncrop", {"side": "left", "fraction": 0.25}, sigma_y=0.1)
    save_model(tmp_path, unet, layout, task)
    assert json.loads((tmp_path / PALETTE_JSON).read_text()) == {
        "operator": "uncrop", "params": {"side": "left", "fraction": 0.25}, "sigma_y": 0.1}
    assert read_palette_task(tmp_path) == task
    assert isinstance(task.build((3, 8, 8)), Uncropping) and task.build((3, 8, 8)).side == "left"
    prior = load_palette_prior(tmp_path, device="cpu")
    assert prior.conditional and prior.channels == 3 and prior.num_train_timesteps == 100
    gen = torch.Generator().manual_seed(0)
    x, c, t = torch.randn(2, 3, 8, 8, generator=gen), torch.randn(2, 3, 8, 8, generator=gen), torch.tensor([5, 90])
    with torch.no_grad():
        want = unet(torch.cat([c, x], 1), t).sample
    torch.testing.assert_close(prior(x, t, c), want, atol=1e-5, rtol=1e-5)
    # any size: padded as the unconditional adapter pads, here the concatenation
    x, c = torch.randn(2, 3, 7, 5, generator=gen), torch.randn(2, 3, 7, 5, generator=gen)
    with torch.no_grad():
        want = _UNetEps(unet, torch.ones(1), "epsilon")(torch.cat([c, x], 1), t)
    assert want.shape == x.shape
    torch.testing.assert_close(prior(x, t, c), want, atol=1e-5, rtol=1e-5)
    op = task.build((3, 8, 8))
    out = palette(prior, op, op.H(torch.zeros(1, 3, 8, 8)), steps=3, generator=torch.Generator().manual_seed(1),
                  progress=False)
    assert out.shape == (1, 3, 8, 8) and out.abs().max() <= 1


def test_a_v_prediction_model_gives_epsilon_at_y_t(tmp_path):
    """ε = sqrt(ᾱ) v + sqrt(1-ᾱ) y_t with y_t the noisy image, not the UNet's (c, y_t) input."""
    unet = tiny_conditional_unet()
    save_model(tmp_path, unet, task=PaletteTask("sr2"), prediction_type="v_prediction")
    prior = load_palette_prior(tmp_path, device="cpu", channels_last=False)
    ac = DDPMScheduler(num_train_timesteps=100).alphas_cumprod.float()
    gen = torch.Generator().manual_seed(0)
    x, c, t = torch.randn(2, 3, 8, 8, generator=gen), torch.randn(2, 3, 8, 8, generator=gen), torch.tensor([5, 90])
    with torch.no_grad():
        v = unet(torch.cat([c, x], 1), t).sample
    a = ac[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(prior(x, t, c), a.sqrt() * v + (1 - a).sqrt() * x, atol=1e-5, rtol=1e-5)
    with pytest.raises(UnsupportedModelError, match="needs alphas_cumprod"):
        ConditionalUNet(unet, prediction_type="v_prediction")


def test_model_folder_errors(tmp_path):
    plain = tmp_path / "ddrm_prior"
    save_model(plain, tiny_conditional_unet(in_channels=3))
    with pytest.raises(UnsupportedModelError, match="not a Palette model"):
        load_palette_prior(plain, device="cpu")
    write_palette_task(plain, PaletteTask("inp_box"))
    with pytest.raises(UnsupportedModelError, match="2 x 3 = 6 input channels"):
        load_palette_prior(plain, device="cpu")
    pal = tmp_path / "palette"
    save_model(pal, tiny_conditional_unet(), task=PaletteTask("sr2"))
    with pytest.raises(UnsupportedModelError, match=r"is a Palette model \(trained for sr2\), not a DDRM prior"):
        load_prior(pal, device="cpu")
    with pytest.raises(ModelNotFoundError, match="no such Palette model folder"):
        load_palette_prior(tmp_path / "missing", device="cpu")
    (pal / PALETTE_JSON).write_text(json.dumps({"op": "sr2"}))
    with pytest.raises(UnsupportedModelError, match="not a Palette marker"):
        read_palette_task(pal)
    (pal / PALETTE_JSON).write_text("{")
    with pytest.raises(UnsupportedModelError, match="cannot read"):
        load_palette_prior(pal, device="cpu")


@pytest.mark.parametrize(("args", "error", "match"), [
    (("sr_4x",), OperatorError, "did you mean sr4"), (("sr2", {"seed": 1}), DDRMError, "no parameter seed"),
    (("inp_mask", {"mask": torch.ones(4, 4)}), DDRMError, "cannot be recorded"),
    (("deblur",), DDRMError, "needs kernel="), (("sr2", {}, -0.1), DDRMError, "sigma_y"),
    (("sr2", {}, float("nan")), DDRMError, "sigma_y"), (("sr2", {}, "noisy"), DDRMError, "sigma_y")])
def test_task_errors_are_one_line(args, error, match):
    with pytest.raises(error, match=match) as err:
        PaletteTask(*args)
    assert "\n" not in str(err.value)
