"""Specs (the facts of a scene) and the captions that state them.

Training draws a random spec, phrases it, and renders a scene of which it is
true; benchmark prompts are specs phrased the canonical way.
"""

from __future__ import annotations

import math
import random

from ..config import BadInput
from .splits import HELDOUT_COLOR_SHAPE, HELDOUT_SHAPE_PAIRS
from .vocab import BACKGROUNDS, CELLS, COLORS, NUMBERS, RELATIONS, SHAPES, SIZES, plural

CELL_PHRASES = {
    "top left": "in the top left", "top": "at the top", "top right": "in the top right",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "in the bottom left", "bottom": "at the bottom", "bottom right": "in the bottom right",
}

# Share of training objects whose caption names their colour (the default model's stages 1-5).
NAMED_COLOR_SHARE = 0.85
# Share of single-object training captions that name a cell (the default model's stages 1-10).
NAMED_CELL_SHARE = 0.35
# Task mix of the training captions (tag -> weight).
TRAIN_TAGS = {"single_object": 3, "counting": 2, "two_object": 2, "position": 3}


def task_mix(text: str) -> dict[str, float]:
    """'single_object=3,counting=4' -> the training task mix; tasks left out keep their TRAIN_TAGS weight."""
    mix = dict(TRAIN_TAGS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        tag, _, weight = item.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = math.nan
        if tag.strip() not in mix or not 0 <= value < math.inf:
            raise BadInput(f"--caption-tasks: '{item}' is not TASK=WEIGHT with TASK one of {', '.join(TRAIN_TAGS)} "
                           f"and WEIGHT >= 0, e.g. 'counting=4,position=2'")
        mix[tag.strip()] = value
    if not any(mix.values()):
        raise BadInput("--caption-tasks: every weight is 0; give at least one task a positive weight")
    return mix


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(entry: dict, rng: random.Random | None = None) -> str:
    """'a large red circle', 'three blue squares', 'two stars'."""
    count = entry.get("count", 1)
    words = [w for w in (entry.get("size"), entry.get("color")) if w]
    noun = entry["class"] if count == 1 else plural(entry["class"])
    body = " ".join(words + [noun])
    if count == 1:
        lead = "one" if rng is not None and rng.random() < 0.1 else _article(body)
    else:
        lead = NUMBERS[count]
    return f"{lead} {body}"


def caption(spec: dict, rng: random.Random | None = None) -> str:
    """A sentence true of every scene that satisfies `spec`; rng varies the phrasing."""
    parts = []
    for entry in spec["include"]:
        phrase = noun_phrase(entry, rng)
        if entry.get("cell"):
            phrase += " " + CELL_PHRASES[entry["cell"]]
        if entry.get("position"):
            phrase = f"{phrase} {entry['position'][0]}"
        parts.append(phrase)
    if any(e.get("position") for e in spec["include"]):
        # the related object is written first: "A right of B"
        text = f"{parts[1]} {parts[0]}"
    else:
        text = " and ".join(parts)
    background = spec.get("background")
    if background:
        if rng is not None and rng.random() < 0.5:
            text += f" on {background}"
        else:
            text += f" on a {background} background"
    return text


def _allowed(color: str | None, shape: str, heldout: bool) -> bool:
    return heldout or color is None or (color, shape) not in HELDOUT_COLOR_SHAPE


def _entry(rng, shape, p_color, p_size=0.3, heldout=False, count=1):
    entry = {"class": shape, "count": count}
    if rng.random() < p_color:
        color = rng.choice(list(COLORS))
        if not _allowed(color, shape, heldout):
            return None
        entry["color"] = color
    if rng.random() < p_size:
        entry["size"] = rng.choice(list(SIZES)) if count <= 2 else rng.choice(["small", "medium"])
    return entry


def sample_spec(rng: random.Random, heldout: bool = False, p_color: float = NAMED_COLOR_SHARE,
                p_cell: float = NAMED_CELL_SHARE, tags: dict[str, float] | None = None) -> dict:
    """A random training spec; with heldout=False it never names a held-out composition.

    p_color is the share of objects whose colour the caption names; an object
    without one is drawn in any colour. p_cell is the share of single objects
    placed in a named cell. tags is the task mix (tag -> weight; default TRAIN_TAGS)."""
    while True:
        spec = _draw_spec(rng, heldout, p_color, p_cell, tags or TRAIN_TAGS)
        if spec is not None:
            spec["prompt"] = caption(spec, rng)
            return spec


def _draw_spec(rng: random.Random, heldout: bool, p_color: float, p_cell: float, tags: dict) -> dict | None:
    tag = rng.choices(list(tags), weights=list(tags.values()))[0]
    if tag in ("single_object", "counting"):
        count = 1 if tag == "single_object" else rng.randint(2, 4)
        entry = _entry(rng, rng.choice(SHAPES), p_color, heldout=heldout, count=count)
        if entry is None:
            return None
        if count == 1 and rng.random() < p_cell:
            entry["cell"] = rng.choice(CELLS)
        include = [entry]
    else:
        a, b = rng.sample(SHAPES, 2)
        if not heldout and frozenset((a, b)) in HELDOUT_SHAPE_PAIRS:
            return None
        first, second = _entry(rng, a, p_color, heldout=heldout), _entry(rng, b, p_color, heldout=heldout)
        if first is None or second is None:
            return None
        if tag == "position":
            second["position"] = [rng.choice(RELATIONS), 0]
        include = [first, second]
    spec = {"tag": tag, "include": include}
    if rng.random() < 0.25:
        spec["background"] = rng.choice(list(BACKGROUNDS))
        if any(e.get("color") == spec["background"] and e["color"] in ("white", "black", "gray") for e in include):
            return None
    return spec
