"""The bench's scores: per image, :func:`ddrm_kit.restore.score` plus LPIPS; per run, FID and KID (:mod:`.setmetrics`).

LPIPS, FID and KID run networks with pretrained weights, through the optional extra
``pip install "ddrm-kit[metrics]"`` (the packages ``lpips`` and ``torch-fidelity``, which need a
torchvision built for the installed torch). The weights are read from local files only, never
downloaded: :func:`find_weights` looks in ``--metric-weights DIR`` (``DIR/NAME`` or
``DIR/checkpoints/NAME``), then in the libraries' own cache (torch's hub folder,
``torch.hub.get_dir()/checkpoints``, where torchvision and torch-fidelity keep what they
download); while the networks are built, :func:`no_downloads` makes any download attempt an error.

``--metrics`` picks them: ``auto`` (the default) computes each one whose package imports and
whose weights are found, and says in ``summary.md`` why the others were not computed; ``all`` or
a list (``lpips,fid,kid``) makes a missing package or weights file a one-line error before
anything slow runs; ``none`` computes none.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddrm_kit.errors import BenchDataNotFoundError, BenchError

if TYPE_CHECKING:
    import torch

#: The metrics ``--metrics`` can name.
METRICS = ("lpips", "fid", "kid")
METRICS_HELP = "auto, none, all, or a comma list of lpips, fid, kid"
#: torchvision's ImageNet AlexNet (``AlexNet_Weights.IMAGENET1K_V1``): the backbone of LPIPS (the
#: `lpips` package ships its own linear layers, v0.1).
LPIPS_WEIGHTS = "alexnet-owt-7be5be79.pth"
#: torch-fidelity's Inception-v3, converted from TensorFlow's 2015-12-05 graph that FID and KID were defined with.
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
# Where the libraries' own cache keeps a file, relative to torch's hub folder (also accepted under --metric-weights).
LPIPS_BACKBONE = Path("checkpoints") / LPIPS_WEIGHTS
EXTRA = 'pip install "ddrm-kit[metrics]"'
# The packages (import name, pip name) and the weights file of each metric.
_NEEDS = {"lpips": ("lpips", "lpips", LPIPS_WEIGHTS), "fid": ("torch_fidelity", "torch-fidelity", INCEPTION_WEIGHTS),
          "kid": ("torch_fidelity", "torch-fidelity", INCEPTION_WEIGHTS)}
_NETWORK = {LPIPS_WEIGHTS: "torchvision's AlexNet weights", INCEPTION_WEIGHTS: "torch-fidelity's Inception-v3 weights"}


def parse_metrics(text: str) -> tuple[tuple[str, ...], bool]:
    """``--metrics`` -> (the metrics asked for, whether each of them must be computed)."""
    t = text.strip().lower()
    if t == "auto":
        return METRICS, False
    if t == "none":
        return (), True
    if t == "all":
        return METRICS, True
    names = [p.strip() for p in t.split(",") if p.strip()]
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise BenchError(f"--metrics {text!r}: give {METRICS_HELP}")
    return tuple(m for m in METRICS if m in names), True


def hub_checkpoints() -> Path:
    """The libraries' own weights cache: ``checkpoints`` in torch's hub folder (``$TORCH_HOME/hub``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(name: str, folder: Path | None) -> Path | None:
    """The weights file ``name``: in ``folder`` (``folder/name`` or ``folder/checkpoints/name``), else in
    the libraries' cache; ``None`` when it is in neither."""
    places = [folder / name, folder / "checkpoints" / name] if folder is not None else []
    places.append(hub_checkpoints() / name)
    return next((p for p in places if p.is_file()), None)


def _installed(module: str) -> bool:
    """Whether ``module`` is there to import (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec: imported some other way
        return True


def _import_problem(module: str, pip_name: str) -> str | None:
    """``None`` when ``module`` imports, else how to fix it, in words."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return f"needs the optional package {pip_name}: {EXTRA}"
        return f"cannot import {module} ({e}): {EXTRA}"
    except Exception as e:  # noqa: BLE001 - a torchvision built for another torch raises RuntimeError
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return (f"cannot import {module} ({type(e).__name__}: {first}); install a torchvision built for the "
                "installed torch (from where torch came)")
    return None


def _weights_problem(name: str, folder: Path | None) -> str:
    where = f"--metric-weights {folder} (or its checkpoints/)" if folder is not None else "--metric-weights DIR"
    return (f"{name} ({_NETWORK[name]}) not found: put it in {where} or in torch's hub cache {hub_checkpoints()} "
            "(nothing is downloaded; README: Metric weights)")


@dataclass
class MetricPlan:
    """Which metrics a run computes, from which weights files, and why the others are not computed."""

    lpips: Path | None = None  # the AlexNet weights file, when LPIPS is computed
    inception: Path | None = None  # the Inception weights file, when FID or KID is computed
    fid: bool = False
    kid: bool = False
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it is not computed (auto, none)

    @property
    def computed(self) -> tuple[str, ...]:
        return tuple(m for m, on in (("lpips", self.lpips), ("fid", self.fid), ("kid", self.kid)) if on)

    def load(self, device: "torch.device"):
        """``(LPIPS model or None, setmetrics.SetFeatures or None)`` on ``device``."""
        from .setmetrics import SetFeatures, inception_model

        lp = lpips_model(self.lpips, device) if self.lpips is not None else None
        sets = SetFeatures(inception_model(self.inception, device)) if self.fid or self.kid else None
        return lp, sets

    def summary(self, parts: list | None = None) -> dict[str, Any]:
        """For the report: ``lines`` (summary.md), ``sets`` (FID/KID per method) and ``json`` (summary.json).

        ``parts``: every rank's :attr:`setmetrics.SetFeatures.features` (``None`` entries without FID/KID).
        """
        from .setmetrics import KID_SUBSETS, describe, set_scores

        sets = set_scores(parts or [], self.fid, self.kid) if self.fid or self.kid else {}
        lines = []
        if self.lpips is not None:
            lines.append("LPIPS: AlexNet with the v0.1 linear layers (Zhang et al. 2018; the lpips package), per image "
                         f"on the [-1, 1]-clamped float output, then averaged; AlexNet weights `{self.lpips}`.")
        if self.fid or self.kid:
            lines.append(describe(self.fid, self.kid, self.inception))
        groups: dict[str, list[str]] = {}  # reason -> the metrics it holds back, in METRICS order
        for m in METRICS:
            if m in self.skipped:
                groups.setdefault(self.skipped[m], []).append(m.upper())
        named = {reason: " and ".join(ms) if len(ms) < 3 else "LPIPS, FID and KID" for reason, ms in groups.items()}
        if not self.computed:
            why = "; ".join(f"{named[r]}: {r}" for r in groups) if len(groups) > 1 else next(iter(groups))
            lines.append(f"LPIPS, FID and KID were not computed: {why}.")
        else:
            lines += [f"{named[r]} not computed: {r}." for r in groups]
        return {
            "lines": lines,
            "sets": sets,
            "json": {
                "computed": list(self.computed),
                "lpips_weights": None if self.lpips is None else str(self.lpips),
                "inception_weights": None if self.inception is None else str(self.inception),
                "kid_subsets": KID_SUBSETS if self.kid else None,
                "skipped": dict(self.skipped),
                "set_scores": sets,
            },
        }


def plan_metrics(metrics: str, folder: Path | None, n_images: int) -> MetricPlan:
    """What ``--metrics`` (with ``--metric-weights folder``) computes on ``n_images`` images; a one-line
    :class:`BenchError` when a metric that must be computed cannot be. Loads nothing heavy."""
    wanted, required = parse_metrics(metrics)
    if folder is not None and not Path(folder).is_dir():
        raise BenchDataNotFoundError(f"--metric-weights {folder}: no such folder")
    folder = None if folder is None else Path(folder)
    plan = MetricPlan()
    for m in METRICS:
        if m not in wanted:
            plan.skipped[m] = "not asked for (--metrics)"
            continue
        module, pip_name, weights = _NEEDS[m]
        path = find_weights(weights, folder)
        if not _installed(module):
            problem = f"needs the optional package {pip_name}: {EXTRA}"
        elif path is None:
            problem = _weights_problem(weights, folder)
        else:  # imported only now: torch-fidelity and lpips import torchvision, which takes a second or two
            problem = _import_problem(module, pip_name)
        if problem is None and m in ("fid", "kid") and n_images < 2:
            problem = f"a set-level statistic needs at least 2 images, got {n_images}"
        if problem is not None:
            if required:
                raise BenchError(f"--metrics {m}: {problem}")
            plan.skipped[m] = problem
        elif m == "lpips":
            plan.lpips = path
        else:
            plan.inception = path
            setattr(plan, m, True)
    return plan


@contextlib.contextmanager
def no_downloads():
    """While building a metric network: any download through ``torch.hub`` (torchvision's and
    torch-fidelity's way) raises a one-line :class:`BenchError` instead of reaching the network."""
    import torch.hub

    def refuse(url: str, *args: Any, **kwargs: Any) -> None:
        raise BenchError(f"refusing to download {url}: ddrm bench reads metric weights from local files only "
                         "(--metric-weights DIR)")

    saved = torch.hub.download_url_to_file
    torch.hub.download_url_to_file = refuse
    try:
        yield
    finally:
        torch.hub.download_url_to_file = saved


def load_weights(path: Path) -> dict:
    """A state dict from ``path`` (tensors only: ``torch.load(weights_only=True)``); a one-line error otherwise."""
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a pickle with code, a truncated file, not a torch file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BenchError(f"{path}: not a weights file that loads without running code ({first[:200]})") from None
    if not isinstance(sd, dict):
        raise BenchError(f"{path}: holds a {type(sd).__name__}, not a state dict")
    return sd


def lpips_model(weights: Path, device: "torch.device"):
    """LPIPS (Zhang et al. 2018, AlexNet, v0.1) from the `lpips` package, its AlexNet layers read from ``weights``.

    The package builds the network and loads its own linear layers (shipped with it); the AlexNet
    convolutions come from ``weights`` (torchvision's ``alexnet-owt-7be5be79.pth`` layout, strict:
    every LPIPS convolution, at its shape), so nothing is fetched from torchvision's hub.
    """
    import warnings

    import lpips

    sd = load_weights(weights)
    with no_downloads(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision: "'pretrained' is deprecated"
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    net = model.net  # slice1..slice5 hold AlexNet's `features` layers under their indices
    slice_of = {idx: name for name, part in net.named_children() for idx in part._modules}
    mapped = {}
    for key, value in sd.items():
        if key.startswith("features."):
            idx, rest = key[len("features."):].split(".", 1)
            mapped[f"{slice_of.get(idx, 'missing')}.{idx}.{rest}"] = value
    try:
        net.load_state_dict(mapped, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise BenchError(f"{weights}: not torchvision's AlexNet weights ({first[:200]})") from None
    return model.to(device).eval()


def score_rows(x: "torch.Tensor", ref: "torch.Tensor", lpips=None) -> list[dict[str, Any]]:
    """One dict per image: ``psnr``, ``psnr_uint8``, ``ssim`` and ``lpips`` (``""`` without a model)."""
    import torch

    from ddrm_kit.restore import score

    s = score(x, ref)
    lp: list[Any] = [""] * x.shape[0]
    if lpips is not None:
        with torch.no_grad():
            lp = lpips(x.clamp(-1, 1).float(), ref.float()).flatten().double().cpu().tolist()
    return [
        {"psnr": s["psnr"][i], "psnr_uint8": s["psnr_uint8"][i], "ssim": s["ssim"][i], "lpips": lp[i]}
        for i in range(x.shape[0])
    ]
