"""FID and KID of a bench run: set-level scores of each method's outputs against the ground truth.

Through torch-fidelity (the optional extra ``ddrm-kit[metrics]``), as its ``calculate_metrics``
computes them for two folders of images, with the weights file that :mod:`.scores` found:

- every image (each method's output, and the preprocessed clean image as the ground truth) is
  rounded to 8 bits as a PNG holds it (``round((x + 1) * 127.5)``), grey repeated to RGB;
- torch-fidelity's Inception-v3 (``inception-v3-compat``: TensorFlow's 2015-12-05 graph, the one
  FID and KID were defined with) resizes it to 299x299 with TensorFlow 1.x's bilinear resize
  (``interpolate_bilinear_2d_like_tensorflow1x``, no antialiasing) and returns the 2048 pool
  features;
- FID (Heusel et al. 2017): ``fid_statistics_to_metric`` on the features' means and covariances;
- KID (Bińkowski et al. 2018): ``kid_features_to_metric``, the unbiased MMD² with the cubic
  polynomial kernel ``(x·y / 2048 + 1)³``, mean and std over :data:`KID_SUBSETS` random subsets of
  ``min(1000, n)`` images (torch-fidelity's subset size, capped at the run's n), drawn with its
  seed 2020. With n <= 1000 every subset is the whole set, so the std is 0 (up to rounding).

Each rank computes the features of its images (on its device); rank 0 orders them by image
index, so the scores do not depend on the number of ranks. With n below 2048 the covariance
is singular and FID is biased upwards (more than KID): compare runs with the same n only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddrm_kit.errors import BenchError

from .scores import INCEPTION_WEIGHTS, load_weights, no_downloads

if TYPE_CHECKING:
    import torch

FEATURES = "2048"  # Inception-v3's pool features (torch-fidelity's name), the layer of FID and KID
EXTRACTOR = "inception-v3-compat"  # torch-fidelity's name for it
KID_SUBSETS = 100  # torch-fidelity's default
KID_SUBSET_SIZE = 1000  # torch-fidelity's default; a run with fewer images uses all of them
KID_SEED = 2020  # torch-fidelity's default rng_seed
GROUND_TRUTH = "_ground_truth"  # SetFeatures' key of the clean images (never a method name)


def inception_model(weights: Path, device: "torch.device"):
    """torch-fidelity's Inception-v3 feature extractor with the weights in ``weights`` (never downloaded)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    load_weights(weights)  # refuse a file that needs code to load (torch-fidelity loads with weights_only=False)
    try:
        with no_downloads():
            model = FeatureExtractorInceptionV3(EXTRACTOR, [FEATURES], feature_extractor_weights_path=str(weights))
    except RuntimeError as e:  # load_state_dict: missing or misshapen layers
        first = str(e).strip().splitlines()[0]
        raise BenchError(f"{weights}: not torch-fidelity's Inception-v3 weights {INCEPTION_WEIGHTS} "
                         f"({first[:200]})") from None
    return model.to(device).eval()


def as_uint8(x: "torch.Tensor") -> "torch.Tensor":
    """Images in [-1, 1] ``(N, C, H, W)`` -> uint8 RGB as a PNG holds them (``imageio.to_uint8``'s rounding)."""
    import torch

    u = ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return u.expand(-1, 3, -1, -1) if u.shape[1] == 1 else u


class SetFeatures:
    """The Inception features of every image this rank restored, per method, and of its clean images."""

    def __init__(self, model) -> None:
        self.model = model
        self.features: dict[str, dict[int, Any]] = {}  # method (or GROUND_TRUTH) -> image index -> (2048,) tensor

    def add(self, indices: list[int], x: "torch.Tensor", outputs: dict[str, "torch.Tensor"]) -> None:
        """Record the clean images ``x`` and each method's ``outputs`` (same batch, image ``indices``)."""
        import torch

        device = next(self.model.parameters()).device
        for name, imgs in ((GROUND_TRUTH, x), *outputs.items()):
            with torch.no_grad():
                (f,) = self.model(as_uint8(imgs).to(device))
            held = self.features.setdefault(name, {})
            for i, row in zip(indices, f.float().cpu()):
                held[i] = row


def set_scores(parts: list[dict[str, dict[int, Any]]], fid: bool, kid: bool) -> dict[str, dict[str, Any]]:
    """Per method: ``n``, ``fid``, ``kid_mean``, ``kid_std``, ``kid_subset_size`` from every rank's features.

    ``parts`` are the ranks' :attr:`SetFeatures.features`; images are taken in index order.
    """
    import torch
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    merged: dict[str, dict[int, Any]] = {}
    for part in parts:
        for name, held in (part or {}).items():
            merged.setdefault(name, {}).update(held)
    truth = merged.pop(GROUND_TRUTH, {})
    out: dict[str, dict[str, Any]] = {}
    for method, held in merged.items():
        order = sorted(held)
        f = torch.stack([held[i] for i in order])
        g = torch.stack([truth[i] for i in order])  # the same images' ground truth
        r: dict[str, Any] = {"n": len(order)}
        if fid:
            stats = fid_features_to_statistics(f), fid_features_to_statistics(g)
            r["fid"] = fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID]
        if kid:
            size = min(KID_SUBSET_SIZE, len(order))
            k = kid_features_to_metric(f, g, kid_subsets=KID_SUBSETS, kid_subset_size=size, rng_seed=KID_SEED,
                                       verbose=False)
            r.update(kid_mean=k[KEY_METRIC_KID_MEAN], kid_std=k[KEY_METRIC_KID_STD], kid_subset_size=size)
        out[method] = r
    return out


def describe(fid: bool, kid: bool, weights: Path | None) -> str:
    """One line for summary.md: how FID/KID were computed."""
    import torch_fidelity

    what = " and ".join(n for n, on in (("FID", fid), ("KID", kid)) if on)
    kid_text = "" if not kid else (
        f"; KID x1e3: mean ± std over {KID_SUBSETS} subsets of min({KID_SUBSET_SIZE}, n) images "
        f"(cubic polynomial kernel; with n <= {KID_SUBSET_SIZE} every subset is all n images, so the std is 0)")
    return (f"{what}: against the ground truth (the preprocessed clean images), per method over all n images; "
            f"torch-fidelity {torch_fidelity.__version__}, Inception-v3 (TF 2015-12-05) 2048 pool features of "
            f"8-bit images resized to 299x299 by TensorFlow 1.x bilinear (no antialiasing), weights `{weights}`"
            f"{kid_text}. FID with n < 2048 is biased upwards: compare runs of equal n.")
