"""The CUDA path: operators, the JPEG codec, the sampler and `ddrm solve` on a GPU against the CPU.

Every test here is marked ``cuda`` and skips without a CUDA device; `benchmarks/gpu_suite.py` runs
them (``pytest -m cuda``) the moment a GPU is lent.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import operators
from ddrm_kit import Prior, ddrm
from operators.codec import CodecOperator

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CUDA = torch.device("cuda")
AC = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
SHAPE = (3, 32, 32)


def _cases() -> list[tuple[str, tuple[int, int, int], dict]]:
    """Every concrete registered name with a shape and the parameters it needs."""
    out = []
    for name in operators.available():
        shape, params = SHAPE, {}
        if name in ("inp_lolcat", "inp_lorem"):
            shape = (3, 256, 256)
        if name == "inp_mask":
            params = {"mask": torch.rand(32, 32, generator=torch.Generator().manual_seed(0)) > 0.5}
        if name == "deblur":
            params = {"kernel": torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 8}
        out.append((name, shape, params))
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.cpu().double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


@pytest.mark.parametrize("name,shape,params", _cases(), ids=lambda c: c if isinstance(c, str) else "")
def test_operator_on_cuda_equals_cpu(name, shape, params):
    op = operators.get_operator(name, shape, **params)
    x = torch.rand((2, *shape), generator=torch.Generator().manual_seed(1)) * 2 - 1
    op_gpu = operators.get_operator(name, shape, **params).to(CUDA)
    if isinstance(op, CodecOperator):
        assert torch.equal(op_gpu.J(x.to(CUDA)).cpu(), op.J(x)), f"{name}: J differs on CUDA"
        return
    y = op.H(x)
    z = op.Vt(x)
    for what, gpu, cpu in (
        ("H", op_gpu.H(x.to(CUDA)), y),
        ("Vt", op_gpu.Vt(x.to(CUDA)), z),
        ("V", op_gpu.V(z.to(CUDA)), op.V(z)),
        ("Ut", op_gpu.Ut(y.to(CUDA)), op.Ut(y)),
        ("H_pinv", op_gpu.H_pinv(y.to(CUDA)), op.H_pinv(y)),
    ):
        assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
        assert _rel(gpu, cpu) <= 1e-5, f"{name}: {what} on CUDA differs by {_rel(gpu, cpu):.2e} (relative)"


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:4:4"])
@pytest.mark.parametrize("quality", [10, 75])
def test_jpeg_codec_on_cuda_is_bit_exact_with_cpu(quality, subsampling):
    op = operators.JPEG(quality=quality, subsampling=subsampling, image_shape=(3, 40, 56))
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(2)) * 2 - 1
    cpu = op.encode(x)
    gpu = op.to(CUDA).encode(x.to(CUDA))
    for a, b in zip(cpu.components, gpu.components, strict=True):
        assert torch.equal(a, b.cpu())
    reference = operators.JPEG(quality=quality, subsampling=subsampling, image_shape=(3, 40, 56))
    assert torch.equal(op.decode(gpu).cpu(), reference.decode(cpu))


def _shrink(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """An elementwise ε-predictor: the batch and the device cannot change its arithmetic."""
    return 0.3 * x


@pytest.mark.parametrize("name", ["sr4", "inp_random50", "jpeg10"])
def test_one_generator_per_image_batch_independence_and_determinism(name):
    op = operators.get_operator(name, SHAPE).to(CUDA)
    x = (torch.rand((3, *SHAPE), generator=torch.Generator().manual_seed(3)) * 2 - 1).to(CUDA)
    codec = isinstance(op, CodecOperator)
    y = op.J(x) if codec else op.H(x)
    kw = {} if codec else {"sigma_y": 0.05}
    prior = Prior(_shrink, AC, device=CUDA)

    def gens(seeds):
        return [torch.Generator(device=CUDA).manual_seed(s) for s in seeds]

    batch = ddrm(prior, op, y, steps=5, generator=gens([7, 8, 9]), progress=False, **kw)
    alone = ddrm(prior, op, y[1:2], steps=5, generator=gens([8]), progress=False, **kw)
    again = ddrm(prior, op, y, steps=5, generator=gens([7, 8, 9]), progress=False, **kw)
    assert batch.device.type == "cuda"
    torch.testing.assert_close(batch[1:2], alone)
    assert torch.equal(batch, again)


@pytest.mark.parametrize("name", ["sr4", "deblur_gauss", "inp_random50", "color", "cs4", "jpeg75"])
def test_no_host_sync_inside_the_step_loop_on_cuda(name):
    op = operators.get_operator(name, SHAPE).to(CUDA)
    x = (torch.rand((1, *SHAPE), generator=torch.Generator().manual_seed(0)) * 2 - 1).to(CUDA)
    codec = isinstance(op, CodecOperator)
    y = op.J(x) if codec else op.H(x)

    def eps(xt, t):
        # From the first network call on, any device-to-host synchronisation raises.
        torch.cuda.set_sync_debug_mode("error")
        return torch.zeros_like(xt)

    try:
        for sigma_y in [0.0] if codec else [0.0, 0.1]:
            ddrm(Prior(eps, AC, device=CUDA), op, y, steps=4, sigma_y=sigma_y, progress=False)
            torch.cuda.set_sync_debug_mode(0)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_fp16_unet_with_float32_spectral_algebra(tiny_unet_dir):
    from ddrm_kit import load_prior

    half = load_prior(tiny_unet_dir, device=CUDA, dtype=torch.float16)
    full = load_prior(tiny_unet_dir, device=CUDA)
    op = operators.get_operator("sr4", SHAPE)
    x = (torch.rand((2, *SHAPE), generator=torch.Generator().manual_seed(4)) * 2 - 1)
    y = op.H(x).to(CUDA)
    seen = []
    out = ddrm(half, op, y, steps=10, generator=torch.Generator(device=CUDA).manual_seed(0), progress=False,
               callback=lambda i, t, x0: seen.append(x0.dtype))
    assert out.dtype == torch.float32 and set(seen) == {torch.float32} and bool(torch.isfinite(out).all())
    xt = torch.randn(2, *SHAPE, device=CUDA)
    t = torch.full((2,), 500, device=CUDA, dtype=torch.long)
    assert _rel(half(xt, t), full(xt, t).cpu()) < 1e-2  # fp16 rounding, not a different network


def test_solve_on_cuda_in_fp16_end_to_end(tmp_path, tiny_unet_dir):
    from ddrm_kit.cli import main

    a = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "lr.png")
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}.png"
        result = CliRunner().invoke(main, ["solve", "--op", "sr4", "--model", str(tiny_unet_dir), "--device", "cuda",
                                           "--precision", "fp16", "--steps", "5", "--no-progress", "-o", str(out),
                                           str(tmp_path / "lr.png")])
        assert result.exit_code == 0, result.output
        with Image.open(out) as im:
            assert im.size == (32, 32)
            outs.append(np.asarray(im))
    assert np.array_equal(outs[0], outs[1])
