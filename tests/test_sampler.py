"""DDRM sampler: exact Gaussian priors, oracle priors, the schedule, determinism and validation."""

from __future__ import annotations

import gc
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import operators
from conftest import GaussianPrior, linear_alphas_cumprod, make_oracle_prior
from ddrm_kit import Prior, ddrm, timesteps
from ddrm_kit import sampling
from ddrm_kit.errors import DDRMError
from operators.codec import CodecOperator

SHAPE = (1, 4, 4)
N = 16


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest.py)


AC = linear_alphas_cumprod()
# The shared analytic priors (conftest.py): the smooth 1x4x4 Gaussian, and the oracle that predicts x.
gaussian = GaussianPrior.smooth
oracle = make_oracle_prior


def draw(g: GaussianPrior, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(N, generator=gen, dtype=torch.float64)
    return (g.mu + torch.linalg.cholesky(g.sigma) @ z).float().reshape(1, *SHAPE)


def observe(op, x: torch.Tensor, sigma_y: float, seed: int = 1) -> torch.Tensor:
    y = op.H(x)
    return y + sigma_y * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))


def spectral(op) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense V (columns = right singular vectors) and the singular values padded to n."""
    v = op.V(torch.eye(N)).reshape(N, N).double().T
    s = torch.zeros(N, dtype=torch.float64)
    sv = op.singulars().double()
    s[: sv.numel()] = sv
    return v, s


def ddrm_law(g: GaussianPrior, op, y: torch.Tensor, steps: int, eta: float, eta_b: float, sigma_y: float):
    """Exact mean and covariance of DDRM's output under a Gaussian prior.

    Every DDRM update is affine in the state plus independent Gaussian noise, so the law of the
    state is propagated in closed form, entry by entry as in docs/design.md's table (float64, dense).
    """
    v, s = spectral(op)
    m = op.singulars().numel()
    ybar = torch.zeros(N, dtype=torch.float64)
    uty = op.Ut(y).double().reshape(-1)
    ybar[:m] = torch.where(s[:m] > 0, uty / torch.where(s[:m] > 0, s[:m], 1), 0)
    ts = timesteps(steps, len(AC))
    sig = [math.sqrt((1 - float(AC[t])) / float(AC[t])) for t in ts]
    c = math.sqrt(1 - eta**2)
    mean = torch.zeros(N, dtype=torch.float64)
    var = torch.zeros(N, dtype=torch.float64)
    for k in range(N):
        if s[k] > 0 and s[k] * sig[0] > sigma_y:
            mean[k], var[k] = ybar[k], sig[0] ** 2 - sigma_y**2 / s[k] ** 2
        else:
            var[k] = sig[0] ** 2
    cov = torch.diag(var)
    for i, t in enumerate(ts):
        r, cvec = g.x0(torch.zeros(N), t)
        mt = v.T @ r @ v  # x̄0 = Mt x̄ + ct in spectral coordinates
        ct = v.T @ cvec
        if i == len(ts) - 1:
            return v @ (mt @ mean + ct), v @ mt @ cov @ mt.T @ v.T
        sn = sig[i + 1]
        alpha, beta, gamma, delta = (torch.zeros(N, dtype=torch.float64) for _ in range(4))
        for k in range(N):
            if s[k] > 0 and s[k] * sn > sigma_y:  # noisier than y
                alpha[k], gamma[k] = 1 - eta_b, eta_b
                delta[k] = math.sqrt(sn**2 - eta_b**2 * sigma_y**2 / s[k] ** 2)
            elif s[k] > 0 and s[k] * sn < sigma_y:  # less noisy than y
                w = sn * c * s[k] / sigma_y
                alpha[k], gamma[k], delta[k] = 1 - w, w, sn * eta
            else:  # null space
                alpha[k], beta[k], delta[k] = 1.0, sn * c, sn * eta
        # x̄' = α x̄0 + β ε̄ + γ ȳ + δ z with ε̄ = (x̄ - x̄0) / σ.
        a_mat = torch.diag(alpha) @ mt + torch.diag(beta / sig[i]) @ (torch.eye(N) - mt)
        b_vec = alpha * ct - beta * ct / sig[i] + gamma * ybar
        mean = a_mat @ mean + b_vec
        cov = a_mat @ cov @ a_mat.T + torch.diag(delta**2)
    raise AssertionError("unreachable")


class Quantise(CodecOperator):
    """A toy codec: J(x) = round(4x) / 4 (decode∘encode is idempotent)."""

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.image_shape = image_shape

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 4)

    def decode(self, coeffs: torch.Tensor) -> torch.Tensor:
        return coeffs / 4


# ---------------------------------------------------------------------------------------------


def test_schedule_papers_20_steps():
    assert timesteps(20, 1000) == list(range(950, -1, -50))
    assert timesteps(1, 1000) == [0]
    assert timesteps(20, 1000, t_start=300) == list(range(285, -1, -15))


@pytest.mark.parametrize("steps", [3, 7, 30, 999, 1000])
def test_schedule_exact_count_when_not_dividing(steps):
    ts = timesteps(steps, 1000)
    assert len(ts) == steps == len(set(ts))
    assert ts == sorted(ts, reverse=True) and ts[0] <= 999 and ts[-1] == 0


@pytest.mark.parametrize("name", ["deno", "sr2", "inp_random50"])
def test_noiseless_measured_components_equal_ybar(name):
    g = gaussian()
    op = operators.get_operator(name, SHAPE)
    x = draw(g)
    y = observe(op, x, 0.0)
    batch = 256
    out = ddrm(Prior(g, AC), op, y.expand(batch, *y.shape[1:]), steps=20,
               generator=torch.Generator().manual_seed(0), progress=False)
    m = op.singulars().numel()
    ybar = op.Ut(y) / op.singulars()
    # The last prediction is made at t = 0, where the state carries noise of std σ_0 = 0.01.
    sigma0 = math.sqrt((1 - float(AC[0])) / float(AC[0]))
    err = (op.Vt(out)[:, :m] - ybar).abs().max().item()
    assert err < 6 * sigma0
    # ... and the measurements themselves are reproduced.
    assert (op.H(out) - y).abs().max().item() < 6 * sigma0


@pytest.mark.parametrize(
    ("name", "sigma_y", "eta", "eta_b"),
    [("sr2", 0.0, 0.85, 1.0), ("inp_random50", 0.0, 0.5, 0.7), ("deno", 0.3, 0.3, 1.0), ("sr2", 0.1, 0.85, 0.6)],
)
def test_gaussian_mean_and_covariance_match_closed_form(name, sigma_y, eta, eta_b):
    g = gaussian()
    op = operators.get_operator(name, SHAPE)
    y = observe(op, draw(g), sigma_y)
    batch = 4000
    out = ddrm(Prior(g, AC), op, y.expand(batch, *y.shape[1:]), steps=20, eta=eta, eta_b=eta_b, sigma_y=sigma_y,
               generator=torch.Generator().manual_seed(3), progress=False).reshape(batch, N).double()
    mean, cov = ddrm_law(g, op, y, 20, eta, eta_b, sigma_y)
    emp_mean, emp_cov = out.mean(0), torch.cov(out.T)
    d = cov.diagonal().clamp_min(0)
    assert ((emp_mean - mean).abs() <= 5 * (d / batch).sqrt() + 2e-4).all()
    cov_se = ((d[:, None] * d[None] + cov**2) / batch).sqrt()
    assert ((emp_cov - cov).abs() <= 6 * cov_se + 2e-5).all()


def test_gaussian_samples_are_stable_across_seeds():
    g = gaussian()
    op = operators.get_operator("sr2", SHAPE)
    y = observe(op, draw(g), 0.0)
    batch = 3000
    runs = [ddrm(Prior(g, AC), op, y.expand(batch, *y.shape[1:]), generator=torch.Generator().manual_seed(s),
                 progress=False).reshape(batch, N).double() for s in (10, 11)]
    sd = runs[0].std(0)
    assert ((runs[0].mean(0) - runs[1].mean(0)).abs() <= 6 * sd * math.sqrt(2 / batch) + 1e-4).all()
    assert (torch.cov(runs[0].T) - torch.cov(runs[1].T)).abs().max() < 0.1 * sd.max() ** 2


def test_noiseless_null_space_mean_tends_to_conditional_mean():
    # With eta_b = 1 the measured entries are pinned to ȳ; with more (stochastic) steps the null-space
    # mean approaches the Gaussian conditional mean E[x | Hx = y].
    g = gaussian()
    op = operators.get_operator("sr2", SHAPE)
    x = draw(g, seed=5)
    y = observe(op, x, 0.0)
    a = op.H(torch.eye(N).reshape(N, *SHAPE)).reshape(N, -1).double().T  # dense H
    k = g.sigma @ a.T @ torch.linalg.inv(a @ g.sigma @ a.T)
    cond_mean = g.mu + k @ (y.double().reshape(-1) - a @ g.mu)
    errs = []
    for steps in (20, 200):
        mean, _ = ddrm_law(g, op, y, steps, 1.0, 1.0, 0.0)
        errs.append((mean - cond_mean).abs().max().item())
    assert errs[1] < 0.5 * errs[0] and errs[1] < 0.01
    batch = 1000
    out = ddrm(Prior(g, AC), op, y.expand(batch, *y.shape[1:]), steps=200, eta=1.0,
               generator=torch.Generator().manual_seed(0), progress=False).reshape(batch, N).double()
    assert (out.mean(0) - cond_mean).abs().max() < 0.02


@pytest.mark.parametrize("name", ["deno", "sr2", "sr4", "inp_random50", "inp_box", "color", "deblur_gauss"])
@pytest.mark.parametrize("sigma_y", [0.0, 0.1])
def test_oracle_prior_returns_true_image(name, sigma_y):
    shape = (3, 8, 12)
    x = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0)) * 1.8 - 0.9
    op = operators.get_operator(name, shape)
    y = observe(op, x, sigma_y)
    out = ddrm(oracle(x), op, y, sigma_y=sigma_y, generator=torch.Generator().manual_seed(1), progress=False)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.allclose(out, x, atol=1e-4)


@pytest.mark.parametrize("name", ["toy", "jpeg75", "jpeg10", "quant3"])
def test_codec_oracle_returns_x_plus_eta_b_correction(name):
    shape = (3, 13, 10)  # not whole JPEG blocks or MCUs
    x = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    op = Quantise(shape) if name == "toy" else operators.get_operator(name, shape)
    y0 = op.J(x + 0.05)  # a decoded image the oracle's x does not reproduce exactly
    seen, preds = [], []

    def callback(i, t, x0):
        seen.append(t)
        preds.append(x0)

    out = ddrm(oracle(x), op, y0, generator=torch.Generator().manual_seed(1), progress=False, callback=callback)
    assert seen == list(range(285, -1, -15))  # DDRM-JPEG starts at t0 = 300
    x0 = preds[-1]
    assert torch.allclose(x0, x, atol=1e-4)
    # J is a quantiser: apply it to the prediction itself, which equals x only up to float rounding.
    assert torch.allclose(out, (x0 + 0.4 * (y0 - op.J(x0))).clamp(-1, 1), atol=1e-5)
    preds.clear()
    out = ddrm(oracle(x), op, y0, eta=0.5, eta_b=1.0, progress=False, callback=callback)
    assert torch.allclose(out, (preds[-1] + y0 - op.J(preds[-1])).clamp(-1, 1), atol=1e-5)


@pytest.mark.parametrize("name", ["color", "sr2", "jpeg75"])
@pytest.mark.parametrize("clip", [False, True])
def test_clip_denoised_clamps_every_prediction(name, clip):
    shape = (3, 8, 16)
    # A prior that insists on an image outside [-1, 1]: its x̂0 is x at every step.
    x = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0)) * 2.0
    op = operators.get_operator(name, shape)
    y = op.J(x) if name == "jpeg75" else op.H(x)
    preds = []
    ddrm(oracle(x), op, y, steps=5, generator=torch.Generator().manual_seed(1), progress=False,
         callback=lambda i, t, x0: preds.append(x0.clone()), clip_denoised=clip)
    assert len(preds) == 5 and (x.abs() > 1.5).any()
    want = x.clamp(-1, 1) if clip else x
    for x0 in preds:
        assert torch.allclose(x0, want, atol=1e-3)


def test_exactly_steps_evaluations_and_callback():
    g = gaussian()
    calls = []

    def counted(x, t):
        calls.append(t.clone())
        return g(x, t)

    op = operators.get_operator("sr2", SHAPE)
    y = observe(op, draw(g), 0.0).expand(3, 1, 2, 2)
    seen = []
    out = ddrm(Prior(counted, AC), op, y, steps=7, progress=False,
               callback=lambda i, t, x0: seen.append((i, t, tuple(x0.shape))))
    assert len(calls) == 7 and all(c.dtype == torch.long and c.shape == (3,) for c in calls)
    assert [int(c[0]) for c in calls] == timesteps(7, 1000)
    assert seen == [(i, t, (3, *SHAPE)) for i, t in enumerate(timesteps(7, 1000))]
    assert out.shape == (3, *SHAPE)


def test_low_precision_prior_output_is_float32():
    g = gaussian()

    def half(x, t):
        return g(x, t).to(torch.bfloat16)

    op = operators.get_operator("deno", SHAPE)
    y = observe(op, draw(g), 0.0)
    prior = Prior(half, AC, dtype=torch.bfloat16)
    assert prior(y, torch.zeros(1, dtype=torch.long)).dtype == torch.float32
    assert ddrm(prior, op, y, steps=5, progress=False).dtype == torch.float32


@pytest.mark.parametrize("codec", [False, True])
def test_determinism(codec):
    g = gaussian()
    op = Quantise(SHAPE) if codec else operators.get_operator("inp_random50", SHAPE)
    y = op.J(draw(g)) if codec else observe(op, draw(g), 0.05)
    kw = {} if codec else {"sigma_y": 0.05}

    def run(seed):
        return ddrm(Prior(g, AC), op, y, steps=10, generator=torch.Generator().manual_seed(seed), progress=False, **kw)

    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


@pytest.mark.parametrize("name", ["sr4", "deblur_gauss", "inp_random50", "color", "cs4", "jpeg75"])
def test_no_host_sync_inside_the_step_loop(host_syncs, name):
    # On a GPU every .item()/bool()/float() of a tensor stalls the stream; none may run between the
    # first and the last network evaluation (sampler and operator alike).
    in_loop, syncs = host_syncs

    def eps(xt, t):
        in_loop["on"] = True
        return torch.zeros_like(xt)

    shape = (3, 16, 16)
    op = operators.get_operator(name, shape)
    x = torch.rand((1, *shape), generator=torch.Generator().manual_seed(0)) * 2 - 1
    codec = isinstance(op, CodecOperator)
    y = op.J(x) if codec else op.H(x)
    for sigma_y in [0.0] if codec else [0.0, 0.1]:
        ddrm(Prior(eps, AC), op, y, steps=4, sigma_y=sigma_y, progress=False)
        in_loop["on"] = False
    assert syncs == []


def test_progress_bar_toggle(capsys):
    g = gaussian()
    op = operators.get_operator("deno", SHAPE)
    y = observe(op, draw(g), 0.0)
    ddrm(Prior(g, AC), op, y, steps=3, progress=False)
    assert "DDRM" not in capsys.readouterr().err
    ddrm(Prior(g, AC), op, y, steps=3, progress=True)
    assert "DDRM" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"steps": 1001}, "steps"), ({"sigma_y": -0.1}, "sigma_y"),
     ({"sigma_y": float("nan")}, "sigma_y"), ({"eta": 1.5}, "eta"), ({"eta_b": -0.1}, "eta_b")],
)
def test_validation_errors(kwargs, match):
    g = gaussian()
    op = operators.get_operator("sr2", SHAPE)
    y = observe(op, draw(g), 0.0)
    with pytest.raises(DDRMError, match=match) as err:
        ddrm(Prior(g, AC), op, y, progress=False, **kwargs)
    assert "\n" not in str(err.value)


def test_shape_and_type_errors():
    g = gaussian()
    op = operators.get_operator("sr2", SHAPE)
    prior = Prior(g, AC)
    with pytest.raises(DDRMError, match="batch dimension"):
        ddrm(prior, op, torch.zeros(1, 2, 2), progress=False)
    with pytest.raises(DDRMError, match=r"measures \(B, 1, 2, 2\)"):
        ddrm(prior, op, torch.zeros(1, 1, 4, 4), progress=False)
    with pytest.raises(DDRMError, match="codec"):
        ddrm(prior, Quantise(SHAPE), torch.zeros(1, *SHAPE), sigma_y=0.1, progress=False)
    with pytest.raises(DDRMError, match="op must be"):
        ddrm(prior, object(), torch.zeros(1, 1, 2, 2), progress=False)
    rgb = Prior(g, AC, channels=3)
    with pytest.raises(DDRMError, match="3-channel"):
        ddrm(rgb, op, torch.zeros(1, 1, 2, 2), progress=False)
    with pytest.raises(ValueError):  # DDRMError is a ValueError for callers that do not import ddrm_kit
        ddrm(prior, op, torch.zeros(1, 1, 4, 4), progress=False)


def test_example_sr4_tiny_unet(tmp_path):
    path = Path(__file__).resolve().parents[1] / "examples" / "sr4_tiny_unet.py"
    spec = importlib.util.spec_from_file_location("sr4_tiny_unet", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "scheduler_config.json").is_file()
    # H_pinv of block averaging repeats each block's mean: a fixed number for the example's image
    assert results["psnr_pinv"] == pytest.approx(26.6466, abs=1e-4)
    # the last prediction is made at σ_0 = 0.01, where the measured entries (s = 1/4) carry only that noise
    assert results["consistency"] < 0.05


def test_import_does_not_load_torch():
    code = "import sys, ddrm_kit; assert 'torch' not in sys.modules; ddrm_kit.ddrm; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["jpeg10", "quant3"])
def test_codec_built_without_image_shape_takes_the_size_of_y(name):
    shape = (3, 13, 10)
    x = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    sized = operators.get_operator(name, shape)
    any_size = operators.JPEG(quality=10) if name == "jpeg10" else operators.Quantize(3)
    assert any_size.image_shape is None
    y0 = sized.J(x + 0.05)

    def run(op):
        return ddrm(oracle(x), op, y0, steps=4, generator=torch.Generator().manual_seed(1), progress=False)

    assert torch.equal(run(any_size), run(sized))
    assert any_size.image_shape is None  # the caller's operator is not changed
    with pytest.raises(DDRMError, match="without a batch dimension: pass y.unsqueeze") as err:
        ddrm(oracle(x), any_size, y0[0], progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(DDRMError, match=r"y must be the decoded image batch \(B, C, H, W\)"):
        ddrm(oracle(x), any_size, y0.flatten(1), progress=False)


def test_grey_codec_of_any_size_restores_like_a_sized_one():
    shape = (3, 16, 24)
    x = torch.rand((1, *shape), generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    sized = operators.GreyCodec(operators.JPEG(quality=10, image_shape=(1, 16, 24)))
    any_size = operators.GreyCodec(operators.JPEG(quality=10))
    assert any_size.image_shape is None
    y0 = sized.J(x)
    runs = [ddrm(oracle(x), op, y0, steps=4, generator=torch.Generator().manual_seed(1), progress=False)
            for op in (any_size, sized)]
    assert torch.equal(*runs)


def test_ddrm_leaves_the_callers_operator_where_it_is():
    op = operators.get_operator("inp_random50", SHAPE)  # float64 buffers on the CPU
    before = dict(op.named_buffers())
    versions = {name: b._version for name, b in before.items()}
    g = gaussian()
    y = observe(op, draw(g), 0.0)
    ddrm(Prior(g, AC), op, y, steps=3, progress=False)
    after = dict(op.named_buffers())
    # the same tensors, where they were, never written to
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    assert all(b.device.type == "cpu" for b in after.values()) and after["_singulars"].dtype == torch.float64
    assert {name: b._version for name, b in after.items()} == versions


def test_device_copy_is_made_once_and_follows_changes():
    """The sampler's copy of an operator on another device (meta here: a device move that needs no GPU)."""
    meta = torch.device("meta")
    op = operators.get_operator("sr2", SHAPE)
    buffers = dict(op.named_buffers())
    assert sampling.on_device(op, torch.device("cpu")) is op  # already there: no copy
    moved = sampling.on_device(op, meta)
    assert moved is not op and all(b.device == meta for b in moved.buffers())
    assert all(b is buffers[k] and b.device.type == "cpu" for k, b in op.named_buffers())
    assert sampling.on_device(op, meta) is moved  # cached
    op._singulars.mul_(1.0)  # an in-place change: a fresh copy
    again = sampling.on_device(op, meta)
    assert again is not moved and sampling.on_device(op, meta) is again
    op.float()  # new tensors: a fresh copy, in the new dtype
    single = sampling.on_device(op, meta)
    assert single is not again and single.singulars().dtype == torch.float32
    with torch.inference_mode():  # inference tensors keep no version counter: copied on every call
        frozen = operators.get_operator("sr2", SHAPE)
    assert sampling.on_device(frozen, meta) is not sampling.on_device(frozen, meta)
    op.to(meta)  # moved by its owner: the sampler's copy is dropped
    assert sampling.on_device(op, meta) is op and meta not in sampling._DEVICE_COPIES[op]
    gc.collect()
    count = len(sampling._DEVICE_COPIES)
    del op, frozen
    gc.collect()
    assert len(sampling._DEVICE_COPIES) == count - 2  # a copy lives no longer than its operator
