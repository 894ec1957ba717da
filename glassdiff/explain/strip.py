"""The trajectory strip: pure noise on the left, the finished image on the right."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..sampling import StepRecord


def pick_steps(n_steps: int, columns: int) -> list[int]:
    """Evenly spaced step indices, always ending on the last step."""
    if n_steps <= columns:
        return list(range(n_steps))
    return sorted({round(i * (n_steps - 1) / (columns - 1)) for i in range(columns)})


def trajectory_strip(pipe, records: list[StepRecord], columns: int = 8, scale: int = 2,
                     x0_images: np.ndarray | None = None, image: int = 0, max_side: int = 256,
                     start_label: str = "noise x_T") -> Image.Image:
    """One row: decoded x_T, then decoded x0_pred at evenly spaced steps, each labelled step/timestep, of the
    batch's image number `image`; each cell at most max_side pixels (large images are shrunk, small ones enlarged
    pixel by pixel).

    x0_images: every step's x0_pred already decoded (uint8 (S, H, W, 3)), to skip decoding them again.
    """
    chosen = pick_steps(len(records), columns - 1)
    x_T = records[0].x_t[image:image + 1]
    noise = pipe.decode_latents(x_T / x_T.std()).numpy()
    if x0_images is None:
        steps = list(pipe.decode_latents(torch.cat([records[i].x0_pred[image:image + 1] for i in chosen])).numpy())
    else:
        steps = [x0_images[i] for i in chosen]
    pixels = [noise[0]] + steps
    labels = [start_label] + [f"step {i + 1}/{len(records)}\nt={records[i].timestep:.0f}" for i in chosen]
    size = min(pixels[0].shape[0] * scale, max_side)
    resample = Image.NEAREST if size >= pixels[0].shape[0] else Image.BILINEAR
    cell = max(size, 84)
    strip = Image.new("RGB", (cell * len(labels) + 4 * (len(labels) + 1), size + 40), "white")
    draw = ImageDraw.Draw(strip)
    for k, (array, label) in enumerate(zip(pixels, labels)):
        x = 4 + k * (cell + 4)
        strip.paste(Image.fromarray(array).resize((size, size), resample), (x + (cell - size) // 2, 4))
        draw.multiline_text((x + 2, size + 8), label, fill=(30, 30, 30), spacing=2)
    return strip
