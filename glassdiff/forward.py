"""The forward process put to work: image-to-image (SDEdit) and inpainting, as diffusers' pipelines do them.

Image-to-image: the user's picture is encoded by the autoencoder, noised to the timestep the strength picks
(strength 0.6 of 15 steps: the last 9 steps run), and denoised from there with the prompt. Strength 1 is
text-to-image from the same seed (pure noise; without a mask the picture is not read); strength 0 returns the
picture round-tripped through the autoencoder. The picture's latent is the autoencoder's mean for glassdiff's own
models (their denoisers learned means) and a sample of its posterior for Stable Diffusion's (as diffusers draws
it). Each image's generator draws, in diffusers' order, that sample, then the noise (with a mask, one more sample,
as diffusers' inpainting encodes the masked picture), then the samplers' own noise.

Inpainting with any model (diffusers' StableDiffusionInpaintPipeline for a 4-channel UNet, A1111's "original"
fill): after every step, the latent outside the mask (white = repaint) is replaced by the picture's latent noised to
the next step's timestep, and by the picture's own latent after the last step, so only the masked part is redrawn.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from PIL import Image

from .config import BadInput


@dataclasses.dataclass(frozen=True)
class Start:
    """Where the reverse process begins for image-to-image."""

    index: int  # into the scheduler's timesteps (steps already skipped, times the scheduler's order)
    latents: torch.Tensor  # (B, C, h, w) the picture's latents, scaled, one autoencoder sample per image
    noise: torch.Tensor  # (B, C, h, w) the noise they were mixed with
    x_start: torch.Tensor  # the noised latents, in the scheduler's own space (empty: no step runs)


def first_step(steps: int, strength: float, order: int = 1) -> int:
    """The index of the first timestep run for a strength (diffusers' get_timesteps)."""
    skipped = max(steps - min(int(steps * strength), steps), 0)
    return skipped * order


def image_tensor(image: Image.Image, height: int, width: int) -> torch.Tensor:
    """An RGB picture as (1, 3, H, W) in [-1, 1], resized (bicubic) when it is not height x width already."""
    image = image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def mask_tensor(mask: Image.Image, height: int, width: int, latent_size: tuple[int, int]) -> torch.Tensor:
    """(1, 1, h, w) of 0 (keep) and 1 (repaint) on the latent grid: grayscale, resized to the image, binarised at
    half, then taken to the latent size by nearest neighbour (diffusers' mask processor)."""
    mask = mask.convert("L")
    if mask.size != (width, height):
        mask = mask.resize((width, height), Image.BILINEAR)
    binary = torch.from_numpy((np.asarray(mask, dtype=np.float32) / 255 >= 0.5).astype(np.float32))[None, None]
    return torch.nn.functional.interpolate(binary, size=latent_size)


@torch.no_grad()
def start_from(vae, scheduler, picture: torch.Tensor, generators: list[torch.Generator], steps: int,
               strength: float, sample: bool) -> Start:
    """Encode the picture once, take its latent per image (sample: drawn with that image's generator, else the
    mean), draw the noise, and noise the latents to the first timestep the strength runs."""
    if not 0 <= strength <= 1:
        raise BadInput(f"strength {strength} is outside [0, 1]; 0 keeps the picture, 1 ignores it")
    scheduler.set_timesteps(steps)
    index = first_step(steps, strength, scheduler.order)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(index)
    dist = vae.encode(picture).latent_dist
    latents = torch.cat([dist.sample(generator=g) if sample else dist.mean for g in generators])
    latents = latents * vae.config.scaling_factor
    noise = torch.cat([torch.randn((1, *latents.shape[1:]), generator=g) for g in generators])
    if index >= len(scheduler.timesteps):
        return Start(index, latents, noise, latents)
    if strength >= 1:  # inpainting at full strength starts from pure noise, as diffusers' does
        return Start(index, latents, noise, noise * scheduler.init_noise_sigma)
    t = scheduler.timesteps[index:index + 1].repeat(len(latents))
    return Start(index, latents, noise, scheduler.add_noise(latents, noise, t))


def keep_outside(scheduler, start: Start, mask: torch.Tensor):
    """after_step for inpainting: outside the mask, the picture's latent at the next step's noise level."""
    timesteps = scheduler.timesteps

    def blend(i: int, x_next: torch.Tensor) -> torch.Tensor:
        if i + 1 < len(timesteps):
            proper = scheduler.add_noise(start.latents, start.noise, timesteps[i + 1:i + 2].repeat(len(x_next)))
        else:
            proper = start.latents
        return (1 - mask) * proper + mask * x_next

    return blend


# ---------------- pictures from files (the command line) ----------------

def read_picture(path: str, what: str = "--init-image") -> Image.Image:
    """An image file, loaded; anything else is one line."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, ValueError) as err:
        raise BadInput(f"{what} {path}: cannot read it as an image ({err}); give a PNG, JPEG or WebP") from err


def data_hash(data: bytes) -> str:
    """First 10 hex digits of the bytes' sha256, as the parameters name an input."""
    import hashlib

    return hashlib.sha256(data).hexdigest()[:10]


def file_hash(path: str) -> str:
    with open(path, "rb") as f:
        return data_hash(f.read())


def parameter_fields(strength: float, init_hash: str, mask_hash: str | None = None, init_name: str | None = None,
                     mask_name: str | None = None) -> str:
    """What the parameters text says of a picture-started image: A1111's "Denoising strength", and the picture's
    and mask's file names (when they came from files) and hashes."""
    fields = [f"Denoising strength: {strength}"]
    fields += [f"Init image: {init_name}"] if init_name else []
    fields.append(f"Init image hash: {init_hash}")
    if mask_hash:
        fields += [f"Mask: {mask_name}"] if mask_name else []
        fields.append(f"Mask hash: {mask_hash}")
    return ", ".join(fields)


def blur_mask(mask: Image.Image, radius: float) -> Image.Image:
    """A1111's mask_blur: the mask, grayscale, softened by a Gaussian of this radius in pixels (0: unchanged);
    mask_tensor then binarises it, so the blur rounds the mask's corners and narrow gaps."""
    from PIL import ImageFilter

    mask = mask.convert("L")
    return mask.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else mask
