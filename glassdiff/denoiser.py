"""The collage machine's network: a diffusers UNet2DConditionModel from a preset.

`Denoiser` wraps it as the plain callable the sampling loop takes:
(x_in (B, C, h, w), t (B,), context (B, L, D)) -> model output (B, C, h, w).

A UNet may take COORDINATE_CHANNELS more input planes than the latent has: each
latent pixel's x and y, from -1 (left, top) to 1 (right, bottom), appended the
way diffusers' inpainting pipelines append their mask. Convolutions are blind to
where they are, and without these planes the default model never learned what
"in the top left" means.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from .config import COORDINATE_CHANNELS


def build_unet(config: dict) -> UNet2DConditionModel:
    return UNet2DConditionModel(**config)


def coordinate_planes(latents: torch.Tensor) -> torch.Tensor:
    """(B, 2, h, w): x then y of each latent pixel, from -1 to 1."""
    b, _, h, w = latents.shape
    ys = torch.linspace(-1, 1, h, dtype=latents.dtype, device=latents.device)
    xs = torch.linspace(-1, 1, w, dtype=latents.dtype, device=latents.device)
    planes = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))
    return planes.expand(b, -1, -1, -1)


def unet_input(latents: torch.Tensor, in_channels: int) -> torch.Tensor:
    """The latents, with the coordinate planes appended where the UNet takes them."""
    extra = in_channels - latents.shape[1]
    if extra == 0:
        return latents
    if extra != COORDINATE_CHANNELS:
        raise ValueError(f"the UNet takes {in_channels} input channels for a {latents.shape[1]}-channel latent; "
                         f"glassdiff knows {latents.shape[1]} or {latents.shape[1] + COORDINATE_CHANNELS}")
    return torch.cat([latents, coordinate_planes(latents)], dim=1)


def add_coordinate_inputs(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """The same network taking the coordinate planes too; their weights start at zero, so it computes what it did."""
    config = dict(unet.config)
    config["in_channels"] += COORDINATE_CHANNELS
    wider = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    weight = state["conv_in.weight"]
    state["conv_in.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], COORDINATE_CHANNELS,
                                                                  *weight.shape[2:])], dim=1)
    wider.load_state_dict(state)
    return wider


class Denoiser:
    def __init__(self, unet: UNet2DConditionModel):
        self.unet = unet

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x_in = unet_input(x_in, getattr(self.unet, "module", self.unet).config.in_channels)  # unet may be in DDP
        return self.unet(x_in, t, encoder_hidden_states=context, return_dict=False)[0]
