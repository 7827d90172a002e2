"""The `ddrm` command end to end (click's CliRunner) with a tiny UNet saved by save_pretrained."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import one_line_error
from PIL import Image

from ddrm_kit.cli import main

#: The sampler's sigma_y ([-1, 1] units) for an observation read from an 8-bit file: its rounding noise.
Q8 = 2 / (255 * 12**0.5)


@pytest.fixture(scope="module")
def tiny_model(tiny_unet_dir):
    """conftest's tiny prior folder, as a string."""
    return str(tiny_unet_dir)


def _png(path, h, w, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, channels) if channels == 3 else (h, w), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _size(path):
    with Image.open(path) as im:
        return im.size, im.mode


def _pixels(path):
    with Image.open(path) as im:
        return np.asarray(im)


def _restored(model, op, y, keys, seed=0, steps=2, sigma_y=0.0):
    """What `ddrm solve` must write for observations ``y``: ddrm_kit.restore with the images' file-name seeds."""
    from ddrm_kit.imageio import to_uint8
    from ddrm_kit.prior import load_prior
    from ddrm_kit.restore import SAMPLER, Settings, generators, restore

    prior = load_prior(model, device="cpu")
    out = restore(prior, op, y, Settings(steps=steps), sigma_y, generators(seed, keys, SAMPLER, "cpu"), progress=False)
    return out, [to_uint8(out[i : i + 1]) for i in range(out.shape[0])]


def _simulated(op, path, seed=0, sigma_y=0.0):
    """The observation `solve --clean` and `degrade` simulate for a clean file: noise keyed by its name."""
    from ddrm_kit.imageio import load_image
    from ddrm_kit.restore import NOISE, generators, observe

    x = load_image(path)
    return x, observe(op, x, 2 * sigma_y, generators(seed, [path.name], NOISE))


def _score_row(stdout, name):
    return [float(v) for v in next(line for line in stdout.splitlines() if line.startswith(name)).split()[1:]]


def test_help_and_ops_do_not_import_torch_at_startup():
    code = "import sys, ddrm_kit.cli; assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    r = _ok(_run("--help"))
    for cmd in ("solve", "degrade", "ops", "sample", "train", "bench"):
        assert cmd in r.output
    assert "[0, 1] pixel units" in _ok(_run("solve", "--help")).output


def test_readme_quick_start_and_test_command_match_the_repo():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(first_block) == 2 and "pip install torch==2.13.0" in first_block[0]
    run = first_block[1].split()
    assert run[:4] == ["ddrm", "solve", "--op", "sr4"] and (root / run[4]).is_file()
    assert 'pytest -m "not slow"' in readme and 'pytest -m "not slow"' in (root / ".ci" / "run").read_text()


def test_ops_table_lists_every_operator_with_its_input_and_params():
    import operators

    lines = _ok(_run("ops")).output.splitlines()
    rows = {line.split()[0]: line for line in lines[1:] if line and not line[0].isspace()}
    for spec in operators.specs():
        assert spec.input in rows[spec.display] and spec.description in rows[spec.display]
        for param in spec.params:
            assert any(param.describe() in line for line in lines), param
    assert "a .jpg file" in rows["jpeg"]  # the file-based JPEG operator of `ddrm solve`


def test_ddrm_ops_does_not_import_torch():
    code = ("import sys\nfrom ddrm_kit.cli import main\n"
            "try:\n    main(['ops'], standalone_mode=False)\n"
            "finally:\n    print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "sr_bicubic" in proc.stdout and "inp_mask" in proc.stdout
    assert proc.stderr.strip().endswith("NO-TORCH")


def test_solve_sr_writes_what_restore_gives(tmp_path, tiny_model):
    import operators
    from ddrm_kit.imageio import load_image

    lr = _png(tmp_path / "lr.png", 8, 6)
    r = _ok(_run("solve", "--op", "sr2", "--model", tiny_model, "--steps", 2, "--seed", 4, "--no-progress", lr,
                 "-o", tmp_path / "hr.png"))
    assert r.stdout == f"wrote {tmp_path / 'hr.png'} (12x16 RGB)\n"
    _, (want,) = _restored(tiny_model, operators.get_operator("sr2", (3, 16, 12)), load_image(lr), ["lr.png"], seed=4,
                           sigma_y=Q8)
    assert np.array_equal(_pixels(tmp_path / "hr.png"), want)


def test_solve_builds_each_operator_once(tmp_path, tiny_model, monkeypatch):
    import operators

    real, built = operators.get_operator, []
    monkeypatch.setattr(operators, "get_operator", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        _png(src / f"{i}.png", 8, 8, seed=i)
    _png(src / "wide.png", 8, 10)
    # Two sizes, three batches: one operator per size.
    _ok(_run("solve", "--op", "sr2", "--model", tiny_model, "--steps", 1, "--batch-size", 2, "--no-progress", src,
             "-o", tmp_path / "out"))
    assert built == ["sr2", "sr2"]


def test_default_model_is_the_builtin_prior(tmp_path):
    from ddrm_kit.prior import BUILTIN_DIR

    lr = _png(tmp_path / "lr.png", 8, 8)
    r = _run("solve", "--op", "sr2", "--steps", 1, "--no-progress", lr, "-o", tmp_path / "o.png")
    if any(BUILTIN_DIR.glob("**/*.safetensors")):
        _ok(r)
        assert _size(tmp_path / "o.png") == ((16, 16), "RGB")
    else:  # a source tree without the trained weights says so in one line
        one_line_error(r, "built-in prior")


def test_solve_is_deterministic_under_a_seed(tmp_path, tiny_model):
    lr = _png(tmp_path / "lr.png", 8, 8)
    for name in ("a.png", "b.png"):
        _ok(_run("solve", "--op", "deno", "--sigma-y", 0.1, "--model", tiny_model, "--steps", 2, "--seed", 3,
                 "--no-progress", lr, "-o", tmp_path / name))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_clean_mode_prints_the_scores_of_the_restore_pipeline(tmp_path, tiny_model):
    import operators
    from ddrm_kit.restore import score

    gt = _png(tmp_path / "gt.png", 16, 12)
    r = _ok(_run("solve", "--op", "sr2", "--clean", "--sigma-y", 0.05, "--model", tiny_model, "--steps", 2,
                 "--no-progress", gt, "-o", tmp_path / "out.png"))
    assert r.stdout.splitlines()[1].split() == ["image", "H_pinv(y)", "PSNR", "SSIM", "DDRM", "PSNR", "SSIM"]
    op = operators.get_operator("sr2", (3, 16, 12))
    x, y = _simulated(op, gt, sigma_y=0.05)
    out, (want,) = _restored(tiny_model, op, y, ["gt.png"], sigma_y=0.1)
    base, ddrm = score(op.H_pinv(y), x), score(out, x)
    assert _score_row(r.stdout, "gt.png") == pytest.approx(
        [base["psnr"][0], base["ssim"][0], ddrm["psnr"][0], ddrm["ssim"][0]], abs=0.0051)
    assert np.array_equal(_pixels(tmp_path / "out.png"), want)


def test_clean_mode_twice_gives_the_same_image_and_scores(tmp_path, tiny_model):
    gt = _png(tmp_path / "gt.png", 8, 8)
    runs = [_ok(_run("solve", "--op", "deno", "--clean", "--sigma-y", 0.1, "--seed", 2, "--model", tiny_model,
                     "--steps", 2, "--no-progress", gt, "-o", tmp_path / f"{k}.png")) for k in "ab"]
    assert runs[0].stdout.replace("a.png", "b.png") == runs[1].stdout
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_an_image_gets_the_same_result_alone_or_in_a_folder(tmp_path, tiny_model):
    src = tmp_path / "in"
    src.mkdir()
    for k in (1, 2, 3):
        _png(src / f"k{k}.png", 8, 8, seed=k)
    args = ("--op", "sr2", "--clean", "--sigma-y", 0.1, "--seed", 7, "--model", tiny_model, "--steps", 2,
            "--batch-size", 1, "--no-progress")
    _ok(_run("solve", *args, src, "-o", tmp_path / "all"))
    _ok(_run("solve", *args, src / "k3.png", "-o", tmp_path / "alone.png"))
    assert np.array_equal(_pixels(tmp_path / "all" / "k3_sr2.png"), _pixels(tmp_path / "alone.png"))
    assert not np.array_equal(_pixels(tmp_path / "all" / "k2_sr2.png"), _pixels(tmp_path / "alone.png"))


def test_folder_input_is_batched_by_size(tmp_path, tiny_model):
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png", 8, 8, seed=1)
    _png(src / "b.png", 8, 8, seed=2)
    _png(src / "c.png", 6, 10, seed=3)
    r = _ok(_run("solve", "--op", "sr2", "--model", tiny_model, "--steps", 2, "--no-progress", src, "-o", tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_sr2.png", "b_sr2.png", "c_sr2.png"]
    assert _size(tmp_path / "out" / "c_sr2.png") == ((20, 12), "RGB")
    assert r.stdout.count("wrote") == 3


def test_results_do_not_depend_on_batch_size(tmp_path, tiny_model):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        _png(src / f"{i}.png", 8, 8, seed=i)
    for b in (1, 3):
        _ok(_run("solve", "--op", "sr2", "--clean", "--sigma-y", 0.1, "--model", tiny_model, "--steps", 2,
                 "--batch-size", b, "--no-progress", src, "-o", tmp_path / f"b{b}"))
    for i in range(3):
        one = np.asarray(Image.open(tmp_path / "b1" / f"{i}_sr2.png")).astype(int)
        three = np.asarray(Image.open(tmp_path / "b3" / f"{i}_sr2.png")).astype(int)
        assert np.abs(one - three).max() <= 1  # batched float maths may flip a rounding


def test_grey_input_with_colour_prior_gives_grey_output(tmp_path, tiny_model):
    import operators
    from ddrm_kit.imageio import load_image, to_uint8

    lr = _png(tmp_path / "g.png", 8, 8, channels=1)
    r = _ok(_run("solve", "--op", "sr2", "--model", tiny_model, "--steps", 2, "--no-progress", lr, "-o", tmp_path / "o.png"))
    assert _size(tmp_path / "o.png") == ((16, 16), "L")
    assert "16x16 grey" in r.stdout and "g.png: grey image restored with a colour prior, saved grey" in r.stderr
    # The colour prior restores the grey image as RGB; the result's grey level is saved.
    out, _ = _restored(tiny_model, operators.get_operator("sr2", (3, 16, 16)), load_image(lr).expand(-1, 3, -1, -1),
                       ["g.png"], sigma_y=Q8)
    assert np.array_equal(_pixels(tmp_path / "o.png"), to_uint8(out.mean(1, keepdim=True)))


def test_degrade_then_solve_round_trip_superres(tmp_path, tiny_model):
    gt = _png(tmp_path / "gt.png", 16, 16)
    r = _ok(_run("degrade", "--op", "sr4", "--sigma-y", 0.02, gt, "-o", tmp_path / "obs.png"))
    assert _size(tmp_path / "obs.png") == ((4, 4), "RGB")
    assert "ddrm solve --op sr4 --sigma-y 0.02 " in r.stdout
    _ok(_run("solve", "--op", "sr4", "--sigma-y", 0.02, "--model", tiny_model, "--steps", 2, "--no-progress",
             tmp_path / "obs.png", "-o", tmp_path / "rest.png"))
    assert _size(tmp_path / "rest.png") == ((16, 16), "RGB")


def test_degrade_then_solve_round_trip_inpainting_with_mask(tmp_path, tiny_model):
    gt = _png(tmp_path / "gt.png", 12, 16)
    _ok(_run("degrade", "--op", "inp_random50", gt, "-o", tmp_path / "obs.png"))
    mask = np.asarray(Image.open(tmp_path / "obs_mask.png"))
    assert mask.shape == (12, 16) and set(np.unique(mask)) == {0, 255}
    assert 0.3 < (mask > 0).mean() < 0.7
    # Kept pixels survive the 8-bit round trip exactly.
    obs = np.asarray(Image.open(tmp_path / "obs.png"))
    assert np.array_equal(obs[mask > 0], np.asarray(Image.open(gt))[mask > 0])
    _ok(_run("solve", "--op", "inp_mask", "--mask", tmp_path / "obs_mask.png", "--model", tiny_model, "--steps", 2,
             "--no-progress", tmp_path / "obs.png", "-o", tmp_path / "rest.png"))
    rest = np.asarray(Image.open(tmp_path / "rest.png")).astype(int)
    # eta_b = 1 with no noise: DDRM keeps the observed pixels, up to the final x0 prediction's
    # sqrt(1 - alpha_bar_0) ~ 0.01 share of the (untrained) network's noise estimate.
    err = np.abs(rest[mask > 0] - obs[mask > 0])
    assert err.max() <= 6 and err.mean() < 2


def test_degrade_to_a_real_jpeg_then_solve_with_its_tables(tmp_path, tiny_model):
    gt = _png(tmp_path / "gt.png", 16, 24)
    r = _ok(_run("degrade", "--op", "jpeg10", gt, "-o", tmp_path / "c.jpg"))
    assert "ddrm solve --op jpeg" in r.stdout
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.format == "JPEG" and im.size == (24, 16)
    _ok(_run("solve", "--op", "jpeg", "--average", 2, "--model", tiny_model, "--steps", 2, "--no-progress",
             tmp_path / "c.jpg", "-o", tmp_path / "r.png"))
    assert _size(tmp_path / "r.png") == ((24, 16), "RGB")


def test_jpeg_file_is_restored_in_stored_order_and_turned_upright(tmp_path, tiny_model):
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers rotate it 90 degrees clockwise
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(
        tmp_path / "o.jpg", quality=30, exif=exif)
    _ok(_run("solve", "--op", "jpeg", "--model", tiny_model, "--steps", 2, "--no-progress", tmp_path / "o.jpg",
             "-o", tmp_path / "r.png"))
    assert _size(tmp_path / "r.png") == ((16, 24), "RGB")


def test_a_jpeg_file_runs_with_the_priors_jpeg_settings(tmp_path, tiny_unet_dir):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_unet_dir, model)
    (model / "ddrm_settings.json").write_text('{"jpeg": {"steps": 3, "eta": 0.7}}')
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        tmp_path / "q.jpg", quality=20)
    r = _ok(_run("solve", "--op", "jpeg", "--model", model, "--no-progress", tmp_path / "q.jpg", "-o", tmp_path / "r.png"))
    assert "DDRM settings: steps 3, eta 0.7, eta_b 0.4, t0 300 (steps, eta: the prior's ddrm_settings.json, jpeg; " \
           "eta_b, t0: the papers')" in r.stderr


def test_grey_jpeg_file_with_a_colour_prior_gives_grey(tmp_path, tiny_model):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8), "L").save(
        tmp_path / "g.jpg", quality=20)
    r = _ok(_run("solve", "--op", "jpeg", "--model", tiny_model, "--steps", 2, "--no-progress", tmp_path / "g.jpg",
                 "-o", tmp_path / "r.png"))
    assert _size(tmp_path / "r.png") == ((16, 16), "L")
    assert "grey JPEG" in r.stderr


def test_clean_jpeg_scores_against_the_decoded_jpeg(tmp_path, tiny_model):
    import operators
    from ddrm_kit.restore import score

    gt = _png(tmp_path / "gt.png", 16, 16)
    r = _ok(_run("solve", "--op", "jpeg20", "--clean", "--model", tiny_model, "--steps", 2, "--no-progress", gt,
                 "-o", tmp_path / "r.png"))
    assert r.stdout.splitlines()[1].split()[:3] == ["image", "y", "PSNR"]
    x, y = _simulated(operators.get_operator("jpeg20", (3, 16, 16)), gt)
    want = score(y, x)
    assert _score_row(r.stdout, "gt.png")[:2] == pytest.approx([want["psnr"][0], want["ssim"][0]], abs=0.0051)


def test_color_takes_a_grey_image_and_gives_colour(tmp_path, tiny_model):
    grey = _png(tmp_path / "g.png", 8, 10, channels=1)
    _ok(_run("solve", "--op", "color", "--model", tiny_model, "--steps", 2, "--no-progress", grey, "-o", tmp_path / "c.png"))
    assert _size(tmp_path / "c.png") == ((10, 8), "RGB")
    colour = _png(tmp_path / "rgb.png", 8, 10)
    one_line_error(_run("solve", "--op", "color", "--model", tiny_model, "--no-progress", colour, "-o", tmp_path / "x.png"),
           "grey image")


@pytest.mark.parametrize("flag", [[], ["--clip-denoised"]])
def test_clip_denoised_flag_reaches_the_sampler(tmp_path, tiny_model, monkeypatch, flag):
    import ddrm_kit.sampler

    real, seen = ddrm_kit.sampler.ddrm, []

    def spy(*args, **kwargs):
        seen.append(kwargs["clip_denoised"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ddrm_kit.sampler, "ddrm", spy)
    grey = _png(tmp_path / "g.png", 8, 10, channels=1)
    _ok(_run("solve", "--op", "color", "--model", tiny_model, "--steps", 2, "--no-progress", *flag, grey,
             "-o", tmp_path / "c.png"))
    assert seen == [bool(flag)]


def test_deblur_with_a_kernel_file_round_trip(tmp_path, tiny_model):
    gt = _png(tmp_path / "gt.png", 12, 12)
    np.save(tmp_path / "k.npy", np.array([[0.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 0.0]]))
    _ok(_run("degrade", "--op", "deblur", "--kernel", tmp_path / "k.npy", gt, "-o", tmp_path / "blurry.png"))
    assert _size(tmp_path / "blurry.png") == ((12, 12), "RGB")
    _ok(_run("solve", "--op", "deblur", "--kernel", tmp_path / "k.npy", "--model", tiny_model, "--steps", 2,
             "--no-progress", tmp_path / "blurry.png", "-o", tmp_path / "sharp.png"))
    assert _size(tmp_path / "sharp.png") == ((12, 12), "RGB")


def test_compressed_sensing_runs_with_clean(tmp_path, tiny_model):
    gt = _png(tmp_path / "gt.png", 16, 16)
    r = _ok(_run("solve", "--op", "cs4", "--clean", "--model", tiny_model, "--steps", 2, "--no-progress", gt,
                 "-o", tmp_path / "r.png"))
    assert "gt.png" in r.stdout and _size(tmp_path / "r.png") == ((16, 16), "RGB")


def test_sample_writes_n_images_seeded_by_their_names(tmp_path, tiny_model):
    import operators
    from ddrm_kit.imageio import to_uint8
    from ddrm_kit.prior import load_prior
    from ddrm_kit.restore import SAMPLER, Settings, generators, restore

    r = _ok(_run("sample", "--model", tiny_model, "-n", 3, "--size", 8, 12, "--steps", 2, "--batch-size", 2,
                 "--seed", 5, "--no-progress", "-o", tmp_path / "s"))
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert files == ["sample_000.png", "sample_001.png", "sample_002.png"]
    assert r.stdout.splitlines() == [f"wrote {tmp_path / 's' / f} (12x8 RGB)" for f in files]
    op = operators.NoMeasurement((3, 8, 12))
    x = restore(load_prior(tiny_model, device="cpu"), op, op.empty_measurement(1), Settings(steps=2, eta=1.0, eta_b=1.0),
                generator=generators(5, ["sample_002"], SAMPLER), progress=False)
    assert np.array_equal(_pixels(tmp_path / "s" / "sample_002.png"), to_uint8(x))


# ---------------------------------------------------------------------------------------------
# Bad input: one line on stderr, non-zero exit, no traceback, nothing written or overwritten.


@pytest.fixture
def case(tmp_path, tiny_model):
    """An input image, an empty output folder, and a runner that checks the folder stays empty."""
    img = _png(tmp_path / "img.png", 8, 8)
    out = tmp_path / "out"
    out.mkdir()

    def run(*args, env=None):
        result = _run("solve", "--model", tiny_model, "--steps", 2, "--no-progress", *args, env=env)
        assert not any(out.iterdir())
        return result

    return img, out, run


def test_error_missing_file(case):
    img, out, run = case
    one_line_error(run("--op", "sr2", img.parent / "nope.png", "-o", out / "o.png"), "nope.png", "no such file")


def test_error_not_an_image(case):
    img, out, run = case
    bad = img.parent / "notes.png"
    bad.write_text("not an image")
    one_line_error(run("--op", "sr2", bad, "-o", out / "o.png"), "not an image")


def test_error_unknown_operator_lists_close_names(case):
    img, out, run = case
    one_line_error(run("--op", "inp_rando50", img, "-o", out / "o.png"), "unknown operator", "inp_random")


def test_error_mask_of_the_wrong_size(case):
    img, out, run = case
    mask = _png(img.parent / "mask.png", 5, 5, channels=1)
    one_line_error(run("--op", "inp_mask", "--mask", mask, img, "-o", out / "o.png"), "mask", "5x5", "8x8")


def test_error_kernel_larger_than_image(case):
    img, out, run = case
    np.save(img.parent / "k.npy", np.ones((9, 9)))
    one_line_error(run("--op", "deblur", "--kernel", img.parent / "k.npy", img, "-o", out / "o.png"), "kernel", "9x9")


def test_error_size_the_operator_cannot_take(case):
    img, out, run = case
    odd = _png(img.parent / "odd.png", 9, 10)
    one_line_error(run("--op", "sr4", "--clean", odd, "-o", out / "o.png"))


def test_error_model_path_missing(case):
    img, out, run = case
    r = _run("solve", "--op", "sr2", "--model", img.parent / "no_model", "--no-progress", img, "-o", out / "o.png")
    one_line_error(r, "no_model")
    assert not any(out.iterdir())


def test_error_hub_id_while_offline(case):
    img, out, run = case
    r = _run("solve", "--op", "sr2", "--model", "nobody-here/no-such-model", "--no-progress", img, "-o", out / "o.png",
             env={"HF_HUB_OFFLINE": "1"})
    one_line_error(r, "HF_HUB_OFFLINE")


@pytest.mark.parametrize("opt,value,words", [("--sigma-y", "-0.1", ("--sigma-y", ">= 0")),
                                             ("--steps", "0", ("--steps", "at least 1")),
                                             ("--eta", "1.5", ("--eta", "[0, 1]"))])
def test_error_bad_numbers(case, opt, value, words):
    img, out, run = case
    r = run("--op", "sr2", opt, value, img, "-o", out / "o.png")
    # One line, `Error: Invalid value for '--opt': ...`, exit code 1, no usage block.
    assert r.exit_code == 1 and "Traceback" not in r.output and "Usage" not in r.output
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: Invalid value for") and all(w in err[0] for w in words), err


def test_error_output_equal_to_input(case):
    img, out, run = case
    before = img.read_bytes()
    one_line_error(run("--op", "deno", img, "-o", img.parent / "." / "img.png"), "input file")
    assert img.read_bytes() == before


def test_error_unwritable_output_folder(case):
    img, out, run = case
    blocker = img.parent / "a_file"
    blocker.write_text("x")
    one_line_error(run("--op", "sr2", img, "-o", blocker / "sub" / "o.png"), "not writable")


@pytest.mark.parametrize("flag", [["--precision", "fp16"], ["--fp16"]])
def test_error_fp16_on_cpu(case, flag):
    img, out, run = case
    one_line_error(run("--op", "sr2", *flag, "--device", "cpu", img, "-o", out / "o.png"), "--precision fp16", "CUDA")


def test_old_spellings_still_work(tmp_path, tiny_model):
    lr = _png(tmp_path / "lr.png", 8, 8)
    common = ("--model", tiny_model, "--steps", 2, "--no-progress", lr)
    _ok(_run("solve", "--op", "sr2", "--batch-size", 1, *common, "-o", tmp_path / "new.png"))
    _ok(_run("solve", "--task", "sr2", "--batch", 1, *common, "--out", tmp_path / "old.png"))
    assert (tmp_path / "new.png").read_bytes() == (tmp_path / "old.png").read_bytes()
    help_text = _ok(_run("solve", "--help")).output
    assert "--precision" in help_text and all(f not in help_text for f in ("--task", "--fp16", "--batch ", "--out "))


def test_error_vector_observation_needs_clean(case):
    img, out, run = case
    one_line_error(run("--op", "cs4", img, "-o", out / "o.png"), "--clean")


def test_error_jpeg_op_on_a_png(case):
    img, out, run = case
    one_line_error(run("--op", "jpeg", img, "-o", out / "o.png"), "not a JPEG")


def test_error_noise_with_a_codec(case):
    img, out, run = case
    one_line_error(run("--op", "jpeg10", "--clean", "--sigma-y", 0.1, img, "-o", out / "o.png"), "--sigma-y")


def test_degrade_draws_the_noise_of_solve_clean(tmp_path, tiny_model):
    import operators
    from ddrm_kit.imageio import to_uint8

    gt = _png(tmp_path / "gt.png", 8, 8)
    r = _ok(_run("degrade", "--op", "deno", "--sigma-y", 0.1, "--seed", 3, gt, "-o", tmp_path / "obs.png"))
    assert r.stdout == f"wrote {tmp_path / 'obs.png'} (8x8 RGB); restore it with: ddrm solve --op deno --sigma-y 0.1 {tmp_path / 'obs.png'}\n"
    _, y = _simulated(operators.get_operator("deno", (3, 8, 8)), gt, seed=3, sigma_y=0.1)
    assert np.array_equal(_pixels(tmp_path / "obs.png"), to_uint8(y))


def test_degrade_refuses_to_overwrite_its_input(tmp_path):
    gt = _png(tmp_path / "gt.png", 8, 8)
    before = gt.read_bytes()
    one_line_error(_run("degrade", "--op", "sr2", gt, "-o", gt), "input file")
    assert gt.read_bytes() == before


# ---- the papers' checkpoint files: --model FILE [--model-config C] [--class-label N], ddrm convert ------

def _checkpoint(tmp_path, key="attn_16_8", name="net.ckpt"):
    """A tiny original-layout network of tests/test_checkpoints.py saved as ``name``, and its YAML config."""
    import torch
    import yaml
    from original_unets import adm_shapes, ddpm_shapes, random_state
    from test_checkpoints import ADMS, DDPMS, adm_yaml, ddpm_yaml

    cfg = ADMS.get(key) or DDPMS[key]
    adm = key in ADMS
    torch.save(random_state(adm_shapes(cfg) if adm else ddpm_shapes(cfg), seed=1), tmp_path / name)
    (tmp_path / "net.yml").write_text(yaml.safe_dump(adm_yaml(cfg) if adm else ddpm_yaml(cfg)))
    return tmp_path / name, tmp_path / "net.yml"


def test_model_config_names_are_the_presets():
    from ddrm_kit.checkpoints import PRESETS
    from ddrm_kit.cli.options import MODEL_CONFIGS

    assert MODEL_CONFIGS == tuple(PRESETS)
    assert "convert" in _ok(_run("--help")).output
    for cmd in ("solve", "sample"):
        text = _ok(_run(cmd, "--help")).output
        assert "--model-config" in text and "--class-label" in text and "checkpoint" in text


def test_solve_with_a_checkpoint_file_equals_its_converted_folder(tmp_path):
    ckpt, yml = _checkpoint(tmp_path)
    lr = _png(tmp_path / "lr.png", 16, 16)
    common = ("solve", "--op", "sr2", "--steps", 2, "--no-progress", lr)
    r = _ok(_run(*common, "--model", ckpt, "--model-config", yml, "-o", tmp_path / "file.png"))
    assert r.stderr.count("ddrm convert") == 1 and _size(tmp_path / "file.png") == ((32, 32), "RGB")
    r = _ok(_run("convert", ckpt, "--model-config", yml, "-o", tmp_path / "conv"))
    assert r.stdout == f"wrote {tmp_path / 'conv'} (use it with --model {tmp_path / 'conv'})\n"
    r = _ok(_run(*common, "--model", tmp_path / "conv", "-o", tmp_path / "folder.png"))
    assert "ddrm convert" not in r.stderr
    assert np.array_equal(_pixels(tmp_path / "file.png"), _pixels(tmp_path / "folder.png"))


def test_checkpoint_option_errors_are_one_line_and_write_nothing(tmp_path, tiny_model):
    ckpt, yml = _checkpoint(tmp_path)
    lr = _png(tmp_path / "lr.png", 16, 16)
    out = tmp_path / "out"
    out.mkdir()

    def solve(*args):
        result = _run("solve", "--op", "sr2", "--steps", 2, "--no-progress", lr, "-o", out / "o.png", *args)
        assert not any(out.iterdir())
        return result

    one_line_error(solve("--model", ckpt, "--model-config", "imagenet_265"), "unknown --model-config 'imagenet_265'")
    # The weights are not those of the config: refused as it loads, naming --model-config.
    one_line_error(solve("--model", ckpt, "--model-config", "celeba_hq"), "--model-config", "does not fit")
    one_line_error(solve("--model", tiny_model, "--class-label", 3), "unconditional: drop --class-label")
    one_line_error(solve("--model", tiny_model, "--model-config", "celeba_hq"), "drop --model-config")
    one_line_error(solve("--model", tmp_path / "missing.pt"), "no such checkpoint file")


def test_sample_a_class_conditional_checkpoint(tmp_path):
    ckpt, yml = _checkpoint(tmp_path, "legacy_headch_cc_sigma_updown_ss", "cc.pt")
    common = ("sample", "--model", ckpt, "--model-config", yml, "-n", 1, "--steps", 2, "--no-progress")
    one_line_error(_run(*common, "-o", tmp_path / "none"), "class-conditional (1000 classes)", "--class-label")
    assert not (tmp_path / "none").exists()
    _ok(_run(*common, "--class-label", 3, "-o", tmp_path / "three"))
    assert _size(tmp_path / "three" / "sample_000.png") == ((32, 32), "RGB")
