"""Makes docs/images/img2img.png, the README's image-to-image figure, with the README's own commands:
.venv/bin/python docs/images/img2img.py (about 10 s)."""

import os
import random
import tempfile

import numpy as np
from PIL import Image, ImageDraw

from glassdiff.cli import main
from glassdiff.world import render, scene_from_spec

CELL, LABEL = 128, 34


def cell(image: Image.Image, label: str) -> Image.Image:
    out = Image.new("RGB", (CELL, CELL + LABEL), "white")
    out.paste(image.convert("RGB").resize((CELL, CELL), Image.NEAREST), (0, 0))
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, 0, CELL - 1, CELL - 1), outline="#999")
    draw.multiline_text((4, CELL + 3), label, fill="black", spacing=2)
    return out


def figure(folder: str) -> Image.Image:
    os.chdir(folder)
    spec = {"include": [{"class": "circle", "count": 1, "color": "red", "cell": "left"}]}
    render(scene_from_spec(spec, random.Random(0))).save("in.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save("mask.png")
    cells = [cell(Image.open("in.png"), "in.png"), cell(Image.open("mask.png"), "mask.png\n(white: redraw)")]
    for strength in ("0.3", "0.6", "0.9"):
        main(["generate", "a blue circle on the left", "--init-image", "in.png", "--strength", strength,
              "-o", f"s{strength}.png", "-q"])
        cells.append(cell(Image.open(f"s{strength}.png"), f"'a blue circle on\nthe left', strength {strength}"))
    main(["generate", "a blue star on the right", "--init-image", "in.png", "--mask", "mask.png", "--strength", "1",
          "-o", "inpaint.png", "-q"])
    cells.append(cell(Image.open("inpaint.png"), "'a blue star on the\nright', with the mask"))
    sheet = Image.new("RGB", (len(cells) * (CELL + 6) + 6, CELL + LABEL + 12), "white")
    for k, c in enumerate(cells):
        sheet.paste(c, (6 + k * (CELL + 6), 6))
    return sheet


if __name__ == "__main__":
    target = os.path.abspath(os.path.join(os.path.dirname(__file__), "img2img.png"))
    with tempfile.TemporaryDirectory() as folder:
        figure(folder).save(target)
    print(f"wrote {target}")
