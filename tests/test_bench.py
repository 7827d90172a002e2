"""`ddrm bench`: preprocessing, per-image seeds, outputs and metric values, and the 2-rank gloo run."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ddrm_kit import Prior
from ddrm_kit.bench import BenchConfig, bench_command, image_seed, preprocess, reference_lines, run_bench
from ddrm_kit.imageio import load_image
from ddrm_kit.metrics import psnr, psnr_uint8, ssim

T = 1000

pytestmark = pytest.mark.usefixtures("one_thread")  # shared fixture (conftest.py): one torch thread


def _alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


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


def _gaussian_prior(c: float = 0.5) -> Prior:
    """The exact ε̂ for images x0 ~ N(0, c² I): a cheap analytic stand-in for a network."""
    ac = _alphas_cumprod().float()

    def eps(x_t, t):
        a = ac[t].view(-1, 1, 1, 1)
        x0 = a.sqrt() * c**2 / (a * c**2 + 1 - a) * x_t
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    return Prior(eps, _alphas_cumprod(), channels=3)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _without_times(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# ---------------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("h,w,rows,cols", [(512, 768, (6, 506), (134, 634)), (768, 512, (134, 634), (6, 506))])
def test_crop_500_reproduces_ffdnet_kodak24_crops(h, w, rows, cols):
    # SOURCES.md: FFDNet's Kodak24 are img[6:506, 134:634] (landscape) and img[134:634, 6:506] (portrait).
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


def test_image_seed_depends_only_on_seed_and_index():
    assert image_seed(0, 3) == image_seed(0, 3)
    seeds = {image_seed(s, i) for s in range(3) for i in range(50)}
    assert len(seeds) == 150
    assert all(0 <= v < 2**63 for v in seeds)


# ---------------------------------------------------------------------------------- single process


def test_bench_rows_match_metrics_computed_directly(tmp_path):
    data = tmp_path / "data"
    paths = _write_images(data, [(16, 16), (20, 12), (16, 16)])
    cfg = BenchConfig(task="sr2", data=data, out=tmp_path / "out", sigma_y=0.05, steps=4, seed=7, progress=False)
    rows = run_bench(cfg, prior=_gaussian_prior())

    out = tmp_path / "out"
    for f in ("per_image.csv", "summary.md", "summary.json", "grid.png"):
        assert (out / f).is_file(), f
    csv_rows = _read_csv(out / "per_image.csv")
    assert list(csv_rows[0]) == ["index", "name", "method", "psnr", "psnr_uint8", "ssim", "lpips", "seconds"]
    assert [(r["name"], r["method"]) for r in csv_rows] == [
        (p.name, m) for p in paths for m in ("ddrm", "h_pinv", "bicubic")
    ]
    assert len(rows) == len(csv_rows)

    # Recompute the H_pinv and bicubic rows of image 1 (20x12) from scratch: same noise, same metrics.
    from operators import get_operator

    x = load_image(paths[1])
    op = get_operator("sr2", tuple(x.shape[1:]))
    g = torch.Generator().manual_seed(image_seed(7, 1))
    y = op.H(x)
    y = y + 0.1 * torch.randn(y.shape[1:], generator=g)
    xp = op.H_pinv(y)
    xb = torch.nn.functional.interpolate(y, size=x.shape[-2:], mode="bicubic", align_corners=False)
    got = {r["method"]: r for r in csv_rows if r["index"] == "1"}
    for method, img in (("h_pinv", xp), ("bicubic", xb)):
        assert float(got[method]["psnr"]) == pytest.approx(psnr(img, x).item(), abs=1e-9)
        assert float(got[method]["psnr_uint8"]) == pytest.approx(psnr_uint8(img, x).item(), abs=1e-9)
        assert float(got[method]["ssim"]) == pytest.approx(ssim(img, x).item(), abs=1e-9)
    # Sanity of the values themselves: finite PSNRs in a plausible range, SSIM in (0, 1].
    for r in csv_rows:
        assert 5 < float(r["psnr"]) < 60 and 0 < float(r["ssim"]) <= 1, r

    summary = (out / "summary.md").read_text()
    assert "| DDRM |" in summary and "| H_pinv(y) |" in summary and "bicubic" in summary
    assert "LPIPS, FID and KID were not computed" in summary
    assert "images: 3" in summary


def test_clip_denoised_is_applied_and_recorded(tmp_path):
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    psnrs = {}
    for clip in (False, True):
        out = tmp_path / f"clip{clip}"
        cfg = BenchConfig(task="color", data=data, out=out, steps=4, progress=False, clip_denoised=clip)
        run_bench(cfg, prior=_gaussian_prior(c=3.0))  # a prior whose predictions leave [-1, 1]
        psnrs[clip] = next(float(r["psnr"]) for r in _read_csv(out / "per_image.csv") if r["method"] == "ddrm")
        assert ("x̂0 clipped" in (out / "summary.md").read_text()) == clip
    assert psnrs[True] != psnrs[False]


def test_batch_size_does_not_change_the_rows(tmp_path):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (16, 16), (24, 16), (16, 16), (16, 16)])
    runs = []
    for batch in (1, 3):
        cfg = BenchConfig(task="sr2", data=data, out=tmp_path / f"b{batch}", sigma_y=0.05, steps=3, batch=batch,
                          progress=False)
        run_bench(cfg, prior=_gaussian_prior())
        runs.append(_without_times(_read_csv(tmp_path / f"b{batch}" / "per_image.csv")))
    assert runs[0] == runs[1]


def test_deno_with_an_oracle_prior_recovers_the_image_and_scores_the_observation(tmp_path):
    data = tmp_path / "data"
    (path,) = _write_images(data, [(24, 16)], seed=3)
    x_true = load_image(path)
    ac = _alphas_cumprod().float()

    def oracle(x_t, t):
        # The exact noise of x_t = sqrt(ᾱ) x + sqrt(1-ᾱ) ε for the true image.
        a = ac[t].view(-1, 1, 1, 1)
        return (x_t - a.sqrt() * x_true) / (1 - a).sqrt()

    cfg = BenchConfig(task="deno", data=data, out=tmp_path / "out", sigma_y=0.1, steps=5, progress=False)
    rows = {r["method"]: r for r in run_bench(cfg, prior=Prior(oracle, _alphas_cumprod(), channels=3))}
    assert set(rows) == {"ddrm", "h_pinv", "observation"}
    assert rows["ddrm"]["psnr"] > 50
    # Noise of std 0.1 on [0, 1] pixels: PSNR close to 20 dB (clamping at 0 and 1 only helps).
    assert 19.5 < rows["observation"]["psnr"] < 22
    # For the identity, H_pinv(y) is y itself.
    assert rows["h_pinv"]["psnr"] == pytest.approx(rows["observation"]["psnr"])


def test_reference_lists_only_verified_numbers_and_marks_the_noise_level():
    lines = "\n".join(reference_lines("sr4", 0.025, {"ddrm": {"psnr": 24.0}}))
    assert "25.21" in lines and "26.55" in lines and "24.00 (yes)" in lines and "24.00 (no)" in lines
    assert "No verified published numbers" in reference_lines("inp_lorem", 0.0, {})[0]


# ---------------------------------------------------------------------------------- CLI and scale-out


def _gloo_rank(rank: int, world: int, init_file: str, data: str, out: str) -> None:
    """One rank of a gloo group (file:// rendezvous), as a launcher such as accelerate would set it up."""
    import torch.distributed as dist

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = BenchConfig(task="sr2", data=Path(data), out=Path(out), sigma_y=0.05, steps=3, seed=5, progress=False)
        run_bench(cfg, prior=_gaussian_prior())
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_shard_and_gather_the_same_rows(tmp_path):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (24, 16), (16, 16)])
    cfg = BenchConfig(task="sr2", data=data, out=tmp_path / "one", sigma_y=0.05, steps=3, seed=5, progress=False)
    run_bench(cfg, prior=_gaussian_prior())
    torch.multiprocessing.spawn(
        _gloo_rank, args=(2, str(tmp_path / "rdzv"), str(data), str(tmp_path / "two")), nprocs=2, join=True
    )
    one = _read_csv(tmp_path / "one" / "per_image.csv")
    two = _read_csv(tmp_path / "two" / "per_image.csv")
    assert len(one) == 3 * 3
    assert _without_times(one) == _without_times(two)
    assert "ranks: 2" in (tmp_path / "two" / "summary.md").read_text()


def _tiny_unet_folder(folder: Path) -> Path:
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    unet.save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=T).save_pretrained(folder)
    return folder


def test_cli_errors_are_clean(tmp_path):
    runner = CliRunner()
    res = runner.invoke(bench_command, ["--task", "sr4", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "no such folder" in res.output and "Traceback" not in res.output
    _write_images(tmp_path / "d", [(16, 16)])
    res = runner.invoke(
        bench_command, ["--task", "sr4", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                        "--size", "16", "--crop", "16"])
    assert res.exit_code != 0 and "not both" in res.output
    model = _tiny_unet_folder(tmp_path / "unet")
    res = runner.invoke(
        bench_command, ["--task", "sr44x", "--model", str(model), "--data", str(tmp_path / "d"),
                        "--out", str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code != 0 and "sr4" in res.output and "Traceback" not in res.output


def _cli_args(data: Path, model: Path, out: Path) -> list[str]:
    return ["--task", "inp_random50", "--model", str(model), "--data", str(data), "--out", str(out),
            "--steps", "3", "--sigma-y", "0.05", "--seed", "5", "--device", "cpu", "--no-progress"]


@pytest.mark.slow
def test_two_gloo_ranks_equal_the_single_process_run_row_for_row(tmp_path):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (16, 16), (24, 16), (16, 16), (16, 24)])
    model = _tiny_unet_folder(tmp_path / "unet")

    res = CliRunner().invoke(bench_command, _cli_args(data, model, tmp_path / "one"))
    assert res.exit_code == 0, res.output

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "ddrm_kit.bench", *_cli_args(data, model, tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    one = _read_csv(tmp_path / "one" / "per_image.csv")
    two = _read_csv(tmp_path / "two" / "per_image.csv")
    assert len(one) == 5 * 2  # ddrm + h_pinv for each image (inpainting's y is not an image)
    assert _without_times(one) == _without_times(two)
    summary = (tmp_path / "two" / "summary.md").read_text()
    assert "ranks: 2" in summary and "torchrun --nproc-per-node 2 -m ddrm_kit.bench" in summary
    assert all(math.isfinite(float(r["psnr"])) for r in two)
