"""`ddrm bench`: preprocessing, rows equal to ddrm_kit.restore computed directly, outputs, the CLI,
`ddrm solve --clean` = bench, and the 2-rank gloo run."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import assert_bench_equals_degrade_then_solve, isotropic_gaussian_prior, make_oracle_prior
from PIL import Image

from ddrm_kit import load_prior
from ddrm_kit.bench import BenchConfig, preprocess, reference_lines, run_bench
from ddrm_kit.cli import main
from ddrm_kit.cli.bench import bench_command
from ddrm_kit.imageio import load_image, to_uint8
from ddrm_kit.restore import NOISE, SAMPLER, Settings, generators, observe, restore, score
from operators import get_operator

pytestmark = pytest.mark.usefixtures("one_thread")  # shared fixture (conftest.py): one torch thread


def _write_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    """Smooth random colour images (W, H) saved as PNG, so that restoration has something to find."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k, (w, h) in enumerate(sizes):
        coarse = rng.uniform(0, 255, size=(max(h // 4, 2), max(w // 4, 2), 3)).astype(np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        paths.append(folder / f"img{k:02d}.png")
        img.save(paths[-1])
    return paths


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _without_times(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _direct(prior, name: str, x: torch.Tensor, op_name: str, sigma_y: float, seed: int, settings: Settings):
    """(operator, y, DDRM result) for one image computed with ddrm_kit.restore alone, as bench must."""
    op = get_operator(op_name, tuple(x.shape[1:]))
    y = observe(op, x, 2 * sigma_y, generators(seed, [name], NOISE))
    xr = restore(prior, op, y, settings, 2 * sigma_y, generators(seed, [name], SAMPLER), progress=False)
    return op, y, xr


def _assert_row(row: dict, img: torch.Tensor, ref: torch.Tensor) -> None:
    """A csv (strings) or returned (floats) row holds exactly restore.score(img, ref)."""
    want = score(img, ref)
    for k in ("psnr", "psnr_uint8", "ssim"):
        assert float(row[k]) == want[k][0], (row["method"], k)


# ---------------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("h,w,rows,cols", [(512, 768, (6, 506), (134, 634)), (768, 512, (134, 634), (6, 506))])
def test_crop_500_reproduces_ffdnet_kodak24_crops(h, w, rows, cols):
    # FFDNet's Kodak24 test crops are img[6:506, 134:634] (landscape) and img[134:634, 6:506] (portrait).
    x = torch.arange(3 * h * w, dtype=torch.float32).reshape(1, 3, h, w)
    got = preprocess(x, crop=500)
    assert torch.equal(got, x[:, :, rows[0] : rows[1], cols[0] : cols[1]])


def test_size_resizes_short_side_then_centre_crops_and_modcrop_and_grey():
    x = torch.rand(1, 1, 30, 45) * 2 - 1
    got = preprocess(x, size=20, multiple=8)
    assert got.shape == (1, 3, 16, 16)  # 20x20, then cut to a multiple of 8; grey -> 3 channels
    assert torch.equal(got[:, 0], got[:, 2])
    assert got.abs().max() <= 1
    # A square image is simply resized (faces).
    sq = torch.rand(1, 3, 40, 40) * 2 - 1
    assert preprocess(sq, size=40).equal(sq)
    # Native resolution keeps pixels; modcrop cuts bottom/right only.
    nat = torch.rand(1, 3, 21, 18)
    assert preprocess(nat, multiple=4).equal(nat[:, :, :20, :16])


def test_preprocess_errors_are_one_line_value_errors():
    with pytest.raises(ValueError, match="smaller than --crop"):
        preprocess(torch.zeros(1, 3, 10, 10), crop=11)
    with pytest.raises(ValueError, match="not both"):
        preprocess(torch.zeros(1, 3, 10, 10), size=8, crop=8)


# ---------------------------------------------------------------------------------- single process


def test_bench_rows_equal_restore_and_score_computed_directly(tmp_path):
    data = tmp_path / "data"
    paths = _write_images(data, [(16, 16), (20, 12), (16, 16)])
    out = tmp_path / "out"
    cfg = BenchConfig(op="sr2", data=data, output=out, sigma_y=0.05, steps=4, seed=7, progress=False,
                      observation="float")
    prior = isotropic_gaussian_prior()
    rows = run_bench(cfg, prior=prior)

    csv_rows = _read_csv(out / "per_image.csv")
    assert list(csv_rows[0]) == ["index", "name", "method", "psnr", "psnr_uint8", "ssim", "lpips", "seconds"]
    assert [(r["name"], r["method"]) for r in csv_rows] == [
        (p.name, m) for p in paths for m in ("ddrm", "h_pinv", "bicubic")
    ]
    assert _without_times(csv_rows) == _without_times([{k: str(v) for k, v in r.items()} for r in rows])
    # Every row, recomputed from the file with ddrm_kit.restore alone: same noise, same DDRM, same scores.
    for path in paths:
        x = load_image(path)
        op, y, xr = _direct(prior, path.name, x, "sr2", 0.05, 7, Settings(steps=4))
        xb = torch.nn.functional.interpolate(y, size=x.shape[-2:], mode="bicubic", align_corners=False)
        got = {r["method"]: r for r in csv_rows if r["name"] == path.name}
        for method, img in (("ddrm", xr), ("h_pinv", op.H_pinv(y)), ("bicubic", xb)):
            _assert_row(got[method], img, x)

    summary = (out / "summary.md").read_text()
    assert "| DDRM |" in summary and "| H_pinv(y) |" in summary and "| bicubic upsampling of y |" in summary
    assert "LPIPS, FID and KID were not computed" in summary
    assert "images: 3" in summary and "seed 7 (per image: hash of seed and file name)" in summary
    means = json.loads((out / "summary.json").read_text())["means"]
    assert means["ddrm"]["psnr"] == pytest.approx(sum(r["psnr"] for r in rows if r["method"] == "ddrm") / 3)
    # The grid: labels, then 3 rows of 4 panels (ground truth, observation, bicubic, DDRM) with 4-pixel gutters.
    grid = np.asarray(Image.open(out / "grid.png"))
    top = grid.shape[0] - (16 + 12 + 16 + 2 * 4)
    assert top > 0 and grid.shape[1:] == (4 * 20 + 3 * 4, 3)
    assert np.array_equal(grid[top : top + 16, :16], to_uint8(load_image(paths[0])))


def test_a_row_depends_on_the_file_name_not_on_the_other_images(tmp_path):
    paths = _write_images(tmp_path / "all", [(16, 16), (16, 16), (16, 16)])
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(paths[1], alone / paths[1].name)
    runs = []
    for data in (tmp_path / "all", alone):
        cfg = BenchConfig(op="deno", data=data, output=tmp_path / f"out_{data.name}", sigma_y=0.1, steps=3, seed=2,
                          progress=False)
        runs.append([{k: v for k, v in r.items() if k not in ("index", "seconds")}
                     for r in run_bench(cfg, prior=isotropic_gaussian_prior()) if r["name"] == paths[1].name])
    assert runs[0] == runs[1] and len(runs[0]) == 3


def test_clip_denoised_and_average_are_restore_settings(tmp_path):
    data = tmp_path / "data"
    (path,) = _write_images(data, [(16, 16)])
    x = load_image(path)
    prior = isotropic_gaussian_prior(c=3.0)  # a prior whose predictions leave [-1, 1]
    ddrm_psnr = {}
    for clip, average in ((False, 1), (True, 1), (True, 2)):
        out = tmp_path / f"clip{clip}_{average}"
        cfg = BenchConfig(op="color", data=data, output=out, steps=4, progress=False, clip_denoised=clip,
                          average=average, observation="float")
        rows = {r["method"]: r for r in run_bench(cfg, prior=prior)}
        settings = Settings(steps=4, clip_denoised=clip, average=average)
        _assert_row(rows["ddrm"], _direct(prior, path.name, x, "color", 0.0, 0, settings)[2], x)
        ddrm_psnr[clip, average] = rows["ddrm"]["psnr"]
        summary = (out / "summary.md").read_text()
        assert ("x̂0 clipped" in summary) == clip
        assert ("mean of 2 samples" in summary) == (average == 2)
        # With --average K the first sample is scored alone too: it is the run with average 1.
        assert ("ddrm_1" in rows) == (average == 2) and ("| DDRM, one sample |" in summary) == (average == 2)
    assert len(set(ddrm_psnr.values())) == 3
    assert rows["ddrm_1"]["psnr"] == ddrm_psnr[True, 1]


def test_batch_size_does_not_change_the_rows(tmp_path):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (16, 16), (24, 16), (16, 16), (16, 16)])
    runs = []
    for batch_size in (1, 3):
        cfg = BenchConfig(op="sr2", data=data, output=tmp_path / f"b{batch_size}", sigma_y=0.05, steps=3,
                          batch_size=batch_size, progress=False)
        run_bench(cfg, prior=isotropic_gaussian_prior())
        runs.append(_without_times(_read_csv(tmp_path / f"b{batch_size}" / "per_image.csv")))
    assert runs[0] == runs[1]


def test_deno_with_an_oracle_prior_recovers_the_image_and_scores_the_observation(tmp_path):
    data = tmp_path / "data"
    (path,) = _write_images(data, [(24, 16)], seed=3)
    x_true = load_image(path)
    cfg = BenchConfig(op="deno", data=data, output=tmp_path / "out", sigma_y=0.1, steps=5, progress=False,
                      observation="float")
    rows = {r["method"]: r for r in run_bench(cfg, prior=make_oracle_prior(x_true))}
    assert set(rows) == {"ddrm", "h_pinv", "observation"}
    assert rows["ddrm"]["psnr"] > 50
    # The observation row scores x + 0.2 z (std 0.1 in [0, 1] pixels) with the image's own NOISE generator.
    y = observe(get_operator("deno", tuple(x_true.shape[1:])), x_true, 0.2, generators(0, [path.name], NOISE))
    _assert_row(rows["observation"], y, x_true)
    # For the identity, H_pinv(y) is y itself.
    assert rows["h_pinv"]["psnr"] == rows["observation"]["psnr"]


def test_reference_lists_only_verified_numbers_and_marks_the_noise_level():
    lines = "\n".join(reference_lines("sr4", 0.05, {"ddrm": {"psnr": 24.0}}))
    assert "25.21" in lines and "26.55" in lines and "24.00 (yes)" in lines and "24.00 (no)" in lines
    assert "No verified published numbers" in reference_lines("inp_lorem", 0.0, {})[0]


def test_bad_options_fail_before_any_work(tmp_path):
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    bad = [
        ({"op": "jpeg10", "sigma_y": 0.05}, "not used by jpeg10"),
        ({"op": "sr2", "batch_size": 0}, "--batch-size"),
        ({"op": "sr2", "precision": "float32"}, "--precision"),
        ({"op": "sr2", "average": 0}, "average"),
        ({"op": "sr2", "output": data / "img00.png"}, "is a file"),
        ({"op": "sr44x"}, "sr4"),
        ({"op": "sr2", "observation": "uint16"}, "--observation must be one of uint8, float"),
    ]
    for kwargs, message in bad:
        cfg = BenchConfig(**{"data": data, "output": tmp_path / "out", "progress": False, **kwargs})
        with pytest.raises(ValueError, match=message):
            run_bench(cfg, prior=isotropic_gaussian_prior())
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- CLI and scale-out


def _gloo_rank(rank: int, world: int, init_file: str, data: str, out: str) -> None:
    """One rank of a gloo group (file:// rendezvous), as a launcher such as accelerate would set it up."""
    import torch.distributed as dist

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = BenchConfig(op="sr2", data=Path(data), output=Path(out), sigma_y=0.05, steps=3, seed=5, progress=False)
        run_bench(cfg, prior=isotropic_gaussian_prior())
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_shard_and_gather_the_same_rows(tmp_path):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (24, 16), (16, 16)])
    cfg = BenchConfig(op="sr2", data=data, output=tmp_path / "one", sigma_y=0.05, steps=3, seed=5, progress=False)
    run_bench(cfg, prior=isotropic_gaussian_prior())
    torch.multiprocessing.spawn(
        _gloo_rank, args=(2, str(tmp_path / "rdzv"), str(data), str(tmp_path / "two")), nprocs=2, join=True
    )
    one = _read_csv(tmp_path / "one" / "per_image.csv")
    two = _read_csv(tmp_path / "two" / "per_image.csv")
    assert len(one) == 3 * 3
    assert _without_times(one) == _without_times(two)
    assert "ranks: 2" in (tmp_path / "two" / "summary.md").read_text()


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(bench_command, ["--op", "sr4", "--data", str(tmp_path / "nope"), "-o", str(tmp_path)])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [
        f"Error: --data {tmp_path / 'nope'}: no such folder; give a folder of clean images"]
    _write_images(tmp_path / "d", [(16, 16)])
    res = runner.invoke(bench_command, ["--op", "sr4", "--data", str(tmp_path / "d"), "-o", str(tmp_path / "o"),
                                        "--size", "16", "--crop", "16"])
    assert res.exit_code == 1 and "not both" in res.output and "Traceback" not in res.output
    res = runner.invoke(bench_command, ["--op", "sr44x", "--data", str(tmp_path / "d"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 1 and "did you mean sr4" in res.output and "Traceback" not in res.output


def test_help_shows_the_shared_vocabulary_only():
    out = _ok(CliRunner().invoke(main, ["bench", "--help"])).output
    for flag in ("--op", "-o, --output", "--batch-size", "--precision", "--progress / --no-progress", "--average"):
        assert flag in out, flag
    for old in ("--task", "--out ", "--batch ", "--dtype"):
        assert old not in out, old


def test_old_spellings_still_work_and_give_the_same_rows(tmp_path, tiny_unet_dir):
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    common = ["--model", str(tiny_unet_dir), "--data", str(data), "--steps", "2", "--device", "cpu"]
    _ok(CliRunner().invoke(main, ["bench", "--op", "inp_random50", "-o", str(tmp_path / "new"), "--batch-size", "2",
                                  "--precision", "fp32", "--no-progress", *common]))
    _ok(CliRunner().invoke(main, ["bench", "--task", "inp_random50", "--out", str(tmp_path / "old"), "--batch", "2",
                                  "--dtype", "float32", "--no-progress", *common]))
    new, old = (_without_times(_read_csv(tmp_path / d / "per_image.csv")) for d in ("new", "old"))
    assert new == old and [r["method"] for r in new] == ["ddrm", "h_pinv"]


def test_solve_clean_writes_the_image_bench_saves(tmp_path, tiny_unet_dir):
    """Same image, operator, seed and settings: `ddrm solve --clean` and `ddrm bench` restore identically."""
    data = tmp_path / "data"
    (path,) = _write_images(data, [(16, 16)], seed=4)
    common = ["--op", "sr2", "--model", str(tiny_unet_dir), "--sigma-y", "0.05", "--seed", "3", "--steps", "3",
              "--device", "cpu", "--no-progress"]
    runner = CliRunner()
    _ok(runner.invoke(main, ["bench", *common, "--data", str(data), "-o", str(tmp_path / "bench"), "--save-images",
                             "--observation", "float"]))
    _ok(runner.invoke(main, ["solve", *common, "--clean", str(path), "-o", str(tmp_path / "solve.png")]))
    benched = np.asarray(Image.open(tmp_path / "bench" / "images" / f"{path.stem}.png"))
    solved = np.asarray(Image.open(tmp_path / "solve.png"))
    assert np.array_equal(benched, solved)
    # ... and both are ddrm_kit.restore's answer.
    x = load_image(path)
    prior = load_prior(tiny_unet_dir, device="cpu")
    assert np.array_equal(solved, to_uint8(_direct(prior, path.name, x, "sr2", 0.05, 3, Settings(steps=3))[2]))


def _cli_args(data: Path, model: Path, out: Path) -> list[str]:
    return ["--op", "inp_random50", "--model", str(model), "--data", str(data), "-o", str(out),
            "--steps", "3", "--sigma-y", "0.05", "--seed", "5", "--device", "cpu", "--no-progress"]


@pytest.mark.slow
def test_two_gloo_ranks_equal_the_single_process_run_row_for_row(tmp_path, tiny_unet_dir):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (16, 16), (24, 16), (16, 16), (16, 24)])

    _ok(CliRunner().invoke(bench_command, _cli_args(data, tiny_unet_dir, tmp_path / "one")))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "ddrm_kit.bench", *_cli_args(data, tiny_unet_dir, tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    one = _read_csv(tmp_path / "one" / "per_image.csv")
    two = _read_csv(tmp_path / "two" / "per_image.csv")
    assert len(one) == 5 * 2  # ddrm + h_pinv for each image (inpainting's y is not an image)
    assert _without_times(one) == _without_times(two)
    summary = (tmp_path / "two" / "summary.md").read_text()
    assert "ranks: 2" in summary and "torchrun --nproc-per-node 2 -m ddrm_kit.bench" in summary
    assert all(math.isfinite(float(r["psnr"])) for r in two)


# ---------------------------------------------------------------------------------- 8-bit observations


ROUNDING = 1 / (255 * math.sqrt(12))  # the rounding noise of an 8-bit file, [0, 1] units


def _through_a_file(y: torch.Tensor, tmp: Path) -> torch.Tensor:
    """``y`` (one image) written as an 8-bit PNG and read back."""
    from ddrm_kit.imageio import save_image

    return load_image(save_image(y, tmp / "y.png"))


@pytest.mark.parametrize("sigma_y", [0.0, 0.02])
def test_uint8_rounds_y_as_a_file_and_raises_the_sampler_sigma_to_the_rounding_noise(tmp_path, sigma_y):
    data = tmp_path / "data"
    (path,) = _write_images(data, [(16, 16)], seed=6)
    x = load_image(path)
    prior = isotropic_gaussian_prior()
    cfg = BenchConfig(op="deblur_gauss", data=data, output=tmp_path / "out", sigma_y=sigma_y, steps=4, seed=3,
                      progress=False)
    assert cfg.observation == "uint8"  # the default
    rows = {r["method"]: r for r in run_bench(cfg, prior=prior)}
    op = get_operator("deblur_gauss", tuple(x.shape[1:]))
    y = _through_a_file(observe(op, x, 2 * sigma_y, generators(3, [path.name], NOISE)), tmp_path)
    sampler = 2 * max(sigma_y, ROUNDING)
    xr = restore(prior, op, y, Settings(steps=4), sampler, generators(3, [path.name], SAMPLER), progress=False)
    for method, img in (("ddrm", xr), ("h_pinv", op.H_pinv(y)), ("observation", y)):
        _assert_row(rows[method], img, x)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["observation"] == "uint8" and summary["observation_rounded"] is True
    assert summary["sampler_sigma_y"] == max(sigma_y, ROUNDING)
    assert "- observation: rounded to 8 bits as a file holds it (--observation uint8)" in (
        tmp_path / "out" / "summary.md").read_text()


def test_uint8_leaves_codecs_and_vector_observations_alone(tmp_path):
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    for op_name in ("jpeg10", "cs2"):
        runs = []
        for observation in ("float", "uint8"):
            out = tmp_path / f"{op_name}_{observation}"
            cfg = BenchConfig(op=op_name, data=data, output=out, steps=3, progress=False, observation=observation)
            runs.append(_without_times(_read_csv(out / "per_image.csv")) if run_bench(cfg, prior=isotropic_gaussian_prior())
                        else None)
            summary = json.loads((out / "summary.json").read_text())
            assert summary["observation"] == observation and summary["observation_rounded"] is False
            assert summary["sampler_sigma_y"] == 0.0
        assert runs[0] == runs[1], op_name


@pytest.mark.parametrize(("op_name", "sigma_y"), [("deblur_gauss", "0"), ("sr2", "0.02"), ("inp_random50", "0"),
                                                  ("color", "0")])
def test_uint8_bench_equals_degrade_then_solve_on_the_8bit_file(tmp_path, tiny_unet_dir, op_name, sigma_y):
    """`ddrm bench` (default --observation uint8) restores what `ddrm solve` restores from `ddrm degrade`'s file."""
    data = tmp_path / "data"
    (path,) = _write_images(data, [(16, 16)], seed=9)
    noise = ["--op", op_name, "--sigma-y", sigma_y, "--seed", "4"]
    run = ["--model", str(tiny_unet_dir), "--steps", "3", "--device", "cpu", "--no-progress"]
    assert_bench_equals_degrade_then_solve(tmp_path, path, [*noise, *run], noise, [*noise, *run])


# ---------------------------------------------------------------------------------- what the command shows


def test_cli_prints_the_score_table_and_every_file_it_wrote(tmp_path, tiny_unet_dir):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (16, 16)])
    out = tmp_path / "out"
    res = _ok(CliRunner().invoke(main, ["bench", "--op", "sr2", "--model", str(tiny_unet_dir), "--steps", "2",
                                        "--device", "cpu", "--no-progress", "--data", str(data), "-o", str(out),
                                        "--save-images"]))
    summary = (out / "summary.md").read_text().splitlines()
    table = summary[summary.index("| method | PSNR (dB) | PSNR uint8 (dB) | SSIM | s / image |"):][:5]
    assert table[-1].startswith("| bicubic upsampling of y |")
    lines = res.output.splitlines()
    assert lines[:5] == table
    assert lines[-5:] == [f"wrote {out / name}" for name in ("per_image.csv", "summary.md", "summary.json",
                                                             "grid.png", "images/ (2 images)")]


def test_grid_columns_are_labelled(tmp_path):
    data = tmp_path / "data"
    _write_images(data, [(160, 64)])
    cfg = BenchConfig(op="deno", data=data, output=tmp_path / "out", sigma_y=0.1, steps=2, progress=False)
    run_bench(cfg, prior=isotropic_gaussian_prior())
    grid = np.asarray(Image.open(tmp_path / "out" / "grid.png").convert("L"))
    top = grid.shape[0] - 64
    assert grid.shape[1] == 4 * 160 + 3 * 4 and top > 4
    assert (grid[top - 4 : top] == 255).all()  # a white gutter between the labels and the images
    for col in range(4):
        cell = grid[: top - 4, col * 164 : col * 164 + 160]
        dark = np.nonzero((cell < 128).any(axis=0))[0]
        assert dark.size, col  # black text over every column ...
        assert dark.min() > 10 and dark.min() + dark.max() in range(157, 162)  # ... centred in it
    assert "columns: ground truth, observation, baseline (H_pinv(y)), DDRM" in (
        tmp_path / "out" / "summary.md").read_text()


def test_a_folder_with_results_is_refused_unless_overwrite(tmp_path, tiny_unet_dir):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (16, 16)])
    out = tmp_path / "out"
    common = ["bench", "--op", "deno", "--sigma-y", "0.1", "--model", str(tiny_unet_dir), "--steps", "2",
              "--device", "cpu", "--no-progress", "--data", str(data), "-o", str(out)]
    runner = CliRunner()
    _ok(runner.invoke(main, [*common, "--save-images"]))
    before = (out / "per_image.csv").read_bytes()
    res = runner.invoke(main, [*common, "--seed", "1"])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [
        f"Error: --output {out} already holds bench results (per_image.csv, summary.md, summary.json, grid.png, "
        "images/ (2 images)); give another folder, or --overwrite to replace them"]
    assert (out / "per_image.csv").read_bytes() == before
    # --overwrite replaces them, and removes what the new run does not write (no grid, no images).
    (out / "notes.txt").write_text("mine")
    res = _ok(runner.invoke(main, [*common, "--seed", "1", "--grid", "0", "--overwrite"]))
    assert (out / "per_image.csv").read_bytes() != before
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "per_image.csv", "summary.json", "summary.md"]
    assert res.output.splitlines()[-3:] == [f"wrote {out / n}" for n in ("per_image.csv", "summary.md", "summary.json")]


def test_bench_passes_model_config_and_class_label_to_load_prior(tmp_path, monkeypatch):
    import ddrm_kit

    seen = {}

    def fake_load_prior(model, **kwargs):
        seen.update(model=model, **kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(ddrm_kit, "load_prior", fake_load_prior)
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(data / "a.png")
    result = CliRunner().invoke(main, ["bench", "--op", "sr2", "--model", "celeba_hq.ckpt", "--model-config",
                                       "celeba_hq", "--class-label", "3", "--data", str(data), "-o",
                                       str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1 and "stop here" in result.output
    assert seen["model"] == "celeba_hq.ckpt" and seen["config"] == "celeba_hq" and seen["class_label"] == 3


def test_ddrm_is_the_default_method_with_20_steps_and_no_noise(tmp_path):
    """`--method ddrm` is today's bench: BenchConfig's unset steps and sigma_y are DDRM's 20 and 0."""
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    common = dict(op="sr2", data=data, seed=1, progress=False)
    default = run_bench(BenchConfig(output=tmp_path / "a", **common), prior=isotropic_gaussian_prior())
    explicit = run_bench(BenchConfig(output=tmp_path / "b", method="ddrm", steps=20, sigma_y=0.0, **common),
                         prior=isotropic_gaussian_prior())
    assert _without_times(default) == _without_times(explicit) and default[0]["method"] == "ddrm"
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert (summary["method"], summary["steps"], summary["sigma_y"], summary["palette"]) == ("ddrm", 20, 0.0, None)
    assert summary["clip_denoised"] is False
    assert (tmp_path / "a" / "summary.md").read_text().startswith("# ddrm bench: `sr2`")


def test_bench_and_solve_use_and_report_the_priors_settings(tmp_path, tiny_unet_dir):
    """A prior's ddrm_settings.json applies wherever --steps/--eta/--eta-b are not given; both commands say so."""
    import shutil

    model = tmp_path / "prior"
    shutil.copytree(tiny_unet_dir, model)
    (model / "ddrm_settings.json").write_text(json.dumps({"superres": {"steps": 3, "eta": 0.4}}))
    data = tmp_path / "data"
    (path,) = _write_images(data, [(16, 16)], seed=4)
    common = ["--op", "sr2", "--model", str(model), "--seed", "3", "--device", "cpu", "--no-progress"]
    runner = CliRunner()
    _ok(runner.invoke(main, ["bench", *common, "--data", str(data), "-o", str(tmp_path / "bench"), "--save-images"]))
    summary = json.loads((tmp_path / "bench" / "summary.json").read_text())
    assert (summary["steps"], summary["eta"], summary["eta_b"], summary["t0"]) == (3, 0.4, 1.0, None)
    note = "steps 3, eta 0.4, eta_b 1 (steps, eta: the prior's ddrm_settings.json, superres; eta_b: the papers')"
    assert f"; {note}, seed 3" in (tmp_path / "bench" / "summary.md").read_text()
    solved = _ok(runner.invoke(main, ["solve", *common, str(path), "-o", str(tmp_path / "solve.png")]))
    assert f"DDRM settings: {note}\n" in solved.stderr
    # the same as giving them, which the bench image (an 8-bit y, as solve reads the file) matches
    given = _ok(runner.invoke(main, ["solve", *common, "--steps", "3", "--eta", "0.4", str(path),
                                     "-o", str(tmp_path / "given.png")]))
    assert "DDRM settings: steps 3, eta 0.4, eta_b 1 (steps, eta: given; eta_b: the papers')\n" in given.stderr
    assert (tmp_path / "solve.png").read_bytes() == (tmp_path / "given.png").read_bytes()
