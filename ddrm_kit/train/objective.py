"""The training objective: the noised input, the target (ε or v), Min-SNR-γ weights, ε from an output.

Notation (Ho et al. 2020): ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε``, ``SNR(t) = ᾱ_t / (1 - ᾱ_t)``.
"""

from __future__ import annotations

import torch

from .recipe import TrainConfig


def _scale(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return alphas_cumprod[t].view(-1, 1, 1, 1)


def noised(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps  (Ho et al. 2020, eq. 4)."""
    abar = _scale(alphas_cumprod, t)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def target(cfg: TrainConfig, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
           alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """What the network learns to output: ε, or v = sqrt(ᾱ) ε - sqrt(1-ᾱ) x0 (Salimans & Ho 2022)."""
    if cfg.prediction == "epsilon":
        return noise
    abar = _scale(alphas_cumprod, t)
    return abar.sqrt() * noise - (1 - abar).sqrt() * x0


def min_snr_weights(cfg: TrainConfig, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Min-SNR-γ (Hang et al. 2023): min(SNR, γ)/SNR for ε-prediction, min(SNR, γ)/(SNR + 1) for v; shape (B,).

    Both are the weight min(SNR, γ) on the x0 error, written for the output the network learns
    (its squared error is SNR resp. SNR + 1 times the x0 error).
    """
    abar = alphas_cumprod[t]
    snr = abar / (1 - abar)
    clipped = snr.clamp(max=cfg.snr_gamma)
    return clipped / snr if cfg.prediction == "epsilon" else clipped / (snr + 1)


def training_loss(cfg: TrainConfig, pred: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                  alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The batch's loss: the mean squared (l2) or absolute (l1) error to the target, weighted per image by the recipe."""
    goal = target(cfg, x0, t, noise, alphas_cumprod)
    if cfg.loss_weighting == "uniform":
        # one mean over every element, as runs made before the weighting option computed it
        mean_error = torch.nn.functional.mse_loss if cfg.loss == "l2" else torch.nn.functional.l1_loss
        return mean_error(pred, goal)
    per_image = (pred - goal).pow(2).mean(dim=(1, 2, 3))
    return (min_snr_weights(cfg, t, alphas_cumprod) * per_image).mean()


def to_epsilon(cfg: TrainConfig, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
               alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The ε estimate behind the network's output: itself, or sqrt(ᾱ) v + sqrt(1-ᾱ) x_t for v-prediction."""
    if cfg.prediction == "epsilon":
        return pred
    abar = _scale(alphas_cumprod, t)
    return abar.sqrt() * pred + (1 - abar).sqrt() * x_t
