"""The libjpeg-faithful JPEG codec and the uniform quantiser, checked against Pillow (libjpeg-turbo)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch
from PIL import Image

import operators
from operators import JPEG, OperatorError, Quantize, get_operator
from operators.codec import CodecOperator
from operators.jpeg import block_dct, block_idct, islow_fdct, islow_idct, quality_tables

PIL_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _texture(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """Smooth-ish synthetic uint8 image (H, W, C): waves plus mild noise, some saturated pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 32.0
    chans = []
    for k in range(c):
        a, b, p = rng.uniform(0.5, 2.0, 3)
        wave = 70 * np.sin(a * xx + p) * np.cos(b * yy) + 30 * np.sin(0.3 * (k + 1) * (xx + yy))
        chans.append(128 + wave + rng.normal(0, 6, (h, w)))
    return np.clip(np.stack(chans, -1), 0, 255).round().astype(np.uint8)


def _to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr)).permute(2, 0, 1)[None].to(torch.float32) / 127.5 - 1


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x[0].permute(1, 2, 0).double() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def _pil_roundtrip(arr: np.ndarray, **save) -> tuple[np.ndarray, bytes]:
    img = Image.fromarray(arr if arr.shape[2] == 3 else arr[..., 0])
    buf = io.BytesIO()
    img.save(buf, "JPEG", **save)
    data = buf.getvalue()
    out = np.asarray(Image.open(io.BytesIO(data)))
    return (out if out.ndim == 3 else out[..., None]), data


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_quality_tables_equal_pillow_for_every_quality() -> None:
    arr = _texture(8, 8, 3)
    for q in range(1, 101):
        _, data = _pil_roundtrip(arr, quality=q)
        pil = Image.open(io.BytesIO(data)).quantization
        ours = JPEG(q).quant_tables
        assert ours.dtype == torch.int32 and ours.shape == (2, 8, 8)
        assert ours.flatten(1).tolist() == [list(pil[0]), list(pil[1])], f"quality {q}"
        assert torch.equal(quality_tables(q), ours)
    # natural row-major order: the first row of the Annex K luma table at quality 50
    assert quality_tables(50)[0, 0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]


def test_block_dct_is_scipy_orthonormal_dct() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 8, 8, generator=gen, dtype=torch.float64) * 50
    ref = scipy.fft.dctn(x.numpy(), axes=(-2, -1), norm="ortho")
    torch.testing.assert_close(block_dct(x), torch.from_numpy(ref), atol=1e-10, rtol=0)
    torch.testing.assert_close(block_idct(block_dct(x)), x, atol=1e-10, rtol=0)
    # libjpeg's integer transforms approximate the same DCT (forward output scaled by 8).
    ints = torch.randint(-128, 128, (200, 8, 8), generator=gen)
    assert (islow_fdct(ints) / 8 - block_dct(ints.double())).abs().max() < 0.25
    coef = torch.randint(-60, 60, (200, 8, 8), generator=gen)
    assert (islow_idct(coef) - block_idct(coef.double())).abs().max() <= 1.0


CASES = [
    (size, mode)
    for size in [(256, 256), (250, 190), (191, 257)]
    for mode in ["RGB 4:2:0", "RGB 4:2:2", "RGB 4:4:4", "L"]
]


@pytest.mark.parametrize(("size", "mode"), CASES)
def test_codec_agrees_with_pillow(size: tuple[int, int], mode: str) -> None:
    qf = [10, 20, 50, 75, 90][(CASES.index((size, mode))) % 5]
    channels = 1 if mode == "L" else 3
    sub = "4:4:4" if mode == "L" else mode.split()[1]
    arr = _texture(*size, channels, seed=qf)
    pil, _ = _pil_roundtrip(arr, quality=qf, subsampling=PIL_SUBSAMPLING[sub])
    x = _to_tensor(arr)
    exact = JPEG(qf, sub, image_shape=x.shape[1:])
    # libjpeg's integer DCT: the same bytes as Pillow's save + open, sample for sample.
    assert np.array_equal(_to_uint8(exact.J(x)), pil)
    # The orthonormal float DCT differs only by rare rounding flips.
    assert _psnr(_to_uint8(JPEG(qf, sub, dct="float").J(x)), pil) >= 45.0


@pytest.mark.parametrize(("size", "mode"), CASES[1::2])
def test_reencoding_a_pillow_jpeg_with_its_own_tables(tmp_path: Path, size: tuple[int, int], mode: str) -> None:
    channels = 1 if mode == "L" else 3
    sub = "4:4:4" if mode == "L" else mode.split()[1]
    arr = _texture(*size, channels, seed=3)
    path = tmp_path / "in.jpg"
    Image.fromarray(arr if channels == 3 else arr[..., 0]).save(path, quality=60, subsampling=PIL_SUBSAMPLING[sub])
    op = JPEG.from_file(path)
    assert op.image_shape == (channels, *size) and op.subsampling == sub
    with Image.open(path) as img:
        y_arr = np.asarray(img).reshape(*size, channels)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality="keep")  # Pillow re-encodes with the file's tables and sampling
    resaved = np.asarray(Image.open(buf)).reshape(*size, channels)
    again = _to_uint8(op.J(_to_tensor(y_arr)))
    assert _psnr(again, y_arr) >= 40.0
    assert np.array_equal(again, resaved)


def test_padding_to_mcus_and_dummy_blocks() -> None:
    x = _to_tensor(_texture(19, 20, 3))
    coeffs = JPEG(50, "4:2:0").encode(x)
    y, cb, cr = coeffs.components
    # 4:2:0 MCU = 16x16: 2 MCU rows and 2 MCU columns; luma 4x4 blocks of which 3x3 are real.
    assert y.shape == (1, 4, 4, 8, 8) and cb.shape == cr.shape == (1, 2, 2, 8, 8)
    assert y.dtype == torch.int32 and coeffs.image_size == (19, 20)
    # libjpeg's dummy blocks: zero AC; DC copied from the left block / the MCU's last block above.
    assert not y[0, :, 3].flatten(1)[:, 1:].any() and not y[0, 3].flatten(1)[:, 1:].any()
    assert torch.equal(y[0, :3, 3, 0, 0], y[0, :3, 2, 0, 0])
    assert torch.equal(y[0, 3, :, 0, 0], y[0, 2, [1, 1, 3, 3], 0, 0])


def test_small_odd_batched_float64_and_grey() -> None:
    gen = torch.Generator().manual_seed(1)
    for shape, sub in [((3, 5, 3), "4:2:0"), ((3, 2, 5), "4:2:2"), ((3, 17, 9), "4:2:0"), ((1, 9, 11), "4:2:0")]:
        arr = _texture(*shape[1:], shape[0], seed=shape[2])
        pil, _ = _pil_roundtrip(arr, quality=80, subsampling=PIL_SUBSAMPLING[sub])
        assert np.array_equal(_to_uint8(JPEG(80, sub).J(_to_tensor(arr))), pil), (shape, sub)
    x = torch.rand(2, 3, 13, 21, generator=gen, dtype=torch.float64) * 2 - 1
    op = JPEG(30)
    out = op.J(x)
    assert out.dtype == torch.float64 and out.shape == x.shape and float(out.abs().max()) <= 1
    torch.testing.assert_close(out[1:], op.J(x[1:]))
    # the output is on the 8-bit grid
    torch.testing.assert_close((out + 1) * 127.5, ((out + 1) * 127.5).round(), atol=1e-9, rtol=0)


def test_J_is_a_projection_up_to_libjpeg_recompression() -> None:
    x = _to_tensor(_texture(64, 48, 3, seed=5))
    for op in (JPEG(10), JPEG(50, "4:4:4"), JPEG(90, dct="float")):
        once = op.J(x)
        twice = op.J(once)
        assert _psnr(_to_uint8(twice), _to_uint8(once)) >= 50.0
        assert float((twice != once).float().mean()) < 0.02
    # where it drifts, libjpeg drifts identically: J(J(x)) is Pillow's re-save of J(x)
    op = JPEG(75)
    once = _to_uint8(op.J(x))
    resaved, _ = _pil_roundtrip(once, quality=75)
    assert np.array_equal(_to_uint8(op.J(_to_tensor(once))), resaved)


def test_from_file_reads_tables_sampling_and_grey(tmp_path: Path) -> None:
    luma = (np.arange(64).reshape(8, 8) % 13 + 2).tolist()
    chroma = (np.arange(64).reshape(8, 8) % 7 + 5).tolist()
    path = tmp_path / "custom.jpg"
    Image.fromarray(_texture(30, 41, 3)).save(path, qtables=[sum(luma, []), sum(chroma, [])], subsampling=1)
    op = JPEG.from_file(path)
    assert op.quant_tables.tolist() == [luma, chroma]
    assert op.subsampling == "4:2:2" and op.image_shape == (3, 30, 41) and op.quality is None
    assert op.family == operators.get_spec("jpeg10").family == "jpeg"  # a prior's jpeg settings reach a file's operator
    grey = tmp_path / "grey.jpg"
    Image.fromarray(_texture(12, 7, 1)[..., 0]).save(grey, quality=33)
    g = JPEG.from_file(grey)
    assert g.image_shape == (1, 12, 7) and torch.equal(g.quant_tables[0], quality_tables(33)[0])
    # Frame headers with other sampling factors (only the header is read): all 2x2 is 4:4:4, 4:4:0 is refused.
    base = tmp_path / "444.jpg"
    Image.fromarray(_texture(16, 16, 3)).save(base, quality=50, subsampling=0)
    for factors, expect in [((0x22, 0x22, 0x22), "4:4:4"), ((0x12, 0x11, 0x11), None)]:
        data = bytearray(base.read_bytes())
        sof = data.index(b"\xff\xc0")
        for k, f in enumerate(factors):
            data[sof + 11 + 3 * k] = f
        patched = tmp_path / f"sampling{factors[0]}.jpg"
        patched.write_bytes(bytes(data))
        if expect is None:
            with pytest.raises(OperatorError, match="sampling factors 1x2, 1x1, 1x1 are not supported"):
                JPEG.from_file(patched)
        else:
            assert JPEG.from_file(patched).subsampling == expect


def _same_operator(a: JPEG, b: JPEG) -> bool:
    return (a.quality, a.subsampling, a.image_shape) == (b.quality, b.subsampling, b.image_shape) and torch.equal(
        a.component_tables, b.component_tables)


@pytest.mark.parametrize(("channels", "sub", "qf"),
                         [(3, "4:2:0", 10), (3, "4:2:2", 55), (3, "4:4:4", 90), (1, "4:4:4", 30)])
def test_progressive_file_gives_the_baseline_files_operator_and_pixels(tmp_path: Path, channels: int, sub: str,
                                                                      qf: int) -> None:
    arr = _texture(21, 34, channels, seed=qf)
    img = Image.fromarray(arr if channels == 3 else arr[..., 0])
    base, prog = tmp_path / "base.jpg", tmp_path / "prog.jpg"
    img.save(base, quality=qf, subsampling=PIL_SUBSAMPLING[sub])
    img.save(prog, quality=qf, subsampling=PIL_SUBSAMPLING[sub], progressive=True)
    assert prog.read_bytes().count(b"\xff\xda") > 1  # several scans (Pillow wrote a real progressive file)
    op = JPEG.from_file(prog)
    assert _same_operator(op, JPEG.from_file(base))
    decoded = np.asarray(Image.open(prog)).reshape(21, 34, channels)
    assert np.array_equal(decoded, np.asarray(Image.open(base)).reshape(21, 34, channels))
    assert np.array_equal(_to_uint8(op.J(_to_tensor(arr))), decoded)  # the file's codec, byte for byte


def test_solve_restores_a_progressive_file_as_its_baseline_twin(tmp_path: Path, tiny_unet_dir: Path) -> None:
    from click.testing import CliRunner

    from ddrm_kit.cli import main

    img = Image.fromarray(_texture(16, 24, 3, seed=8))
    outputs = []
    for kind in ("base", "prog"):
        (tmp_path / kind).mkdir()
        path = tmp_path / kind / "photo.jpg"  # one file name: the same seeds
        img.save(path, quality=25, progressive=kind == "prog")
        res = CliRunner().invoke(main, ["solve", "--op", "jpeg", "--model", str(tiny_unet_dir), "--steps", "2",
                                        "--device", "cpu", "--no-progress", str(path),
                                        "-o", str(tmp_path / f"{kind}.png")])
        assert res.exit_code == 0, res.output
        outputs.append(np.asarray(Image.open(tmp_path / f"{kind}.png")))
    assert outputs[0].shape == (16, 24, 3) and np.array_equal(outputs[0], outputs[1])


def test_extended_sequential_frame_is_read_like_baseline(tmp_path: Path) -> None:
    base = tmp_path / "base.jpg"
    Image.fromarray(_texture(16, 24, 3)).save(base, quality=40, subsampling=1)
    data = bytearray(base.read_bytes())
    data[data.index(b"\xff\xc0") + 1] = 0xC1  # SOF1: extended sequential, Huffman-coded
    ext = tmp_path / "ext.jpg"
    ext.write_bytes(bytes(data))
    assert _same_operator(JPEG.from_file(ext), JPEG.from_file(base))
    assert np.array_equal(np.asarray(Image.open(ext)), np.asarray(Image.open(base)))


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def test_each_component_keeps_the_table_in_force_at_its_first_scan(tmp_path: Path) -> None:
    # A hand-made progressive stream: slot 0 is redefined between the scans of Y and of Cb/Cr, as
    # libjpeg allows; entropy-coded bytes with a stuffed 0xFF00 and a restart marker are skipped.
    zigzag_a, zigzag_b = bytes(range(1, 65)), bytes([9] * 64)
    sof = bytes([8, 0, 16, 0, 16, 3]) + bytes([1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0])
    stream = (b"\xff\xd8" + _segment(0xDB, b"\x00" + zigzag_a) + _segment(0xC2, sof)
              + _segment(0xDA, bytes([1, 1, 0, 0, 0, 0])) + b"\x12\xff\x00\x34\xff\xd0\x56"
              + _segment(0xDB, b"\x00" + zigzag_b) + _segment(0xDA, bytes([2, 2, 0, 3, 0, 0, 0, 0])) + b"\x78\xff\xd9")
    path = tmp_path / "hand.jpg"
    path.write_bytes(stream)
    op = JPEG.from_file(path)
    # The first eight zigzag entries sit at (0,0) (0,1) (1,0) (2,0) (1,1) (0,2) (0,3) (1,2).
    assert op.component_tables[0].flatten()[[0, 1, 8, 16, 9, 2, 3, 10]].tolist() == list(range(1, 9))
    assert sorted(op.component_tables[0].flatten().tolist()) == list(range(1, 65))
    assert (op.component_tables[1:] == 9).all()
    assert op.subsampling == "4:4:4" and op.image_shape == (3, 16, 16)


def test_from_file_rejects_what_it_cannot_model(tmp_path: Path) -> None:
    arr = _texture(24, 24, 3)
    png = tmp_path / "img.png"
    Image.fromarray(arr).save(png)
    with pytest.raises(OperatorError, match="not a JPEG"):
        JPEG.from_file(png)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"definitely not an image")
    with pytest.raises(OperatorError, match="not a readable JPEG"):
        JPEG.from_file(junk)
    # an arithmetic-coded frame header (SOF9) in place of the baseline one (SOF0)
    base = tmp_path / "base.jpg"
    Image.fromarray(arr).save(base, quality=70)
    data = bytearray(base.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 1] = 0xC9
    arith = tmp_path / "arith.jpg"
    arith.write_bytes(bytes(data))
    with pytest.raises(OperatorError, match="arithmetic-coded JPEG .SOF9. is not supported; convert it losslessly"):
        JPEG.from_file(arith)
    for marker, kind in ((0xC3, "lossless"), (0xC5, "hierarchical"), (0xCB, "arithmetic-coded .lossless.")):
        data[sof + 1] = marker
        arith.write_bytes(bytes(data))
        with pytest.raises(OperatorError, match=f"{kind} JPEG .SOF{marker - 0xC0}. is not supported"):
            JPEG.from_file(arith)
    data[sof + 1], data[sof + 4] = 0xC0, 12  # 12-bit samples
    arith.write_bytes(bytes(data))
    with pytest.raises(OperatorError, match="12-bit JPEG is not supported"):
        JPEG.from_file(arith)
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(cmyk, quality=70)
    with pytest.raises(OperatorError, match="CMYK/YCCK JPEG is not supported"):
        JPEG.from_file(cmyk)
    # RGB stored as is: no JFIF marker, component ids 'R', 'G', 'B' (libjpeg's rule)
    data = bytearray(base.read_bytes())
    assert data[2:4] == b"\xff\xe0"
    del data[2 : 4 + int.from_bytes(data[4:6], "big")]
    sof, sos = data.index(b"\xff\xc0"), data.index(b"\xff\xda")
    for k, cid in enumerate(b"RGB"):
        data[sof + 10 + 3 * k] = data[sos + 5 + 2 * k] = cid
    rgb = tmp_path / "rgb.jpg"
    rgb.write_bytes(bytes(data))
    with pytest.raises(OperatorError, match="stores RGB without the YCbCr transform"):
        JPEG.from_file(rgb)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(base.read_bytes()[:40])
    with pytest.raises(OperatorError, match="not a readable JPEG file"):
        JPEG.from_file(truncated)
    with pytest.raises(FileNotFoundError):
        JPEG.from_file(tmp_path / "missing.jpg")
    assert issubclass(OperatorError, ValueError)


def test_registry_and_argument_checks() -> None:
    op = get_operator("jpeg20", (3, 10, 12))
    assert isinstance(op, JPEG) and isinstance(op, CodecOperator)
    assert op.quality == 20 and op.image_shape == (3, 10, 12) and op.subsampling == "4:2:0"
    assert get_operator("jpeg90", (1, 8, 8), subsampling="4:4:4").subsampling == "4:4:4"
    assert "jpeg10" in operators.available() and "quant3" in operators.available()
    with pytest.raises(OperatorError, match="1..100"):
        get_operator("jpeg0", (3, 8, 8))
    with pytest.raises(OperatorError, match="subsampling"):
        JPEG(50, "4:1:1")
    with pytest.raises(OperatorError, match="grey .C = 1. or RGB"):
        JPEG(50, image_shape=(2, 8, 8))
    with pytest.raises(OperatorError, match="for images"):
        JPEG(50, image_shape=(3, 8, 8)).encode(torch.zeros(1, 3, 8, 9))
    with pytest.raises(OperatorError, match="shape"):
        JPEG(50, tables=torch.ones(4, 8, 8))
    custom = JPEG(tables=torch.full((2, 8, 8), 7))
    assert custom.quality is None and int(custom.quant_tables.unique()) == 7
    moved = JPEG(50).to(torch.float64)
    assert moved.quant_tables.dtype == torch.int32  # integer tables are buffers, not cast


def test_quantize_levels_bin_centres_idempotent() -> None:
    op = get_operator("quant3", (1, 4, 5))
    assert isinstance(op, Quantize) and isinstance(op, CodecOperator) and op.levels == 8
    x = torch.linspace(-1, 1, 20).reshape(1, 1, 4, 5)
    k = op.encode(x)
    assert k.dtype == torch.int64 and int(k.min()) == 0 and int(k.max()) == 7
    assert sorted(k.unique().tolist()) == list(range(8))
    y = op.J(x)
    centres = -1 + (2 * torch.arange(8, dtype=torch.float64) + 1) / 8
    decoded = op.decode(torch.arange(8))
    assert decoded.dtype == torch.float32 and torch.equal(decoded.double(), centres)  # exact in float32
    assert torch.equal(y, centres.float()[k])
    assert float((y - x).abs().max()) <= 1 / 8 + 1e-6
    assert torch.equal(op.J(y), y)
    assert torch.equal(op.J(x.double()), centres[k])  # J keeps the input's dtype
    assert torch.equal(Quantize(3).encode(torch.tensor([[[[-1.0, -0.75, 0.0, 1.0]]]])), torch.tensor([[[[0, 1, 4, 7]]]]))
    with pytest.raises(OperatorError, match="bits"):
        Quantize(0)


def test_codecs_share_one_decode_signature() -> None:
    """Every codec decodes with ``decode(coeffs) -> Tensor``, as CodecOperator declares."""
    import inspect

    from operators import GreyCodec

    base = list(inspect.signature(CodecOperator.decode).parameters)
    for cls in (JPEG, Quantize, GreyCodec):
        assert list(inspect.signature(cls.decode).parameters) == base == ["self", "coeffs"], cls.__name__
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for op in (JPEG(40), Quantize(4), GreyCodec(JPEG(40, image_shape=(1, 8, 8)))):
        assert torch.equal(op.decode(op.encode(x)), op.J(x))
