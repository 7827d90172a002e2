"""Shared pytest fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _empty_torch_hub(tmp_path_factory):
    """Point torch.hub at an empty folder, so metric weights in the user's cache never change a test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tiny-tensor tests on one thread: on the shared 2-core CPU, multi-threaded
    kernels on small tensors only add contention (a 1000x16 matmul took 40 ms on 2 threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- priors: analytic ones for exact laws, a tiny real UNet for the loading path ------------------


def linear_alphas_cumprod(steps: int = 1000) -> torch.Tensor:
    """``alphas_cumprod`` of DDPM's linear schedule (betas 1e-4 .. 0.02), float64."""
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, steps, dtype=torch.float64), 0)


class GaussianPrior:
    """The exact noise predictor for images ``x ~ N(mu, Sigma)`` (flattened to ``n``):
    ``E[ε | x_t] = sqrt(1-ᾱ) (ᾱΣ + (1-ᾱ)I)⁻¹ (x_t - sqrt(ᾱ) mu)``; callable as ``eps(x_t, t)``."""

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor, alphas_cumprod: torch.Tensor | None = None) -> None:
        self.mu, self.sigma = mu, sigma
        self.ac = linear_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod
        self.lam, self.q = torch.linalg.eigh(sigma)

    @classmethod
    def smooth(cls) -> GaussianPrior:
        """Smooth, strongly correlated 1x4x4 images with std ~0.12, far from the [-1, 1] clamp."""
        yy, xx = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
        p = torch.stack([yy.flatten(), xx.flatten()], 1).double()
        d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
        sigma = 0.012 * torch.exp(-d2 / 4.0) + 0.002 * torch.eye(16, dtype=torch.float64)
        return cls(0.1 * torch.sin(torch.arange(16, dtype=torch.float64)), sigma)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.ac[t][:, None]
        r = x.reshape(x.shape[0], -1).double() - a.sqrt() * self.mu
        coef = (1 - a).sqrt() / (a * self.lam + 1 - a)
        return (((r @ self.q) * coef) @ self.q.T).float().reshape(x.shape)

    def x0(self, xve: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The denoiser in VE coordinates as an affine map: x̂0 = R xve + c."""
        a = float(self.ac[t])
        eye = torch.eye(self.mu.numel(), dtype=torch.float64)
        r = eye - (1 - a) * (self.q * (1 / (a * self.lam + 1 - a))) @ self.q.T
        return r, (eye - r) @ self.mu


def make_oracle_prior(x: torch.Tensor, alphas_cumprod: torch.Tensor | None = None):
    """A ``ddrm_kit.Prior`` whose clean-image prediction is always ``x`` (it returns the matching ε)."""
    from ddrm_kit import Prior

    ac = linear_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod
    a32 = ac.to(torch.float32)

    def eps(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = a32[t].view(-1, 1, 1, 1)
        return (xt - a.sqrt() * x) / (1 - a).sqrt()

    return Prior(eps, ac)


@pytest.fixture
def gaussian_prior() -> GaussianPrior:
    """The smooth 1x4x4 :class:`GaussianPrior` (pass it to ``ddrm_kit.Prior(g, g.ac)``)."""
    return GaussianPrior.smooth()


@pytest.fixture
def oracle_prior():
    """:func:`make_oracle_prior`: ``oracle_prior(x)`` is a prior that always predicts ``x``."""
    return make_oracle_prior


def tiny_unet(in_channels: int = 3, out_channels: int = 3, seed: int = 0, sample_size: int = 16, levels: int = 2):
    """A seeded, untrained ``UNet2DModel`` of 2 (8, 16 channels) or 3 (8, 16, 16) levels, in eval
    mode; a Palette network takes ``in_channels = 2 * out_channels``, a learned-variance one gives
    ``out_channels = 2 * in_channels``."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):  # diffusers initialises from the global generator
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=sample_size, in_channels=in_channels, out_channels=out_channels, layers_per_block=1,
            block_out_channels=(8, 16, 16)[:levels], down_block_types=("DownBlock2D",) * levels,
            up_block_types=("UpBlock2D",) * levels, norm_num_groups=4,
        ).eval()


@pytest.fixture(scope="session")
def tiny_unet_dir(tmp_path_factory):
    """:func:`tiny_unet` (RGB, 16x16) + ``DDPMScheduler(1000)`` saved with ``save_pretrained`` (root
    layout), once per session; tests must not modify the folder."""
    from diffusers import DDPMScheduler

    folder = tmp_path_factory.mktemp("tiny_unet")
    unet = tiny_unet()
    unet.save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder)
    return folder


#: The recipe of the shared training run: a 2-level UNet on 16x16 crops, small enough for a CPU test.
TINY_TRAIN = dict(size=16, channels=(8, 16), batch=4, precision="fp32", progress=False)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One tiny `ddrm_kit.train` run (24 steps), trained once per session; tests must not modify it.

    ``data`` holds five small random RGB images (one nested), one grey image and one corrupt file;
    ``run`` is the run folder, ``summary`` what ``train`` returned.
    """
    import types

    import numpy as np
    from PIL import Image

    from ddrm_kit.train import train

    root = tmp_path_factory.mktemp("trained_run")
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(data / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(data / "sub" / "nested.jpg")
    Image.fromarray(rng.integers(0, 256, (18, 18), dtype=np.uint8)).save(data / "grey.png")
    (data / "corrupt.png").write_bytes(b"not an image")
    summary = train(data, root / "run", steps=24, **TINY_TRAIN)
    return types.SimpleNamespace(data=data, run=root / "run", summary=summary, recipe=dict(TINY_TRAIN))


def stderr_lines(text: str) -> list[str]:
    """The lines of a command's stderr but the one naming the DDRM settings it ran with (`ddrm solve` prints it)."""
    return [line for line in text.strip().splitlines() if not line.startswith("DDRM settings: ")]


def one_line_error(result, *words: str) -> str:
    """The one ``Error: ...`` line of a failed CLI run (click's runner), checked for ``words``."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), result.stderr
    for w in words:
        assert w in err[0], err[0]
    return err[0]


@pytest.fixture
def host_syncs(monkeypatch):
    """``(in_loop, syncs)``: while ``in_loop["on"]`` is true, every tensor method that would stall a GPU
    stream (``.item()``, ``bool()``, ``float()``, ``int()``, ``.tolist()``, ``.numpy()``) is recorded."""
    in_loop = {"on": False}
    syncs: list[str] = []
    for meth in ("item", "__bool__", "__float__", "__int__", "tolist", "numpy"):
        orig = getattr(torch.Tensor, meth)

        def patched(self, *args, _orig=orig, _meth=meth, **kwargs):
            if in_loop["on"]:
                syncs.append(_meth)
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, meth, patched)
    return in_loop, syncs


def assert_bench_equals_degrade_then_solve(tmp_path, path, bench: list[str], degrade: list[str],
                                           solve: list[str]) -> None:
    """``ddrm bench --save-images`` on ``path``'s folder writes the image that ``ddrm degrade`` then
    ``ddrm solve`` make of ``path`` (each given its own options; inputs and outputs are added here)."""
    import numpy as np
    from click.testing import CliRunner
    from PIL import Image

    from ddrm_kit.cli import main

    # The observation file keeps the clean file's name, so solve keys its sampler like bench.
    observed = tmp_path / "observed" / path.name
    runs = (["bench", *bench, "--data", str(path.parent), "-o", str(tmp_path / "b"), "--save-images"],
            ["degrade", *degrade, str(path), "-o", str(observed)],
            ["solve", *solve, str(observed), "-o", str(tmp_path / "s.png")])
    for args in runs:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    benched = np.asarray(Image.open(tmp_path / "b" / "images" / path.name))
    assert np.array_equal(benched, np.asarray(Image.open(tmp_path / "s.png")))


def isotropic_gaussian_prior(c: float = 0.5):
    """The exact ε̂ for RGB images x0 ~ N(0, c² I): a cheap analytic stand-in for a network."""
    from ddrm_kit import Prior

    ac = linear_alphas_cumprod().float()

    def eps(x_t, t):
        a = ac[t].view(-1, 1, 1, 1)
        x0 = a.sqrt() * c**2 / (a * c**2 + 1 - a) * x_t
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    return Prior(eps, linear_alphas_cumprod(), channels=3)
