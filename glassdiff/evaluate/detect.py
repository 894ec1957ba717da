"""A classical detector for the shapes world: image in, objects and background out.

1. background: the palette background nearest the median colour of the border;
2. foreground: pixels far from that colour, split into connected components;
3. each component: colour = nearest palette colour to the median of its core
   pixels; shape = the outline that, drawn as the renderer draws it in the
   component's sub-pixel bounding box, best explains its coverage; size and
   cell from that box.
No training: the templates are the renderer's own outlines.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..world.render import SUPERSAMPLE, outline
from ..world.vocab import BACKGROUNDS, COLORS, SHAPES, cell_of, size_of

FOREGROUND_DISTANCE = 32.0  # RGB distance from the background that counts as an object
MAX_SPAN = 0.6  # the largest shape spans 0.46: anything wider is not an object of this world
MIN_AREA_FRACTION = 0.003  # smaller components are noise (a small star at 64 px covers ~0.008)


@dataclasses.dataclass(frozen=True)
class Detection:
    shape: str
    color: str
    size: str
    cx: float  # bounding-box centre, fractions of the canvas, y down
    cy: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 fractions
    span: float
    shape_score: float  # how well the shape's drawing explains the pixels, 1 = perfectly

    @property
    def cell(self) -> str:
        return cell_of(self.cx, self.cy)


@dataclasses.dataclass(frozen=True)
class Detections:
    background: str
    objects: tuple[Detection, ...]


def _soft_box(coverage: np.ndarray) -> tuple[float, float, float, float]:
    """Sub-pixel bounding box (x0, y0, x1, y1) in pixels from a coverage map in [0, 1]."""
    def edges(profile):
        idx = np.flatnonzero(profile > 0.02)
        lo, hi = idx[0], idx[-1]
        return lo + (1 - profile[lo]), hi + profile[hi]
    x0, x1 = edges(coverage.max(axis=0))
    y0, y1 = edges(coverage.max(axis=1))
    return x0, y0, x1, y1


def _draw(shape: str, cx: float, cy: float, span: float, h: int, w: int) -> np.ndarray:
    """Coverage in [0, 1] of a shape drawn at pixel centre (cx, cy) with pixel span, as the renderer draws."""
    s = SUPERSAMPLE
    image = Image.new("L", (w * s, h * s), 0)
    points = [((cx + x * span) * s, (cy + y * span) * s) for x, y in outline(shape)]
    ImageDraw.Draw(image).polygon(points, fill=255)
    return np.asarray(image.resize((w, h), Image.BOX)) / 255.0


def _classify_shape(coverage: np.ndarray) -> tuple[str, float]:
    """The shape whose drawing best explains the coverage, with a small search over its placement.

    Returns (shape, score) where score is 1 - (mean abs difference / mean coverage), higher is better.
    """
    x0, y0, x1, y1 = _soft_box(coverage)
    h, w = coverage.shape
    cx, cy, span = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    mass = coverage.sum()

    def error(shape, dx=0.0, dy=0.0, grow=1.0):
        return np.abs(_draw(shape, cx + dx, cy + dy, span * grow, h, w) - coverage).sum() / mass

    first = sorted(SHAPES, key=error)[:2]
    tweaks = [(dx, dy, 1.0) for dx in (-0.3, 0, 0.3) for dy in (-0.3, 0, 0.3)] + [(0, 0, 0.95), (0, 0, 1.05)]
    scored = [(min(error(shape, *t) for t in tweaks), shape) for shape in first]
    best_error, best = min(scored)
    return best, 1.0 - best_error


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    names = list(palette)
    table = np.array([palette[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((table - rgb) ** 2).sum(1)))]


def detect(image: Image.Image | np.ndarray) -> Detections:
    """Objects and background of one image (any square size)."""
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image).astype(np.float64)
    h, w, _ = pixels.shape
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = _nearest(np.median(border, axis=0), BACKGROUNDS)
    distance = np.sqrt(((pixels - np.array(BACKGROUNDS[background])) ** 2).sum(-1))
    labels, count = ndimage.label(distance > FOREGROUND_DISTANCE)
    objects = []
    for index, sl in enumerate(ndimage.find_objects(labels), start=1):
        component = labels == index
        area = component.sum()
        if area < MIN_AREA_FRACTION * h * w:
            continue
        core = component & (distance > 0.6 * distance[component].max())
        color = _nearest(np.median(pixels[core], axis=0), COLORS)
        window = tuple(slice(max(0, a.start - 2), a.stop + 2) for a in sl)
        others = ndimage.binary_dilation((labels != 0) & ~component)  # keep neighbours' soft edges out
        near = (ndimage.binary_dilation(component, iterations=2) & ~others)[window]
        coverage = np.clip(distance[window] / max(np.median(distance[core]), 1e-6), 0, 1) * near
        shape, score = _classify_shape(coverage)
        bx0, by0, bx1, by1 = _soft_box(coverage)
        x0, x1 = (bx0 + window[1].start) / w, (bx1 + window[1].start) / w
        y0, y1 = (by0 + window[0].start) / h, (by1 + window[0].start) / h
        span = max(x1 - x0, y1 - y0)
        if span > MAX_SPAN:
            continue
        objects.append(Detection(shape, color, size_of(span), (x0 + x1) / 2, (y0 + y1) / 2, (x0, y0, x1, y1),
                                 span, score))
    return Detections(background, tuple(objects))
