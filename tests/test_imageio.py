"""Image IO: formats, modes, bit depths, EXIF orientation, and clean errors."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from ddrm_kit.errors import DDRMError
from ddrm_kit.imageio import (
    ImageFileError,
    ImageNotFoundError,
    apply_orientation,
    find_images,
    list_images,
    load_image,
    load_image_with_info,
    load_kernel,
    load_mask,
    save_image,
    to_uint8,
)


def _rgb(h=6, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png16(path, a):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour)."""
    h, w = a.shape[:2]
    colour_type = {2: 0, 3: 2}[a.ndim]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_rgb_png_values_and_round_trip(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    x, info = load_image_with_info(tmp_path / "a.png")
    assert x.shape == (1, 3, 6, 7) and x.dtype == torch.float32
    assert torch.allclose(x[0].permute(1, 2, 0), torch.from_numpy(a).float() / 127.5 - 1, atol=1e-6)
    assert (info.width, info.height, info.channels, info.bits, info.notes) == (7, 6, 3, 8, [])
    out = save_image(x, tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(out)), a)  # lossless


@pytest.mark.parametrize("fmt,suffix", [("BMP", ".bmp"), ("TIFF", ".tif"), ("JPEG", ".jpg")])
def test_other_formats(tmp_path, fmt, suffix):
    a = _rgb(16, 16)
    Image.fromarray(a).save(tmp_path / f"a{suffix}", format=fmt, quality=95)
    x = load_image(tmp_path / f"a{suffix}")
    ref = np.asarray(Image.open(tmp_path / f"a{suffix}").convert("RGB"))
    assert np.array_equal(to_uint8(x), ref)


def test_grey_stays_one_channel_and_saves_grey(tmp_path):
    g = _rgb()[..., 0]
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    x = load_image(tmp_path / "g.png")
    assert x.shape == (1, 1, 6, 7)
    out = save_image(x, tmp_path / "g2.png")
    with Image.open(out) as im:
        assert im.mode == "L"
        assert np.array_equal(np.asarray(im), g)


@pytest.mark.parametrize("mode,channels", [("RGBA", 3), ("LA", 1)])
def test_alpha_is_dropped_with_a_note(tmp_path, mode, channels):
    a = np.random.default_rng(1).integers(0, 256, (5, 4, len(mode)), dtype=np.uint8)
    Image.fromarray(a, mode).save(tmp_path / "a.png")
    x, info = load_image_with_info(tmp_path / "a.png")
    assert x.shape == (1, channels, 5, 4)
    assert any("alpha" in n for n in info.notes)
    assert np.array_equal(to_uint8(x).reshape(5, 4, channels), a[..., :channels])


def test_palette_image_is_colour(tmp_path):
    Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (1, 3, 6, 7)


def test_16bit_grey_keeps_precision(tmp_path):
    a = np.array([[0, 1, 257, 65535], [1000, 30000, 40000, 65534]], dtype=np.uint16)
    _png16(tmp_path / "g16.png", a)
    x, info = load_image_with_info(tmp_path / "g16.png")
    assert info.bits == 16 and x.shape == (1, 1, 2, 4)
    want = torch.from_numpy(a.astype(np.float64) / 65535 * 2 - 1).float()
    assert torch.allclose(x[0, 0], want, atol=1e-6, rtol=0)
    assert x[0, 0, 0, 1] > -1  # a step of 1/65535 survives, which 8 bits would lose


def test_16bit_colour_is_read_with_a_note(tmp_path):
    a = (np.arange(2 * 3 * 3).reshape(2, 3, 3) * 7000).astype(np.uint16)
    _png16(tmp_path / "c16.png", a)
    x, info = load_image_with_info(tmp_path / "c16.png")
    assert x.shape == (1, 3, 2, 3)
    assert any("16-bit" in n for n in info.notes)
    assert torch.allclose((x[0].permute(1, 2, 0) + 1) / 2, torch.from_numpy(a / 65535.0).float(), atol=1 / 255)


def test_exif_orientation_is_applied(tmp_path):
    a = _rgb(2, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(a).save(tmp_path / "o.jpg", exif=exif, quality=100, subsampling=0)
    x, info = load_image_with_info(tmp_path / "o.jpg")
    assert x.shape == (1, 3, 3, 2)
    decoded = np.asarray(Image.open(tmp_path / "o.jpg").convert("RGB"))
    assert np.array_equal(to_uint8(x), np.rot90(decoded, k=-1))
    assert any("EXIF" in n for n in info.notes)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_stored_order_and_apply_orientation_match_pillow(tmp_path, orientation):
    a = _rgb(3, 5, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(tmp_path / "o.png", exif=exif)
    stored, info = load_image_with_info(tmp_path / "o.png", upright=False)
    assert info.orientation == orientation and np.array_equal(to_uint8(stored), a)
    with Image.open(tmp_path / "o.png") as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(to_uint8(apply_orientation(stored, orientation)), want)
    assert np.array_equal(to_uint8(load_image(tmp_path / "o.png")), want)


def test_missing_and_not_an_image(tmp_path):
    with pytest.raises(ImageNotFoundError, match="no such file") as e:
        load_image(tmp_path / "nope.png")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, DDRMError)
    (tmp_path / "t.png").write_text("hello")
    with pytest.raises(ImageFileError, match="not an image") as e:
        load_image(tmp_path / "t.png")
    assert "\n" not in str(e.value)
    with pytest.raises(ImageFileError, match="folder"):
        load_image(tmp_path)


def test_truncated_file_is_a_clean_error(tmp_path):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFileError, match="cannot decode"):
        load_image(tmp_path / "cut.png")


def test_decompression_bomb_is_a_clean_error(tmp_path, monkeypatch):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)  # 4x over the limit: Pillow refuses
    with pytest.raises(ImageFileError, match="big.png"):
        load_image(tmp_path / "big.png")


def test_save_refuses_inputs_non_png_and_bad_folders(tmp_path):
    x = torch.zeros(1, 3, 4, 4)
    src = tmp_path / "in.png"
    Image.fromarray(_rgb(4, 4)).save(src)
    before = src.read_bytes()
    with pytest.raises(ImageFileError, match="input file"):
        save_image(x, tmp_path / "." / "in.png", protect=[src])
    assert src.read_bytes() == before
    with pytest.raises(ImageFileError, match="PNG"):
        save_image(x, tmp_path / "out.jpg")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ImageFileError, match="cannot write"):
        save_image(x, tmp_path / "afile" / "out.png")
    with pytest.raises(ValueError, match="one image"):
        save_image(torch.zeros(2, 3, 4, 4), tmp_path / "two.png")
    assert save_image(x, tmp_path / "new" / "dir" / "o.png").exists()
    assert not list(tmp_path.rglob(".ddrm-*"))  # no temporary files left behind


def test_list_images_sorted_by_name(tmp_path):
    for name in ["b.png", "a.JPG", "c.txt"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]


def test_find_images_recurses_sorted_by_path(tmp_path):
    for name in ["b.png", "a/z.JPG", "a/notes.txt", "c/d/e.tif"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == ["a/z.JPG", "b.png", "c/d/e.tif"]
    with pytest.raises(ImageNotFoundError, match="not an existing folder"):
        find_images(tmp_path / "missing")


def test_load_mask_from_an_image_keeps_bright_pixels(tmp_path):
    a = np.array([[0, 127, 128], [255, 200, 10]], dtype=np.uint8)
    Image.fromarray(a, "L").save(tmp_path / "m.png")
    Image.fromarray(np.stack([a] * 3, -1)).save(tmp_path / "rgb.png")
    want = torch.tensor([[False, False, True], [True, True, False]])
    for name in ("m.png", "rgb.png"):
        m = load_mask(tmp_path / name)
        assert m.dtype == torch.bool and torch.equal(m, want)


def test_load_mask_from_npy_keeps_non_zero_entries(tmp_path):
    want = torch.tensor([[False, True], [True, False]])
    for a in (np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0, 255], [255, 0]], np.uint8), want.numpy()):
        np.save(tmp_path / "m.npy", a)
        assert torch.equal(load_mask(tmp_path / "m.npy"), want)
    np.save(tmp_path / "m3.npy", np.ones((1, 2, 2)))
    with pytest.raises(ImageFileError, match=r"2-D \(H, W\) array, got shape \(1, 2, 2\)"):
        load_mask(tmp_path / "m3.npy")
    with pytest.raises(ImageNotFoundError, match="no such file"):
        load_mask(tmp_path / "missing.npy")


def test_load_kernel_normalises_to_sum_one(tmp_path):
    np.save(tmp_path / "k.npy", np.array([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]))
    k = load_kernel(tmp_path / "k.npy")
    assert k.dtype == torch.float64
    assert torch.equal(k, torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64) / 8)
    Image.fromarray(np.array([[0, 255], [255, 255]], dtype=np.uint8), "L").save(tmp_path / "k.png")
    assert torch.equal(load_kernel(tmp_path / "k.png"), torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64) / 3)


def test_load_kernel_refuses_bad_arrays(tmp_path):
    np.save(tmp_path / "zero.npy", np.zeros((3, 3)))
    with pytest.raises(ImageFileError, match="sums to 0"):
        load_kernel(tmp_path / "zero.npy")
    np.save(tmp_path / "k1.npy", np.ones(5))
    with pytest.raises(ImageFileError, match="2-D"):
        load_kernel(tmp_path / "k1.npy")
    with pytest.raises(ImageNotFoundError):
        load_kernel(tmp_path / "missing.png")


def test_load_mask_refuses_masks_without_one_meaning(tmp_path):
    np.save(tmp_path / "soft.npy", np.array([[0.0, 0.5], [1.0, 0.0]]))
    with pytest.raises(ImageFileError, match=r"soft mask \(2 different non-zero values, 0.5 to 1\)"):
        load_mask(tmp_path / "soft.npy")
    np.save(tmp_path / "nan.npy", np.array([[np.nan, 1.0], [1.0, 0.0]]))
    with pytest.raises(ImageFileError, match="NaN"):
        load_mask(tmp_path / "nan.npy")
    np.save(tmp_path / "none.npy", np.zeros((2, 2)))
    with pytest.raises(ImageFileError, match="keeps no pixel"):
        load_mask(tmp_path / "none.npy")
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(tmp_path / "red.png")
    with pytest.raises(ImageFileError, match="a colour image, not a mask"):
        load_mask(tmp_path / "red.png")
    # A grey mask saved as an RGB JPEG (chroma a few levels off) is still a mask.
    grey = np.zeros((16, 16, 3), np.uint8)
    grey[:, 8:] = 255
    Image.fromarray(grey).save(tmp_path / "g.jpg", quality=90)
    assert load_mask(tmp_path / "g.jpg")[:, 12:].all() and not load_mask(tmp_path / "g.jpg")[:, :4].any()


def test_quantisation_sigma_by_bit_depth(tmp_path):
    from ddrm_kit.imageio import quantisation_sigma

    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "f.tif")
    sigmas = [quantisation_sigma(load_image_with_info(tmp_path / n)[1]) for n in ("a.png", "g16.png", "f.tif")]
    assert sigmas == [pytest.approx(1 / (255 * 12**0.5)), pytest.approx(1 / (65535 * 12**0.5)), 0.0]


def test_image_size_reads_the_header_and_big_images_warn_nothing(tmp_path, monkeypatch, recwarn):
    from ddrm_kit.imageio import image_size

    Image.fromarray(_rgb(6, 7)).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30)  # 42 pixels: Pillow would warn
    assert image_size(tmp_path / "a.png") == (7, 6)
    assert load_image(tmp_path / "a.png").shape == (1, 3, 6, 7)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # over twice the limit: Pillow refuses
    with pytest.raises(ImageFileError, match="decompression bomb"):
        image_size(tmp_path / "a.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ImageFileError, match="not an image file"):
        image_size(tmp_path / "bad.png")
