"""The collage machine's network: a diffusers UNet2DConditionModel from a preset.

`Denoiser` wraps it as the plain callable the sampling loop takes:
(x_in (B, C, h, w), t (B,), context (B, L, D)) -> model output (B, C, h, w).
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel


def build_unet(config: dict) -> UNet2DConditionModel:
    return UNet2DConditionModel(**config)


class Denoiser:
    def __init__(self, unet: UNet2DConditionModel):
        self.unet = unet

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet(x_in, t, encoder_hidden_states=context, return_dict=False)[0]
