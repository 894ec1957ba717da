"""Layout planning: a prompt naming two objects, or several copies of one, drawn as one-object prompts, each
in its own part of the canvas.

The default model puts one object where a caption says ("a star on the left") far more reliably than it relates
two, keeps two objects' colours apart, or counts (the model card has the figures). So for a prompt that names two
single objects, the planner gives each object half the canvas (the halves the relation asks for; left and right
for "and") and a prompt of its own that names the half ("a star on the left", at medium size where the prompt
leaves the size free, so that two shapes in neighbouring halves do not touch). Two copies of an object share its
half, a quarter each; a counted object gets a part per copy; a lone object named with no colour gets the whole
canvas, at medium size in the centre. For the first steps of sampling, where the layout is decided, each part is
drawn on a canvas of its own as if its prompt were the whole image, then the canvases are cut to their parts and
pasted together (sampling.Regions); the whole prompt steers the rest. This is regional prompting (as in
MultiDiffusion and LLM-grounded Diffusion, with a parser in place of the LLM).

The planner reads the world's caption grammar. A prompt in other words is first read by grounding.py, and the
world's wording of what it asks for is what the model reads and the planner plans (read_as_of). Prompts naming a
cell, or one object with its colour, are drawn as they are worded.
"""

from __future__ import annotations

import dataclasses
import random
import re

import torch

from .world.captions import CELL_PHRASES, caption
from .world.vocab import BACKGROUNDS, COLORS, FORBIDDEN_ON, RELATIONS, SHAPES, SIZES, cell_of

FREE_COLORS = tuple(c for c in COLORS if c not in ("white", "black", "gray"))  # hues: none vanishes into a background
FREE_SIZE = "medium"  # the size a region's prompt asks for when the prompt names none: it fits a quarter with room

_NOUN = (rf"(?P<lead{{n}}>a|an|one|two|three|four) "
         rf"(?:(?P<size{{n}}>{'|'.join(SIZES)}) )?(?:(?P<color{{n}}>{'|'.join(COLORS)}) )?"
         rf"(?P<shape{{n}}>{'|'.join(SHAPES)})(?:e?s)?(?P<cell{{n}}> (?:{'|'.join(CELL_PHRASES.values())}))?")
_PROMPT = re.compile(rf"{_NOUN.format(n=1)}(?:(?: and | (?P<relation>{'|'.join(RELATIONS)}) ){_NOUN.format(n=2)})?"
                     rf"(?: on (?:a )?(?P<background>{'|'.join(BACKGROUNDS)})(?: background)?)?")

# the halves each object takes, by the relation of the first object to the second ("and": reading order)
_HALVES = {None: ("left", "right"), "left of": ("left", "right"), "right of": ("right", "left"),
           "above": ("top", "bottom"), "below": ("bottom", "top")}
_BOXES = {"left": (0.0, 0.0, 0.5, 1.0), "right": (0.5, 0.0, 1.0, 1.0),
          "top": (0.0, 0.0, 1.0, 0.5), "bottom": (0.0, 0.5, 1.0, 1.0)}
_QUARTERS = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5), (0.0, 0.5, 0.5, 1.0), (0.5, 0.5, 1.0, 1.0)]
# the boxes of the copies of a lone object ("three stars"): the whole canvas, halves, two quarters over a half,
# quarters
_COPIES = {1: [(0.0, 0.0, 1.0, 1.0)], 2: [_BOXES["left"], _BOXES["right"]], 3: [*_QUARTERS[:2], _BOXES["bottom"]],
           4: _QUARTERS}
_COUNTS = {"two": 2, "three": 3, "four": 4}


@dataclasses.dataclass(frozen=True)
class Region:
    prompt: str  # a one-object prompt naming the region's cell
    box: tuple[float, float, float, float]  # x0, y0, x1, y1, fractions of the canvas, y down


def parse(prompt: str) -> dict | None:
    """The spec of a prompt of the shapes world's grammar naming one object (any count) or two (one or two
    copies each), or None."""
    match = _match(prompt)
    if match is None or match["cell1"] or match["cell2"]:
        return None
    objects = [{"class": match[f"shape{n}"], "count": _COUNTS.get(match[f"lead{n}"], 1)}
               | {k: match[f"{k}{n}"] for k in ("size", "color") if match[f"{k}{n}"]}
               for n in (1, 2) if match[f"shape{n}"]]
    if len(objects) == 2 and any(entry["count"] > 2 for entry in objects):
        return None
    return {"objects": objects, "relation": match["relation"], "background": match["background"]}


def in_grammar(prompt: str) -> bool:
    """Whether the prompt is worded as the world's captions are (cells included)."""
    return _match(prompt) is not None


def _match(prompt: str):
    return _PROMPT.fullmatch(" ".join(prompt.lower().split()).rstrip("."))


def read_as_of(prompt: str, grounding) -> str:
    """What the model reads for a prompt: the world's wording of its grounded spec (grounding.py), or, for a prompt
    in the world's grammar, or one not wholly grounded, its own words."""
    if grounding is None or grounding.spec is None or in_grammar(prompt):
        return prompt
    return grounding.caption


def plan(prompt: str, seed: int | None = None) -> list[Region] | None:
    """Regions tiling the canvas, one per copy of each object, or None when the prompt is drawn as it is.

    seed: regions drawn from the first step (--layout 1) name what the prompt leaves free, picked by the seed
    (_free_picked): with no whole-prompt step to settle a background, canvases left to choose chose different ones,
    and a few-step student draws an object of no named colour pale, between the colours it might be.
    """
    spec = parse(prompt)
    if spec is None:
        return None
    if len(spec["objects"]) == 1 and spec["objects"][0]["count"] == 1 and "color" in spec["objects"][0]:
        return None
    if seed is not None:
        spec = _free_picked(spec, random.Random(seed))
    if len(spec["objects"]) == 1:
        placed = [(spec["objects"][0], box) for box in _COPIES[spec["objects"][0]["count"]]]
    else:
        placed = [(entry, box) for entry, half in zip(spec["objects"], _HALVES[spec["relation"]])
                  for box in _split(_BOXES[half], entry["count"])]
    return [Region(_one_object(entry, box, spec["background"]), box) for entry, box in placed]


def _free_picked(spec: dict, rng: random.Random) -> dict:
    """The spec with a background where it names none (not one its objects' colours may not be drawn on), and a
    hue for each object named with no colour (its copies share it; two objects get two), as a prompt that leaves
    them free may have any."""
    named = {entry["color"] for entry in spec["objects"] if "color" in entry}
    background = spec["background"] or rng.choice([b for b in BACKGROUNDS if FORBIDDEN_ON.get(b) not in named])
    hues = rng.sample(FREE_COLORS, len(spec["objects"]))
    return {**spec, "background": background, "objects": [{"color": hue, **entry} for entry, hue in
                                                          zip(spec["objects"], hues)]}


def _one_object(entry: dict, box, background: str | None) -> str:
    """The caption of one copy of the object, at the cell of the box's centre."""
    cell = cell_of((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    one = {"include": [{"size": FREE_SIZE, **entry, "count": 1, "cell": cell}]}
    if background:
        one["background"] = background
    return caption(one)


def _split(box, count: int) -> list[tuple[float, float, float, float]]:
    """The box, or two copies' halves of it across its long side (a tall half into quarters above each other)."""
    x0, y0, x1, y1 = box
    if count == 1:
        return [box]
    if y1 - y0 > x1 - x0:
        return [(x0, y0, x1, (y0 + y1) / 2), (x0, (y0 + y1) / 2, x1, y1)]
    return [(x0, y0, (x0 + x1) / 2, y1), ((x0 + x1) / 2, y0, x1, y1)]


def masks(regions: list[Region], height: int, width: int) -> torch.Tensor:
    """(R, 1, height, width): 1 on the latent pixels of each region's box, 0 elsewhere."""
    out = torch.zeros(len(regions), 1, height, width)
    for i, region in enumerate(regions):
        x0, y0, x1, y1 = region.box
        out[i, :, round(y0 * height):round(y1 * height), round(x0 * width):round(x1 * width)] = 1
    return out
