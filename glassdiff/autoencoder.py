"""The color-by-numbers machine: image <-> latent (diffusers AutoencoderKL).

Value ranges: images are in [-1, 1] inside the package, latents are the
autoencoder's mean times its scaling factor (about unit variance).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL


def build_autoencoder(config: dict) -> AutoencoderKL:
    return AutoencoderKL(**config)


def downsample_factor(vae: AutoencoderKL) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode(vae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """images (B, 3, H, W) in [-1, 1] -> scaled latents (B, C, H/f, W/f)."""
    return vae.encode(images).latent_dist.mean * vae.config.scaling_factor


@torch.no_grad()
def decode(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """scaled latents -> images (B, 3, H, W) in [-1, 1] (not clamped)."""
    return vae.decode(latents / vae.config.scaling_factor).sample


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] (B, 3, H, W) -> uint8 (B, H, W, 3), the edge of the package."""
    return ((images / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def false_color(latents: torch.Tensor) -> torch.Tensor:
    """A cheap look at latents without the decoder: channels 0-2 as RGB, each
    stretched to [0, 1] over the batch. (B, C, h, w) -> (B, h, w, 3) float."""
    x = latents[:, :3].float()
    if x.shape[1] < 3:
        x = torch.cat([x, x[:, :1].expand(-1, 3 - x.shape[1], -1, -1)], dim=1)
    lo = x.amin(dim=(0, 2, 3), keepdim=True)
    hi = x.amax(dim=(0, 2, 3), keepdim=True)
    return ((x - lo) / (hi - lo + 1e-8)).permute(0, 2, 3, 1)
