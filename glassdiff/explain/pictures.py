"""Small pictures for the report, without a plotting library: strips, heatmaps, overlays, SVG lines."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import torch
from PIL import Image, ImageDraw

PALETTE = ("#c0392b", "#2471a3", "#27ae60", "#8e44ad")


def _diverging(x: np.ndarray) -> np.ndarray:
    """x in [-1, 1] -> RGB uint8: blue (negative), white (0), red (positive)."""
    x = np.clip(x, -1, 1)[..., None]
    white = np.array([255, 255, 255.0])
    red, blue = np.array([192, 57, 43.0]), np.array([36, 113, 163.0])
    rgb = np.where(x >= 0, white + (red - white) * x, white + (blue - white) * (-x))
    return rgb.astype(np.uint8)


def diverging_strip(vector: torch.Tensor) -> Image.Image:
    """One embedding vector as a 1-pixel-high strip."""
    v = vector.float().numpy()
    return Image.fromarray(_diverging(v / (np.abs(v).max() + 1e-8))[None, :, :])


def heatmap(matrix: np.ndarray, labels: list[str], cell: int = 30) -> Image.Image:
    """A labelled similarity heatmap (values in [-1, 1]) with the value in each cell."""
    n = len(labels)
    margin = 8 + 7 * max(len(s) for s in labels)
    image = Image.new("RGB", (margin + n * cell + 4, margin + n * cell + 4), "white")
    draw = ImageDraw.Draw(image)
    colors = _diverging(matrix)
    for i in range(n):
        draw.text((4, margin + i * cell + cell // 3), labels[i], fill=(30, 30, 30))
        column = Image.new("L", (7 * len(labels[i]) + 4, 12), 255)
        ImageDraw.Draw(column).text((2, 0), labels[i], fill=0)
        column = column.rotate(90, expand=True)
        image.paste(Image.merge("RGB", [column] * 3), (margin + i * cell + cell // 3, margin - column.height - 2))
        for j in range(n):
            x, y = margin + j * cell, margin + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=tuple(int(c) for c in colors[i, j]))
            draw.text((x + 3, y + cell // 3), f"{matrix[i, j]:.2f}".replace("0.", ".", 1), fill=(20, 20, 20))
    return image


def overlay(image: np.ndarray, weights: np.ndarray, alpha: float = 0.65) -> Image.Image:
    """An attention map (h, w) upsampled over an image (H, W, 3): dimmed where attention is low.

    The map is stretched to its own range first: attention spread over the whole canvas still shows where it peaks.
    """
    spread = float(weights.max() - weights.min())
    weights = (weights - weights.min()) / spread if spread > 1e-6 else np.ones_like(weights)
    big = np.asarray(Image.fromarray((weights * 255).astype(np.uint8)).resize(image.shape[1::-1], Image.BILINEAR))
    w = big[..., None] / 255.0
    heat = np.stack([255 * w[..., 0], 200 * w[..., 0] ** 2, 40 * np.ones_like(w[..., 0])], -1)
    mixed = image * (1 - alpha) + alpha * (image * w * 0.6 + heat * 0.4)
    return Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8))


def project_to_rgb(reference: torch.Tensor):
    """A fixed false-colour map for latents: the reference latent's first three principal channel directions.

    Returns basis(t (1, C, h, w), limit) -> PIL image, with values scaled by limit (the same for all steps).
    """
    c = reference.shape[1]
    pixels = reference[0].reshape(c, -1).T.float()
    pixels = pixels - pixels.mean(0)
    _, _, v = torch.linalg.svd(pixels, full_matrices=False)
    directions = v[: min(3, c)].T  # (C, 3)

    def basis(t: torch.Tensor, limit: float) -> Image.Image:
        rgb = t[0].reshape(c, -1).T.float() @ directions / (limit * 0.6)
        rgb = rgb.reshape(t.shape[2], t.shape[3], -1).numpy()
        if rgb.shape[-1] < 3:
            rgb = np.concatenate([rgb, np.zeros(rgb.shape[:2] + (3 - rgb.shape[-1],))], -1)
        return Image.fromarray((np.clip(rgb * 0.5 + 0.5, 0, 1) * 255).astype(np.uint8))

    return basis


def svg_lines(series: dict, xlabel: str, ylabel: str, xy: bool = False, width: int = 420, height: int = 240,
              legend: bool = True) -> str:
    """An inline SVG line plot: series name -> y values (or (x, y) points when xy), series k in PALETTE[k]; the
    legend inside the plot's top left (legend=False: the caller writes one)."""
    points = {name: (list(values) if xy else list(enumerate(values))) for name, values in series.items()}
    xs = [p[0] for pts in points.values() for p in pts]
    ys = [p[1] for pts in points.values() for p in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    left, bottom = 50, 30

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (width - left - 10)

    def sy(y):
        return height - bottom - (y - y0) / (y1 - y0) * (height - bottom - 20)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="plot">',
             f'<rect x="{left}" y="10" width="{width - left - 10}" height="{height - bottom - 10}" '
             f'fill="#fafafa" stroke="#ccc"/>',
             f'<text x="{width // 2}" y="{height - 6}" font-size="12" text-anchor="middle">'
             f'{html.escape(xlabel)}</text>',
             f'<text x="12" y="{height // 2}" font-size="12" transform="rotate(-90 12 {height // 2})" '
             f'text-anchor="middle">{html.escape(ylabel)}</text>',
             f'<text x="{left - 4}" y="{sy(y1) + 4:.0f}" font-size="10" text-anchor="end">{y1:.3g}</text>',
             f'<text x="{left - 4}" y="{sy(y0):.0f}" font-size="10" text-anchor="end">{y0:.3g}</text>']
    for k, (name, pts) in enumerate(points.items()):
        color = PALETTE[k % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in pts]
        if legend:
            parts.append(f'<text x="{left + 8}" y="{24 + 14 * k}" font-size="11" fill="{color}">'
                         f'{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def layout_overlay(image: np.ndarray, boxes: list[tuple[float, float, float, float]], scale: int = 4) -> Image.Image:
    """The image enlarged, each planned region's box outlined in its PALETTE colour and numbered from 1."""
    big = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(big)
    width, height = big.size
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        color = PALETTE[k % len(PALETTE)]
        corner = (round(x0 * width) + 3, round(y0 * height) + 3)
        draw.rectangle((corner, (round(x1 * width) - 4, round(y1 * height) - 4)), outline=color, width=3)
        draw.rectangle((corner, (corner[0] + 14, corner[1] + 15)), fill=color)
        draw.text((corner[0] + 4, corner[1] + 2), str(k + 1), fill="white")
    return big


def png_uri(image: Image.Image) -> str:
    """The image at its own size (the page scales it up, pixelated: smaller files, quicker to build)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # fast: the page is built while the user waits
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


PANEL_SIDE = 128  # per-step pictures of larger images are shrunk to this: a report of many steps stays a few MB


def panel(image: Image.Image, side: int = PANEL_SIDE) -> Image.Image:
    """An image for a per-step panel, at most `side` pixels a side."""
    scale = side / max(image.size)
    return image if scale >= 1 else image.resize((round(image.width * scale), round(image.height * scale)),
                                                 Image.BILINEAR)


def img_tag(uri: str, alt: str, cls: str = "", width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}" class="{cls}"{size}>'
