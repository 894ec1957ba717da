"""Detector validation on fresh renders it was not built from: accuracy per attribute.

`python -m glassdiff.evaluate.validate [N] [SEED] [BLUR]`. The detector has no
training data at all (its templates are the renderer's outlines), so any
seed gives fresh renders; the default seed differs from every training seed.
BLUR (a Gaussian radius in pixels) softens the renders first: generated
images are never as crisp as the renderer's, and the judge must still see
what a person sees.
"""

from __future__ import annotations

import random
import sys
import time

from PIL import ImageFilter

from ..world import render, sample_spec, scene_from_spec
from ..world.vocab import cell_of, size_of
from .detect import detect

ATTRIBUTES = ("shape", "color", "size", "count", "cell", "background")
CELL_MARGIN = 1 / 64  # cells are judged only for centres at least a pixel from a cell edge


def _near_cell_edge(c: float) -> bool:
    return any(abs(c - edge) < CELL_MARGIN for edge in (1 / 3, 2 / 3))


def validate(n: int = 2000, seed: int = 987654, size: int = 64, blur: float = 0.0) -> dict:
    """Render n random scenes (held-out compositions included), optionally blur, detect, score each attribute."""
    rng = random.Random(seed)
    hits = {a: 0 for a in ATTRIBUTES}
    totals = {a: 0 for a in ATTRIBUTES}
    t0 = time.time()
    for _ in range(n):
        scene = scene_from_spec(sample_spec(rng, heldout=True), rng)
        image = render(scene, size)
        found = detect(image.filter(ImageFilter.GaussianBlur(blur)) if blur else image)
        totals["background"] += 1
        hits["background"] += found.background == scene.background
        totals["count"] += 1
        hits["count"] += len(found.objects) == len(scene.objects)
        for obj in scene.objects:
            match = min(found.objects, key=lambda d: (d.cx - obj.cx) ** 2 + (d.cy - obj.cy) ** 2, default=None)
            checks = {"shape": (obj.shape, match and match.shape), "color": (obj.color, match and match.color),
                      "size": (size_of(obj.span), match and match.size)}
            if not (_near_cell_edge(obj.cx) or _near_cell_edge(obj.cy)):
                checks["cell"] = (cell_of(obj.cx, obj.cy), match and match.cell)
            for attribute, (truth, seen) in checks.items():
                totals[attribute] += 1
                hits[attribute] += truth == seen
    elapsed = time.time() - t0
    return {"renders": n, "seed": seed, "blur": blur, "accuracy": {a: hits[a] / totals[a] for a in ATTRIBUTES},
            "judged": totals, "images_per_s": n / elapsed}


def main(argv: list[str] | None = None) -> int:
    from ..options import Parser

    parser = Parser(prog="python -m glassdiff.evaluate.validate",
                    description="The detector's accuracy on fresh renders whose facts are known.")
    parser.add_argument("renders", type=int, nargs="?", default=2000)
    parser.add_argument("seed", type=int, nargs="?", default=987654)
    parser.add_argument("blur", type=float, nargs="?", default=0.0, help="Gaussian blur radius, in pixels")
    args = parser.parse_args(argv)
    report = validate(args.renders, args.seed, blur=args.blur)
    for attribute, accuracy in report["accuracy"].items():
        print(f"{attribute:<11}{accuracy:8.4f}  ({report['judged'][attribute]} judged)")
    print(f"{report['renders']} renders, {report['images_per_s']:.0f} images/s (render + detect)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
