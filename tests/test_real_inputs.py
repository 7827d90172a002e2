"""`ddrm solve`, `degrade` and `sample` on real-world inputs and mistakes (issue 16), through CliRunner.

Quantisation noise of integer files, options checked before any model loads, a folder with a bad
image, huge images, output folders created only for results, devices, and Ctrl-C (a subprocess).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import one_line_error, stderr_lines
from PIL import Image

from ddrm_kit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

#: The rounding noise of 8- and 16-bit files in [0, 1] units, and what the sampler gets ([-1, 1] units).
Q8, Q16 = 1 / (255 * math.sqrt(12)), 1 / (65535 * math.sqrt(12))


def _png(path, h, w, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, channels) if channels == 3 else (h, w), dtype=np.uint8)).save(path)
    return path


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture
def sigmas(monkeypatch):
    """The sigma_y of every sampler call."""
    import ddrm_kit.sampler

    real, seen = ddrm_kit.sampler.ddrm, []

    def spy(*args, **kwargs):
        seen.append(kwargs["sigma_y"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ddrm_kit.sampler, "ddrm", spy)
    return seen


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a command loads a prior."""
    import ddrm_kit.prior

    def refuse(*args, **kwargs):
        raise AssertionError("the prior was loaded")

    monkeypatch.setattr(ddrm_kit.prior, "load_prior", refuse)


# ---- 1. the quantisation noise floor ---------------------------------------------------------------


def test_an_8bit_observation_is_restored_with_its_rounding_noise(tmp_path, tiny_unet_dir, sigmas):
    obs = _png(tmp_path / "obs.png", 8, 8)
    r = _ok(_run("solve", "--op", "deno", "--model", tiny_unet_dir, "--steps", 2, "--no-progress", obs,
                 "-o", tmp_path / "r.png"))
    assert sigmas == [pytest.approx(2 * Q8, rel=1e-12)]
    note = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    assert note == ["note: --sigma-y 0 is below the rounding noise of 8-bit image files; restoring them with "
                    "--sigma-y 0.00113 (1/((2^8 - 1) sqrt(12)))"]


def test_a_16bit_observation_gets_the_16bit_floor(tmp_path, tiny_unet_dir, sigmas):
    a = np.random.default_rng(0).integers(0, 65536, (8, 8), dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    r = _ok(_run("solve", "--op", "deno", "--sigma-y", 1e-6, "--model", tiny_unet_dir, "--steps", 2, "--no-progress",
                 tmp_path / "g16.png", "-o", tmp_path / "r.png"))
    assert sigmas == [pytest.approx(2 * Q16, rel=1e-12)]
    assert "16-bit image files" in r.stderr and "--sigma-y 4.4e-06" in r.stderr


@pytest.mark.parametrize("args,sigma", [(("--op", "deno", "--sigma-y", 0.05), 0.1),
                                        (("--op", "deno", "--clean"), 0.0),
                                        (("--op", "jpeg20",), 0.0)])
def test_the_floor_leaves_larger_noise_clean_runs_and_codecs_alone(tmp_path, tiny_unet_dir, sigmas, args, sigma):
    img = _png(tmp_path / "img.png", 8, 8)
    r = _ok(_run("solve", *args, "--model", tiny_unet_dir, "--steps", 2, "--no-progress", img,
                 "-o", tmp_path / "r.png"))
    assert sigmas == [sigma] and "rounding noise" not in r.stderr


def test_the_python_api_keeps_sigma_y_as_given(tmp_path, tiny_unet_dir, sigmas):
    import operators
    from ddrm_kit.imageio import load_image
    from ddrm_kit.prior import load_prior
    from ddrm_kit.restore import Settings, observe, restore

    x = load_image(_png(tmp_path / "img.png", 8, 8))
    op = operators.get_operator("deno", (3, 8, 8))
    assert torch.equal(observe(op, x, 0.0), x)
    restore(load_prior(tiny_unet_dir, device="cpu"), op, x, Settings(steps=2), 0.0, progress=False)
    assert sigmas == [0.0]


def test_solve_help_states_the_floor():
    text = " ".join(_ok(_run("solve", "--help")).output.split())
    assert "1/(255*sqrt(12)) = 0.00113" in text and "is raised to it" in text


# ---- 3, 10. option values checked before anything loads ---------------------------------------------


@pytest.mark.parametrize("command", ["solve", "degrade"])
def test_sigma_y_in_grey_levels_is_refused_with_the_value_meant(tmp_path, command):
    img = _png(tmp_path / "img.png", 8, 8)
    err = one_line_error(_run(command, "--op", "deno", "--sigma-y", 25, img, "-o", tmp_path / "o.png"), "'--sigma-y'")
    assert "use 0.098" in err


def test_nan_sigma_y_is_refused_naming_the_option(tmp_path, no_model_load):
    img = _png(tmp_path / "img.png", 8, 8)
    one_line_error(_run("solve", "--op", "deno", "--sigma-y", "nan", img, "-o", tmp_path / "o.png"), "'--sigma-y'", "nan")


def test_steps_beyond_the_prior_are_refused_before_it_loads(tmp_path, tiny_unet_dir, no_model_load):
    img = _png(tmp_path / "img.png", 8, 8)
    one_line_error(_run("solve", "--op", "deno", "--model", tiny_unet_dir, "--steps", 10000, img, "-o", tmp_path / "o.png"),
           "--steps 10000 is more than the prior's 1000 timesteps", "--steps 1000 or fewer")
    one_line_error(_run("sample", "--model", tiny_unet_dir, "--steps", 1001, "-o", tmp_path / "s"), "--steps 1001")
    assert not (tmp_path / "s").exists() and not (tmp_path / "o.png").exists()


# ---- 4, 11. operator parameters, masks and JPEG qualities ---------------------------------------------


@pytest.mark.parametrize("args,words", [
    (("--op", "deblur_gauss", "-p", "sigma=abc"), ("deblur_gauss: parameter sigma must be a number, got 'abc'",)),
    (("--op", "deblur_uni", "-p", "kernel_size=2.5"), ("deblur_uni: parameter kernel_size must be an integer",)),
    (("--op", "deblur_uni", "-p", "kernel_size=12"), ("deblur_uni", "wider than img.png (8x8)", "kernel_size=8")),
    (("--op", "deblur_gauss", "-p", "radius=3"), ("deblur_gauss has no parameter radius", "kernel_size, sigma")),
    (("--op", "inp_mask", "-p", "mask=m.png"), ("give the mask as --mask FILE",)),
    (("--op", "color", "-p", "weights=(1, 2)"), ("parameter weights must be 3 numbers",)),
    (("--op", "jpeg", "-p", "dct=float"), ("--op jpeg", "takes no -p dct")),
])
def test_bad_operator_parameters_name_the_operator_and_parameter(tmp_path, args, words, no_model_load):
    img = _png(tmp_path / "img.png", 8, 8)
    one_line_error(_run("solve", *args, img, "-o", tmp_path / "o.png"), *words)


@pytest.mark.parametrize("flag,op,words", [
    ("--mask", "deblur_gauss", ("--mask: deblur_gauss takes no mask", "inp_mask")),
    ("--kernel", "sr4", ("--kernel: sr4 takes no kernel", "deblur")),
])
def test_a_mask_or_kernel_for_an_operator_that_takes_none_is_refused(tmp_path, flag, op, words, no_model_load):
    img = _png(tmp_path / "img.png", 8, 8)
    np.save(tmp_path / "f.npy", np.ones((3, 3)))
    one_line_error(_run("solve", "--op", op, flag, tmp_path / "f.npy", img, "-o", tmp_path / "o.png"), *words)


def _mask_png(path, a):
    Image.fromarray(a).save(path)
    return path


@pytest.mark.parametrize("make,words", [
    (lambda p: np.save(p / "m.npy", np.linspace(0, 1, 64).reshape(8, 8)) or p / "m.npy", ("soft mask", "0/1 array")),
    (lambda p: np.save(p / "m.npy", np.zeros((8, 8))) or p / "m.npy", ("keeps no pixel",)),
    (lambda p: _mask_png(p / "m.png", np.zeros((8, 8), np.uint8)), ("keeps no pixel",)),
    (lambda p: _mask_png(p / "m.png", np.dstack([np.full((8, 8), 255, np.uint8), np.zeros((8, 8, 2), np.uint8)])),
     ("a colour image, not a mask", "greyscale")),
])
def test_masks_that_mean_nothing_clear_are_refused(tmp_path, make, words, no_model_load):
    img = _png(tmp_path / "img.png", 8, 8)
    mask = make(tmp_path)
    one_line_error(_run("solve", "--op", "inp_mask", "--mask", mask, img, "-o", tmp_path / "o.png"), *words)
    one_line_error(_run("degrade", "--op", "inp_mask", "--mask", mask, img, "-o", tmp_path / "d.png"), *words)


def test_jpeg_qf_on_a_jpeg_of_another_quality_suggests_op_jpeg(tmp_path, tiny_unet_dir):
    a = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "q90.jpg", quality=90)
    Image.fromarray(a).save(tmp_path / "q10.jpg", quality=10)
    common = ("solve", "--op", "jpeg10", "--model", tiny_unet_dir, "--steps", 2, "--no-progress")
    r = _ok(_run(*common, tmp_path / "q90.jpg", "-o", tmp_path / "r.png"))
    assert stderr_lines(r.stderr) == ["note: q90.jpg: saved at JPEG quality 90, not 10: --op jpeg restores a JPEG "
                                     "file with the tables it was written with"]
    assert "note" not in _ok(_run(*common, tmp_path / "q10.jpg", "-o", tmp_path / "r10.png")).stderr


# ---- 5. devices --------------------------------------------------------------------------------------


def _missing(kind):
    from ddrm_kit.cli.options import _device_count

    return _device_count(kind) == 0


@pytest.mark.parametrize("device,words", [
    ("meta", ("'meta' tensors hold no data",)),
    ("cdua", ("unknown device 'cdua'", "did you mean cuda?")),
    ("tpu", ("unknown device 'tpu'",)),
    pytest.param("mps", ("mps is not available",), marks=pytest.mark.skipif(not _missing("mps"), reason="has MPS")),
    pytest.param("xpu", ("xpu is not available",), marks=pytest.mark.skipif(not _missing("xpu"), reason="has XPU")),
    pytest.param("cuda", ("cuda is not available",), marks=pytest.mark.skipif(not _missing("cuda"), reason="has CUDA")),
])
@pytest.mark.parametrize("command", ["solve", "sample"])
def test_every_bad_device_is_one_line(tmp_path, device, words, command, no_model_load):
    img = _png(tmp_path / "img.png", 8, 8)
    args = ("--op", "deno", img, "-o", tmp_path / "o.png") if command == "solve" else ("-o", tmp_path / "s")
    one_line_error(_run(command, "--device", device, *args), "'--device'", *words)


def test_operators_move_to_mps_in_float32():
    from ddrm_kit.cli.files import to_device

    class Recorder:
        def to(self, *args, **kwargs):
            return args, kwargs

    mps = torch.device("mps")
    assert to_device(Recorder(), mps) == ((), {"device": mps, "dtype": torch.float32})
    assert to_device(Recorder(), torch.device("cpu")) == ((torch.device("cpu"),), {})


# ---- 6. a folder with a bad image -------------------------------------------------------------------


def test_a_bad_image_in_a_folder_is_reported_and_the_rest_restored(tmp_path, tiny_unet_dir):
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png", 8, 8, seed=1)
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _png(src / "c.png", 8, 8, seed=3)
    r = _run("solve", "--op", "sr2", "--sigma-y", 0.05, "--model", tiny_unet_dir, "--steps", 2, "--no-progress", src,
             "-o", tmp_path / "out")
    assert r.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_sr2.png", "c_sr2.png"]
    err = stderr_lines(r.stderr)
    assert len(err) == 2 and err[0].startswith("error: b.png: ") and "b.png" not in err[0][len("error: b.png: "):]
    assert err[1] == "Error: 1 of 3 images could not be restored (listed above)"
    # Each good image is what it is alone.
    _ok(_run("solve", "--op", "sr2", "--sigma-y", 0.05, "--model", tiny_unet_dir, "--steps", 2, "--no-progress",
             src / "c.png", "-o", tmp_path / "c_alone.png"))
    assert (tmp_path / "out" / "c_sr2.png").read_bytes() == (tmp_path / "c_alone.png").read_bytes()


def test_a_bad_explicit_file_stops_before_any_work(tmp_path, no_model_load):
    good = _png(tmp_path / "a.png", 8, 8)
    bad = tmp_path / "b.png"
    bad.write_bytes(b"not an image")
    one_line_error(_run("solve", "--op", "sr2", good, bad, "-o", tmp_path / "out"), "b.png")
    assert not (tmp_path / "out").exists()


def test_an_image_of_the_wrong_size_in_a_folder_is_skipped(tmp_path, tiny_unet_dir):
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png", 8, 8)
    _png(src / "odd.png", 9, 9)
    r = _run("solve", "--op", "sr2", "--clean", "--model", tiny_unet_dir, "--steps", 1, "--no-progress", src,
             "-o", tmp_path / "out")
    assert r.exit_code == 1 and r.stderr.count("error: odd.png: ") == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_sr2.png"]


# ---- 7. huge images ----------------------------------------------------------------------------------


@pytest.fixture
def little_memory(monkeypatch):
    """A machine with 1 MB free; the test fails if an image is decoded."""
    import ddrm_kit.imageio
    import ddrm_kit.memory

    monkeypatch.setattr(ddrm_kit.memory, "available_bytes", lambda device="cpu": 10**6)

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(ddrm_kit.imageio, "load_image_with_info", refuse)


def test_an_image_too_big_for_the_memory_is_refused_from_its_header(tmp_path, tiny_unet_dir, little_memory,
                                                                     no_model_load):
    img = _png(tmp_path / "big.png", 64, 48)
    err = one_line_error(_run("solve", "--op", "sr4", "--model", tiny_unet_dir, img, "-o", tmp_path / "new" / "o.png"),
                 "big.png: the restoration with --op sr4 at 192x256 needs about", "MB (network",
                 "but 1.0 MB are free on this machine: crop or downscale it")
    assert "operator" in err and not (tmp_path / "new").exists()


def test_sample_refuses_a_size_too_big_for_the_memory(tmp_path, tiny_unet_dir, little_memory, no_model_load):
    one_line_error(_run("sample", "--model", tiny_unet_dir, "--size", 256, 256, "-n", 1, "-o", tmp_path / "s"),
           "sampling at 256x256 needs about", "use a smaller --size")
    one_line_error(_run("sample", "--model", tiny_unet_dir, "--size", 16, 16, "-n", 8, "--batch-size", 8, "-o", tmp_path / "s"),
           "sampling at 16x16 in batches of 8 needs", "use --batch-size 1")


def test_a_big_image_gives_no_pillow_warning(tmp_path, tiny_unet_dir, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # 8x8 = 64 pixels: over the warning, under the error
    img = _png(tmp_path / "img.png", 8, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _ok(_run("solve", "--op", "deno", "--sigma-y", 0.1, "--model", tiny_unet_dir, "--steps", 1, "--no-progress",
                 img, "-o", tmp_path / "o.png"))
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # over Pillow's hard limit (twice the warning's)
    one_line_error(_run("solve", "--op", "deno", "--sigma-y", 0.1, img, "-o", tmp_path / "p.png"),
           "img.png", "decompression bomb")


def test_the_memory_estimate_scales_with_its_model():
    from ddrm_kit.memory import _host_available, estimate

    unet = {"block_out_channels": [32, 64]}
    one = estimate((3, 100, 200), 1, unet, "operators.superres:_sr")
    assert one.network == 100 * 200 * 32 * 14 * 4 and one.sampler == 3 * 100 * 200 * 20 * 4
    assert estimate((3, 100, 200), 2, unet, "operators.superres:_sr").total == 2 * one.total - one.operator
    blur = estimate((3, 100, 200), 1, unet, "operators.blur:_deblur_uni")
    assert blur.operator == 3 * 100 * 200 * 96 + 6 * (100**2 + 200**2) * 8
    if sys.platform.startswith("linux"):
        assert _host_available() > 0


# ---- 8. output folders only for results ----------------------------------------------------------------


def test_a_late_error_leaves_no_output_folder(tmp_path):
    img = _png(tmp_path / "img.png", 8, 8)
    one_line_error(_run("solve", "--op", "sr2", "--model", tmp_path / "no_model", img, "-o", tmp_path / "new" / "deep"),
           "no_model")
    one_line_error(_run("sample", "--model", tmp_path / "no_model", "-o", tmp_path / "new" / "s"), "no_model")
    assert not (tmp_path / "new").exists()


def test_output_folders_are_created_for_the_first_result(tmp_path, tiny_unet_dir):
    img = _png(tmp_path / "img.png", 8, 8)
    _ok(_run("solve", "--op", "deno", "--sigma-y", 0.1, "--model", tiny_unet_dir, "--steps", 1, "--no-progress", img,
             "-o", tmp_path / "a" / "b" / "o.png"))
    assert (tmp_path / "a" / "b" / "o.png").is_file()
    _ok(_run("degrade", "--op", "jpeg20", img, "-o", tmp_path / "c" / "o.jpg"))
    assert (tmp_path / "c" / "o.jpg").is_file()


# ---- 14. sample sizes and what a patch prior draws -----------------------------------------------------


def test_sample_size_is_height_then_width(tmp_path, tiny_unet_dir):
    r = _ok(_run("sample", "--model", tiny_unet_dir, "--size", 32, 48, "-n", 1, "--steps", 1, "--no-progress",
                 "-o", tmp_path / "s"))
    with Image.open(tmp_path / "s" / "sample_000.png") as im:
        assert (im.width, im.height) == (48, 32)
    assert r.stdout == f"wrote {tmp_path / 's' / 'sample_000.png'} (48x32 RGB)\n"
    text = " ".join(_ok(_run("sample", "--help")).output.split())
    assert "--size H W" in text and "height first: --size 32 48 draws images 32 high and 48 wide" in text
    assert "48x32 (width x height" in text
    assert "no global structure" in text and "64x64" in text


def test_model_card_says_what_the_builtin_prior_can_draw():
    from pathlib import Path

    card = " ".join((Path(__file__).resolve().parents[1] / "ddrm_kit" / "builtin" / "README.md").read_text().split())
    assert "no global structure" in card and "ddrm sample" in card


# ---- Ctrl-C ------------------------------------------------------------------------------------------


def test_ctrl_c_exits_130_with_one_line(tmp_path, tiny_unet_dir):
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png", 2, 2)  # done first: its "wrote" line says the sampler is running
    _png(src / "b.png", 64, 64)  # interrupted: 300 steps on 128x128 take seconds
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "ddrm_kit.cli", "solve", "--op", "sr2", "--sigma-y", "0.05", "--model",
           str(tiny_unet_dir), "--steps", "300", "--no-progress", str(src), "-o", str(tmp_path / "out")]
    # A shell's background job ignores SIGINT, and its children inherit that: restore the default.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()
        assert first.startswith("wrote "), first + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert stderr_lines(err) == ["interrupted"]
    assert not (tmp_path / "out" / "b_sr2.png").exists()
    assert not (tmp_path / "out" / "b_sr2.png").exists()
