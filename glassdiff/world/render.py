"""Drawing scenes: flat anti-aliased shapes on a plain background.

Every shape is a polygon in its own unit bounding box ([-0.5, 0.5]^2, y down,
the larger side spanning exactly 1), scaled to the object's span and drawn
at SUPERSAMPLE times the resolution, then box-filtered down.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw

from .scene import Scene
from .vocab import BACKGROUNDS

SUPERSAMPLE = 4


def _normalise(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    side = max(max(xs) - min(xs), max(ys) - min(ys))
    return tuple(((x - cx) / side, (y - cy) / side) for x, y in points)


def _regular(n: int, phase: float) -> list[tuple[float, float]]:
    return [(math.cos(phase + 2 * math.pi * k / n), math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]


def _star() -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.4
        a = -math.pi / 2 + math.pi * k / 5
        points.append((r * math.cos(a), r * math.sin(a)))
    return points


def _heart() -> list[tuple[float, float]]:
    ts = [2 * math.pi * k / 64 for k in range(64)]
    return [(16 * math.sin(t) ** 3,
             -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))) for t in ts]


def _cross() -> list[tuple[float, float]]:
    a = 1 / 6  # half the arm width: arms are a third of the span
    return [(-a, -0.5), (a, -0.5), (a, -a), (0.5, -a), (0.5, a), (a, a),
            (a, 0.5), (-a, 0.5), (-a, a), (-0.5, a), (-0.5, -a), (-a, -a)]


@functools.cache
def outline(shape: str) -> tuple[tuple[float, float], ...]:
    """The shape's polygon in its unit bounding box."""
    raw = {
        "circle": lambda: _regular(72, 0),
        "square": lambda: [(-1, -1), (1, -1), (1, 1), (-1, 1)],
        "triangle": lambda: [(0, -1), (1, 1), (-1, 1)],
        "star": _star,
        "heart": _heart,
        "diamond": lambda: [(0, -1), (1, 0), (0, 1), (-1, 0)],
        "hexagon": lambda: _regular(6, 0),
        "cross": _cross,
    }[shape]()
    return _normalise(raw)


def render(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as an RGB image of size x size pixels."""
    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        scale = obj.span * big
        points = [((obj.cx * big) + x * scale, (obj.cy * big) + y * scale) for x, y in outline(obj.shape)]
        draw.polygon(points, fill=obj.rgb)
    return canvas.resize((size, size), Image.BOX)


def render_array(scene: Scene, size: int = 64) -> np.ndarray:
    """The scene as uint8 (size, size, 3)."""
    return np.asarray(render(scene, size))
