"""Cheap pictures of a latent while it is drawn: what a live preview shows after every step.

The embedded model's autoencoder decodes a 16x16 latent in milliseconds, so its previews are real decodes.
A Stable Diffusion decoder at 512x512 takes seconds; its previews use the linear latent-to-RGB approximation
that A1111's "Approx cheap" preview uses (each of the 4 latent channels adds a fixed colour), at the latent's size.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# A1111's cheap approximation for SD 1.x/2.x latents (scaled, as the sampler holds them): RGB in [-1, 1]
SD_LATENT_RGB = torch.tensor([[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264],
                              [-0.184, -0.271, -0.473]])
DECODE_LIMIT = 128  # native sizes up to this are decoded for real


def preview(pipe, latents: torch.Tensor) -> Image.Image:
    """The first image of a batch of scaled latents (x0_pred, say) as a picture."""
    latent = latents[:1].float()
    if pipe.native_size <= DECODE_LIMIT or latent.shape[1] != SD_LATENT_RGB.shape[0]:
        return Image.fromarray(pipe.decode_latents(latent)[0].numpy())
    rgb = torch.einsum("bchw,cr->bhwr", latent, SD_LATENT_RGB)[0]
    return Image.fromarray(((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8).numpy().astype(np.uint8))
