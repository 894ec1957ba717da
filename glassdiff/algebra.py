"""The diffusion algebra in one place: the forward process and the model's three ways of saying what it sees.

alpha_bar is the signal share of the variance-preserving latent at a timestep (alpha-bar_t in the DDPM paper):
x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps. A model predicts eps ("epsilon"), the clean latent ("sample")
or v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 ("v_prediction", Salimans and Ho 2022). Training builds the
target from x0 and eps; sampling turns any prediction back into x0 and eps. alpha_bar is a float or a tensor that
broadcasts against the latents.
"""

from __future__ import annotations

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def _root(value):
    return value.sqrt() if isinstance(value, torch.Tensor) else value**0.5


def add_noise(x0: torch.Tensor, noise: torch.Tensor, alpha_bar) -> torch.Tensor:
    """The forward process: x_t from the clean latent and unit noise."""
    return _root(alpha_bar) * x0 + _root(1 - alpha_bar) * noise


def target(x0: torch.Tensor, noise: torch.Tensor, alpha_bar, prediction_type: str) -> torch.Tensor:
    """What a model of this prediction type should output at x_t = add_noise(x0, noise, alpha_bar)."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return _root(alpha_bar) * noise - _root(1 - alpha_bar) * x0
    if prediction_type == "sample":
        return x0
    raise ValueError(f"unknown prediction type {prediction_type!r}")


def to_x0_and_eps(output: torch.Tensor, x_t: torch.Tensor, alpha_bar, prediction_type: str):
    """(x0_pred, eps_pred) from the model's output at the variance-preserving x_t."""
    a, s = _root(alpha_bar), _root(1 - alpha_bar)
    if prediction_type == "epsilon":
        return (x_t - s * output) / a, output
    if prediction_type == "v_prediction":
        return a * x_t - s * output, s * x_t + a * output
    if prediction_type == "sample":
        return output, (x_t - a * output) / s
    raise ValueError(f"unknown prediction type {prediction_type!r}")
