"""`ddrm bench`'s LPIPS, FID and KID (ddrm_kit.bench.scores, .setmetrics): which metrics run, where
their weights come from (never a download), and the numbers against the libraries' own.

The networks' real weights cannot be fetched here, so the tests write RANDOM weights of the real
shapes (torchvision's AlexNet, torch-fidelity's Inception-v3) as the files the bench reads, run the
bench's code path, and compare with what `lpips` and `torch_fidelity.calculate_metrics` compute
themselves (loading the same files their own way) on the same images. Those tests need the optional
extra (`pip install "ddrm-kit[metrics]"`, with a torchvision built for the installed torch) and are
skipped without it; the rest run everywhere, with stand-in modules where a package is only imported.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
import urllib.request
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import isotropic_gaussian_prior
from PIL import Image

from ddrm_kit.bench import BenchConfig, BenchError, run_bench
from ddrm_kit.bench import scores as sc
from ddrm_kit.bench.report import score_table
from ddrm_kit.cli import main
from ddrm_kit.errors import BenchDataNotFoundError
from ddrm_kit.imageio import load_image
from ddrm_kit.restore import NOISE, SAMPLER, Settings, generators, observe, restore
from operators import get_operator

pytestmark = pytest.mark.usefixtures("one_thread")


def _extra_problem() -> str | None:
    """Why the optional extra cannot be used here (a torchvision built for another torch raises RuntimeError)."""
    try:
        importlib.import_module("lpips")
        importlib.import_module("torch_fidelity")
    except Exception as e:  # noqa: BLE001
        return f"the metrics extra is not importable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    return None


EXTRA_PROBLEM = _extra_problem()
needs_extra = pytest.mark.skipif(EXTRA_PROBLEM is not None, reason=EXTRA_PROBLEM or "")


@pytest.fixture
def hub(tmp_path):
    """torch's hub folder (the libraries' own weights cache) moved to an empty temporary folder."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


@pytest.fixture
def offline(monkeypatch):
    """The network is blocked: torch.hub's downloader and urllib raise."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def stub_packages(monkeypatch):
    """Importable stand-ins for lpips and torch_fidelity (for the tests that only look for them)."""
    for name in ("lpips", "torch_fidelity"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))


def _write_images(folder: Path, n: int, size: int = 32, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        coarse = rng.uniform(0, 255, size=(size // 4, size // 4, 3)).astype(np.uint8)
        paths.append(folder / f"img{k:02d}.png")
        Image.fromarray(coarse).resize((size, size), Image.BICUBIC).save(paths[-1])
    return paths


# ------------------------------------------------------------------ random weights of the real shapes


def _random_alexnet(path: Path, seed: int = 0) -> dict:
    """torchvision's AlexNet with random weights (He-scaled convolutions, random biases), saved to ``path``."""
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.alexnet(weights=None)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("weight"):
                p.normal_(0, (2.0 / p[0].numel()) ** 0.5)
            else:
                p.uniform_(-0.1, 0.1)
    sd = net.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return sd


def _random_inception(path: Path, seed: int = 0) -> None:
    """torch-fidelity's Inception-v3 with every weight random (batch-norm statistics too), saved to ``path``."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    g = torch.Generator().manual_seed(seed)
    sd = net.state_dict()
    for name, t in sd.items():
        if t.dtype not in (torch.float32, torch.float64):
            continue
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
        elif name.endswith(("running_mean", "bias")):
            t.copy_(torch.rand(t.shape, generator=g) * 0.4 - 0.2)
        elif name.endswith("bn.weight"):
            t.copy_(torch.rand(t.shape, generator=g) + 0.5)
        else:  # convolution and fc weights, He-scaled so that the features neither vanish nor explode
            t.copy_(torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A --metric-weights folder: random AlexNet in it, random Inception-v3 in its checkpoints/."""
    if EXTRA_PROBLEM is not None:
        pytest.skip(EXTRA_PROBLEM)
    folder = tmp_path_factory.mktemp("metric_weights")
    _random_alexnet(folder / sc.LPIPS_WEIGHTS)
    _random_inception(folder / "checkpoints" / sc.INCEPTION_WEIGHTS)
    return folder


# ------------------------------------------------------------------------------ choosing the metrics


def test_parse_metrics():
    assert sc.parse_metrics("auto") == (("lpips", "fid", "kid"), False)
    assert sc.parse_metrics("all") == (("lpips", "fid", "kid"), True)
    assert sc.parse_metrics("none") == ((), True)
    assert sc.parse_metrics("kid, LPIPS") == (("lpips", "kid"), True)
    for bad in ("fid,psnr", ",", "inception"):
        with pytest.raises(BenchError, match="give auto, none, all, or a comma list"):
            sc.parse_metrics(bad)


def test_missing_packages_auto_notes_them_and_a_request_is_a_one_line_error(monkeypatch, hub, tmp_path):
    monkeypatch.setitem(sys.modules, "lpips", None)  # "not installed"
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    plan = sc.plan_metrics("auto", None, 10)
    assert plan.computed == ()
    assert plan.skipped["lpips"] == 'needs the optional package lpips: pip install "ddrm-kit[metrics]"'
    assert plan.skipped["fid"] == plan.skipped["kid"]
    assert "torch-fidelity" in plan.skipped["fid"]
    text = plan.summary()["lines"]
    assert len(text) == 1 and text[0].startswith("LPIPS, FID and KID were not computed: LPIPS: needs")
    for metric, package in (("lpips", "lpips"), ("kid", "torch-fidelity")):
        with pytest.raises(BenchError) as e:
            sc.plan_metrics(metric, None, 10)
        want = f'--metrics {metric}: needs the optional package {package}: pip install "ddrm-kit[metrics]"'
        assert str(e.value) == want


def test_a_broken_torchvision_is_named(monkeypatch, stub_packages, hub):
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / sc.INCEPTION_WEIGHTS).write_bytes(b"x")
    real = importlib.import_module

    def broken(name, *a, **k):
        if name in ("lpips", "torch_fidelity"):
            raise RuntimeError("operator torchvision::nms does not exist\n(more)")
        return real(name, *a, **k)

    monkeypatch.setattr(sc.importlib, "import_module", broken)
    with pytest.raises(BenchError) as e:
        sc.plan_metrics("fid", None, 10)
    msg = str(e.value)
    assert "\n" not in msg and "operator torchvision::nms does not exist" in msg and "torchvision built for" in msg


def test_weights_come_from_the_folder_then_the_cache_else_a_one_line_error(stub_packages, hub, tmp_path):
    # Nowhere: auto notes it, a request fails naming the file, both places and that nothing is downloaded.
    plan = sc.plan_metrics("auto", None, 10)
    assert plan.computed == () and sc.INCEPTION_WEIGHTS in plan.skipped["fid"]
    with pytest.raises(BenchError) as e:
        sc.plan_metrics("lpips,fid", None, 10)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"--metrics lpips: {sc.LPIPS_WEIGHTS} (torchvision's AlexNet weights) not found")
    assert "--metric-weights DIR" in msg and str(hub / "checkpoints") in msg and "nothing is downloaded" in msg
    # In the libraries' own cache (torch's hub folder).
    (hub / "checkpoints").mkdir(parents=True)
    for name in (sc.LPIPS_WEIGHTS, sc.INCEPTION_WEIGHTS):
        (hub / "checkpoints" / name).write_bytes(b"x")
    plan = sc.plan_metrics("all", None, 10)
    assert plan.lpips == hub / "checkpoints" / sc.LPIPS_WEIGHTS
    assert plan.inception == hub / "checkpoints" / sc.INCEPTION_WEIGHTS and plan.fid and plan.kid
    # --metric-weights DIR comes first: DIR/NAME, or DIR/checkpoints/NAME (a copy of a hub folder).
    folder = tmp_path / "w"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / sc.LPIPS_WEIGHTS).write_bytes(b"x")
    (folder / "checkpoints" / sc.INCEPTION_WEIGHTS).write_bytes(b"x")
    plan = sc.plan_metrics("auto", folder, 10)
    assert plan.lpips == folder / sc.LPIPS_WEIGHTS and plan.inception == folder / "checkpoints" / sc.INCEPTION_WEIGHTS
    with pytest.raises(BenchDataNotFoundError, match="no such folder"):
        sc.plan_metrics("auto", tmp_path / "nowhere", 10)
    # FID/KID need two images at least.
    plan = sc.plan_metrics("auto", folder, 1)
    assert plan.computed == ("lpips",) and "at least 2 images" in plan.skipped["kid"]
    last = plan.summary()["lines"][-1]
    assert last == "FID and KID not computed: a set-level statistic needs at least 2 images, got 1."
    with pytest.raises(BenchError, match="--metrics fid: a set-level statistic needs at least 2 images, got 1"):
        sc.plan_metrics("fid", folder, 1)
    assert sc.plan_metrics("none", folder, 10).computed == ()


def test_no_downloads_refuses_and_restores():
    before = torch.hub.download_url_to_file
    with sc.no_downloads():
        with pytest.raises(BenchError, match="refusing to download https://example.invalid/w.pth"):
            torch.hub.load_state_dict_from_url("https://example.invalid/w.pth", model_dir="/nonexistent-dir-ddrm")
    assert torch.hub.download_url_to_file is before


def test_weights_that_need_code_to_load_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": Path("x")}, path)  # a pickled object, not only tensors
    with pytest.raises(BenchError, match="not a weights file that loads without running code"):
        sc.load_weights(path)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(BenchError, match="not a state dict"):
        sc.load_weights(tmp_path / "list.pth")


def test_score_table_shows_fid_and_kid_x1e3():
    avg = {"ddrm": {"psnr": 30.0, "psnr_uint8": 29.9, "ssim": 0.9, "seconds": 1.0, "lpips": 0.1, "n": 2}}
    sets = {"ddrm": {"n": 2, "fid": 12.345, "kid_mean": 0.00456, "kid_std": 0.0001}}
    table = score_table(avg, sets)
    assert table[0] == "| method | PSNR (dB) | PSNR uint8 (dB) | SSIM | LPIPS | FID | KID x1e3 | s / image |"
    assert table[1].count("|") == table[0].count("|")
    assert table[2] == "| DDRM | 30.00 | 29.90 | 0.9000 | 0.1000 | 12.35 | 4.56 ± 0.10 | 1.000 |"
    assert score_table(avg)[0] == "| method | PSNR (dB) | PSNR uint8 (dB) | SSIM | LPIPS | s / image |"


def test_cli_metrics_errors_are_one_line(tmp_path, monkeypatch, hub):
    _write_images(tmp_path / "data", 2)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    runner = CliRunner()
    base = ["bench", "--op", "sr2", "--data", str(tmp_path / "data"), "-o", str(tmp_path / "out"), "--no-progress"]
    res = runner.invoke(main, [*base, "--metrics", "fid,psnr"])
    assert res.exit_code != 0 and "--metrics 'fid,psnr': give auto, none, all, or a comma list" in res.output
    res = runner.invoke(main, [*base, "--metrics", "kid"])
    assert res.exit_code != 0
    assert '--metrics kid: needs the optional package torch-fidelity: pip install "ddrm-kit[metrics]"' in res.output
    assert "Traceback" not in res.output and not (tmp_path / "out" / "per_image.csv").exists()


# ------------------------------------------------------- against the libraries (random weights, real shapes)


@needs_extra
def test_lpips_equals_the_library_loading_the_same_weights_its_own_way(weights, hub, offline):
    import lpips

    sd = torch.load(weights / sc.LPIPS_WEIGHTS, weights_only=True)
    ours = sc.lpips_model(weights / sc.LPIPS_WEIGHTS, torch.device("cpu"))
    # The library's own way: torchvision reads AlexNet from the hub cache (the network is blocked).
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(sd, hub / "checkpoints" / sc.LPIPS_WEIGHTS)
    ref = lpips.LPIPS(net="alex", verbose=False).eval()
    assert torch.equal(ref.net.slice1[0].weight, sd["features.0.weight"])
    assert torch.equal(ref.net.slice5._modules["10"].bias, sd["features.10.bias"])
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(3, 3, 64, 48, generator=g) * 2 - 1, torch.rand(3, 3, 64, 48, generator=g) * 2 - 1
    with torch.no_grad():
        want = ref(x, y).flatten()
    got = [r["lpips"] for r in sc.score_rows(x, y, ours)]
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), want.double(), rtol=1e-6, atol=1e-7)
    assert want.std() > 0  # random weights, yet a non-trivial distance
    # Not AlexNet: a one-line error.
    bad = dict(sd)
    del bad["features.3.weight"]
    torch.save(bad, hub / "bad.pth")
    with pytest.raises(BenchError, match=r"bad.pth: not torchvision's AlexNet weights \(Error"):
        sc.lpips_model(hub / "bad.pth", torch.device("cpu"))


@needs_extra
def test_inception_weights_of_another_network_are_a_one_line_error(weights, tmp_path):
    from ddrm_kit.bench.setmetrics import inception_model

    with pytest.raises(BenchError) as e:
        inception_model(weights / sc.LPIPS_WEIGHTS, torch.device("cpu"))
    assert "\n" not in str(e.value) and "not torch-fidelity's Inception-v3 weights" in str(e.value)


def _bench(tmp_path: Path, weights: Path, metrics: str):
    """A 2-image colourisation run (DDRM and H_pinv(y)) with the random-weight networks:
    (data folder, files, output folder, rows, prior)."""
    data = tmp_path / "data"
    paths = _write_images(data, 2)
    out = tmp_path / "out"
    cfg = BenchConfig(op="color", data=data, output=out, sigma_y=0.1, steps=2, seed=3, progress=False,
                      observation="float", metrics=metrics, metric_weights=weights, save_images=True, grid=0)
    prior = isotropic_gaussian_prior()
    return data, paths, out, run_bench(cfg, prior=prior), prior


def _library(out: Path, data: Path, weights: Path, fid: bool) -> dict:
    """torch-fidelity's own FID/KID of the saved DDRM outputs against the clean files (its defaults otherwise)."""
    import torch_fidelity

    return torch_fidelity.calculate_metrics(
        input1=str(out / "images"), input2=str(data), fid=fid, kid=True, kid_subset_size=2, cuda=False, cache=False,
        verbose=False, save_cpu_ram=True,
        feature_extractor_weights_path=str(weights / "checkpoints" / sc.INCEPTION_WEIGHTS))


@needs_extra
def test_bench_kid_and_lpips_equal_the_libraries_on_the_same_images(weights, hub, offline, tmp_path):
    """run_bench --metrics lpips,kid: the KID of the saved DDRM outputs against the clean files equals
    torch_fidelity.calculate_metrics on those folders; every LPIPS equals the library's on the same tensors."""
    import lpips

    data, paths, out, rows, prior = _bench(tmp_path, weights, "lpips,kid")
    m = json.loads((out / "summary.json").read_text())["metrics"]
    assert m["computed"] == ["lpips", "kid"] and m["skipped"] == {"fid": "not asked for (--metrics)"}
    assert m["inception_weights"] == str(weights / "checkpoints" / sc.INCEPTION_WEIGHTS)
    assert m["lpips_weights"] == str(weights / sc.LPIPS_WEIGHTS)
    sets = m["set_scores"]
    assert set(sets) == {"ddrm", "h_pinv"} and "fid" not in sets["ddrm"]
    ours, lib = sets["ddrm"], _library(out, data, weights, fid=False)
    assert ours["n"] == 2 and ours["kid_subset_size"] == 2 and ours["kid_std"] == pytest.approx(0, abs=1e-12)
    assert ours["kid_mean"] == pytest.approx(lib["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["kid_mean"] != 0

    # LPIPS per image, against the library (AlexNet from its own cache) on the same images, recomputed here.
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(torch.load(weights / sc.LPIPS_WEIGHTS, weights_only=True), hub / "checkpoints" / sc.LPIPS_WEIGHTS)
    ref = lpips.LPIPS(net="alex", verbose=False).eval()
    for path in paths:
        x = load_image(path)
        op = get_operator("color", tuple(x.shape[1:]))
        y = observe(op, x, 0.2, generators(3, [path.name], NOISE))
        xr = restore(prior, op, y, Settings(steps=2), 0.2, generators(3, [path.name], SAMPLER), progress=False)
        got = {r["method"]: r["lpips"] for r in rows if r["name"] == path.name}
        with torch.no_grad():
            for method, img in (("ddrm", xr), ("h_pinv", op.H_pinv(y))):
                assert got[method] == pytest.approx(float(ref(img.clamp(-1, 1), x)), rel=1e-6, abs=1e-8), method
    text = (out / "summary.md").read_text()
    assert "| LPIPS | KID x1e3 |" in text and "LPIPS: AlexNet with the v0.1 linear layers" in text
    assert "resized to 299x299 by TensorFlow 1.x bilinear" in text and "100 subsets of min(1000, n) images" in text
    assert "FID not computed: not asked for (--metrics)." in text


@needs_extra
@pytest.mark.slow  # FID: an eigen-decomposition of a 2048x2048 matrix per method, ~6 s each on one core
def test_bench_fid_equals_the_library_on_the_same_images(weights, hub, offline, tmp_path):
    data, _, out, _, _ = _bench(tmp_path, weights, "all")
    m = json.loads((out / "summary.json").read_text())["metrics"]
    assert m["computed"] == ["lpips", "fid", "kid"] and m["skipped"] == {}
    ours, lib = m["set_scores"]["ddrm"], _library(out, data, weights, fid=True)
    assert ours["fid"] == pytest.approx(lib["frechet_inception_distance"], rel=1e-4)
    assert ours["kid_mean"] == pytest.approx(lib["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["fid"] > 0
    assert all("fid" in v for v in m["set_scores"].values())
    assert "| LPIPS | FID | KID x1e3 |" in (out / "summary.md").read_text()


def _gloo_rank(rank: int, world: int, init_file: str, data: str, out: str, weights: str) -> None:
    """One rank of a gloo group (file:// rendezvous), as a launcher such as accelerate would set it up."""
    import os

    import torch.distributed as dist

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = BenchConfig(op="deno", data=Path(data), output=Path(out), sigma_y=0.1, steps=2, seed=3, progress=False,
                          metrics="lpips,kid", metric_weights=Path(weights), grid=0)
        run_bench(cfg, prior=isotropic_gaussian_prior())
        dist.barrier()
    finally:
        dist.destroy_process_group()


@needs_extra
@pytest.mark.slow  # three runs of the Inception network over 3 images and 3 methods
def test_two_gloo_ranks_gather_the_same_set_scores(weights, tmp_path):
    data = tmp_path / "data"
    _write_images(data, 3)
    cfg = BenchConfig(op="deno", data=data, output=tmp_path / "one", sigma_y=0.1, steps=2, seed=3, progress=False,
                      metrics="lpips,kid", metric_weights=weights, grid=0)
    run_bench(cfg, prior=isotropic_gaussian_prior())
    torch.multiprocessing.spawn(
        _gloo_rank, args=(2, str(tmp_path / "rdzv"), str(data), str(tmp_path / "two"), str(weights)), nprocs=2,
        join=True)
    one = json.loads((tmp_path / "one" / "summary.json").read_text())["metrics"]["set_scores"]
    two = json.loads((tmp_path / "two" / "summary.json").read_text())["metrics"]["set_scores"]
    assert set(one) == set(two) == {"ddrm", "h_pinv", "observation"}
    for method in one:
        assert two[method]["n"] == one[method]["n"] == 3
        assert two[method]["kid_mean"] == pytest.approx(one[method]["kid_mean"], rel=1e-5, abs=1e-9)
