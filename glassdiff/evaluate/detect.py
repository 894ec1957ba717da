"""A classical detector for the shapes world: image in, objects and background out.

1. background: the palette background nearest the median colour of the border;
2. foreground: pixels far from that colour, split into connected components;
3. each component: colour = nearest palette colour to the median of its core
   pixels; shape = the outline that, drawn as the renderer draws it (sharp,
   or softened by a small Gaussian blur, as generated edges are) best explains
   its coverage. Each candidate is placed by the coverage's mass and centroid,
   which blur does not change, so a soft edge does not grow the object; size
   and cell come from the winning drawing's box.
No training: the templates are the renderer's own outlines.
"""

from __future__ import annotations

import dataclasses
import functools

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


BLURS = (0.0, 0.5, 0.9)  # Gaussian sigmas (pixels) a drawing is also compared at: generated edges are soft


@functools.cache
def _moments(shape: str) -> tuple[float, float, float]:
    """(area, centroid x, centroid y) of the shape's outline in its unit bounding box (shoelace formula)."""
    points = outline(shape)
    area = gx = gy = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        cross = x0 * y1 - x1 * y0
        area += cross
        gx += (x0 + x1) * cross
        gy += (y0 + y1) * cross
    area /= 2
    return abs(area), gx / (6 * area), gy / (6 * area)


def _placement(shape: str, mass: float, mx: float, my: float) -> tuple[float, float, float]:
    """(cx, cy, span) of the shape whose drawing has this coverage mass and centroid.

    Mass and centroid do not change under blur, so neither does the placement.
    """
    area, gx, gy = _moments(shape)
    span = (mass / area) ** 0.5
    return mx - gx * span, my - gy * span, span


def _draw(shape: str, cx: float, cy: float, span: float, h: int, w: int, blur: float = 0.0) -> np.ndarray:
    """Coverage in [0, 1] of a shape drawn at pixel centre (cx, cy) with pixel span, as the renderer draws."""
    s = SUPERSAMPLE
    image = Image.new("L", (w * s, h * s), 0)
    points = [((cx + x * span) * s, (cy + y * span) * s) for x, y in outline(shape)]
    ImageDraw.Draw(image).polygon(points, fill=255)
    coverage = np.asarray(image.resize((w, h), Image.BOX)) / 255.0
    return ndimage.gaussian_filter(coverage, blur, mode="constant") if blur else coverage


def _fit_shape(coverage: np.ndarray) -> tuple[str, float, tuple[float, float, float]]:
    """The shape whose drawing (sharp or softened) best explains the coverage, placed by its moments.

    Returns (shape, score, (cx, cy, span) in window pixels); score is 1 - (sum abs difference / mass).
    """
    h, w = coverage.shape
    mass = coverage.sum()
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    mx, my = (coverage * xs).sum() / mass, (coverage * ys).sum() / mass

    def error(shape, blur, dx=0.0, dy=0.0, grow=1.0):
        cx, cy, span = _placement(shape, mass, mx, my)
        drawn = _draw(shape, cx + dx, cy + dy, span * grow, h, w, blur)
        return np.abs(drawn - coverage).sum() / mass

    coarse = sorted((error(shape, blur), shape, blur) for shape in SHAPES for blur in BLURS)
    tweaks = [(dx, dy, 1.0) for dx in (-0.25, 0, 0.25) for dy in (-0.25, 0, 0.25)] + [(0, 0, 0.97), (0, 0, 1.03)]
    finalists = list(dict.fromkeys(shape for _, shape, _ in coarse))[:2]
    scored = []
    for shape in finalists:
        blur = next(b for _, s, b in coarse if s == shape)  # the shape's best softness
        scored.append(min((error(shape, blur, *t), shape, t) for t in tweaks))
    best_error, best, (dx, dy, grow) = min(scored)
    cx, cy, span = _placement(best, mass, mx, my)
    return best, 1.0 - best_error, (cx + dx, cy + dy, span * grow)


def _extent(shape: str, cx: float, cy: float, span: float) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of the drawn outline."""
    xs, ys = zip(*outline(shape))
    return cx + min(xs) * span, cy + min(ys) * span, cx + max(xs) * span, cy + max(ys) * span


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
        shape, score, placement = _fit_shape(coverage)
        bx0, by0, bx1, by1 = _extent(shape, *placement)
        x0, x1 = (bx0 + window[1].start) / w, (bx1 + window[1].start) / w
        y0, y1 = (by0 + window[0].start) / h, (by1 + window[0].start) / h
        span = max(x1 - x0, y1 - y0)
        if span > MAX_SPAN:
            continue
        objects.append(Detection(shape, color, size_of(span), (x0 + x1) / 2, (y0 + y1) / 2, (x0, y0, x1, y1),
                                 span, score))
    return Detections(background, tuple(objects))
