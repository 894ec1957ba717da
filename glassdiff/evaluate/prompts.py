"""The benchmark prompt files: GenEval's six tasks in GenEval's proportions.

`python -m glassdiff.evaluate.prompts` rebuilds `prompts/seen.jsonl` and
`prompts/heldout.jsonl` deterministically (seed 0). `seen` prompts name only
compositions training shows; `heldout` prompts each name a held-out colour-
shape pair or shape pair (glassdiff/world/splits.py).
"""

from __future__ import annotations

import json
import os
import random

from ..config import BadInput
from ..world.captions import caption
from ..world.splits import HELDOUT_COLOR_SHAPE, HELDOUT_SHAPE_PAIRS, is_heldout
from ..world.vocab import BACKGROUNDS, CELLS, COLORS, FORBIDDEN_ON, RELATIONS, SHAPES, SIZES
from .score import validate_spec

PROMPTS_DIR = os.path.join(os.path.dirname(__file__), "prompts")
GENEVAL_COUNTS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                  "color_attr": 100}
HELDOUT_SHARE = 0.2


def _extra_fact(spec: dict, rng: random.Random, kinds=("size", "cell", "background")) -> dict:
    """Eight shapes make few distinct prompts per task, so most prompts also state one
    more fact of the spec (a size, a cell, a colour or a background) that the judge checks too."""
    kind = rng.choice(("none",) + tuple(kinds))
    entry = rng.choice(spec["include"])
    if kind == "size":
        entry["size"] = rng.choice(list(SIZES) if entry.get("count", 1) <= 2 else ["small", "medium"])
    elif kind == "cell":
        entry["cell"] = rng.choice(CELLS)
    elif kind == "color":
        entry["color"] = rng.choice(list(COLORS))
    elif kind == "background":
        colors = {e.get("color") for e in spec["include"]}
        spec["background"] = rng.choice([b for b in BACKGROUNDS if not (b in colors and b in FORBIDDEN_ON)])
    return spec


def _spec(tag: str, rng: random.Random) -> dict:
    if tag == "single_object":
        return _extra_fact({"tag": tag, "include": [{"class": rng.choice(SHAPES), "count": 1}]}, rng)
    elif tag == "counting":
        n = rng.randint(2, 4)
        shape = rng.choice(SHAPES)
        spec = {"tag": tag, "include": [{"class": shape, "count": n}], "exclude": [{"class": shape, "count": n + 1}]}
        return _extra_fact(spec, rng, ("color", "size", "background"))
    elif tag == "colors":
        include = [{"class": rng.choice(SHAPES), "count": 1, "color": rng.choice(list(COLORS))}]
    else:
        a, b = rng.sample(SHAPES, 2)
        include = [{"class": a, "count": 1}, {"class": b, "count": 1}]
        if tag == "position":
            include[1]["position"] = [rng.choice(RELATIONS), 0]
        if tag == "color_attr":
            ca, cb = rng.sample(list(COLORS), 2)
            include[0]["color"], include[1]["color"] = ca, cb
    if tag in ("two_object", "position"):
        return _extra_fact({"tag": tag, "include": include}, rng, ("size", "background"))
    return {"tag": tag, "include": include}


def _heldout_spec(tag: str, rng: random.Random) -> dict:
    """A spec of this tag that names a held-out composition."""
    color, shape = rng.choice(sorted(HELDOUT_COLOR_SHAPE))
    if tag in ("single_object", "colors"):
        return _extra_fact({"tag": tag, "include": [{"class": shape, "count": 1, "color": color}]}, rng)
    if tag == "counting":
        n = rng.randint(2, 4)
        return {"tag": tag, "include": [{"class": shape, "count": n, "color": color}],
                "exclude": [{"class": shape, "count": n + 1}]}
    if tag == "color_attr":
        other = rng.choice([s for s in SHAPES if s != shape])
        other_color = rng.choice([c for c in COLORS if c != color and (c, other) not in HELDOUT_COLOR_SHAPE])
        include = [{"class": shape, "count": 1, "color": color}, {"class": other, "count": 1, "color": other_color}]
        rng.shuffle(include)
        return {"tag": tag, "include": include}
    a, b = rng.sample(sorted(rng.choice(sorted(HELDOUT_SHAPE_PAIRS, key=sorted))), 2)
    include = [{"class": a, "count": 1}, {"class": b, "count": 1}]
    if tag == "position":
        include[1]["position"] = [rng.choice(RELATIONS), 0]
    return _extra_fact({"tag": tag, "include": include}, rng, ("size", "background"))


def build(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(seen, heldout) prompt lists, distinct prompts, GenEval's task proportions."""
    rng = random.Random(seed)
    seen, heldout = [], []
    for tag, total in GENEVAL_COUNTS.items():
        n_heldout = round(total * HELDOUT_SHARE)
        for target, n, draw in ((seen, total - n_heldout, _spec), (heldout, n_heldout, _heldout_spec)):
            prompts: set[str] = set()
            while len(prompts) < n:
                spec = draw(tag, rng)
                if (draw is _spec) == is_heldout(spec):
                    continue
                spec["prompt"] = caption(spec)
                if spec["prompt"] not in prompts:
                    prompts.add(spec["prompt"])
                    target.append(spec)
    return seen, heldout


def load_prompts(path: str) -> list[dict]:
    """A GenEval-style metadata JSON-lines file, validated line by line."""
    if path in ("seen", "heldout", "paraphrase"):
        path = os.path.join(PROMPTS_DIR, f"{path}.jsonl")
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError as err:
        raise BadInput(f"cannot read prompt file {path}: {err.strerror}") from err
    specs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            spec = json.loads(line)
        except ValueError as err:
            raise BadInput(f"{path} line {n}: malformed JSON ({err.msg})") from err
        specs.append(validate_spec(spec, f"{path} line {n}"))
    if not specs:
        raise BadInput(f"prompt file {path} holds no prompts")
    return specs


def main():
    seen, heldout = build()
    os.makedirs(PROMPTS_DIR, exist_ok=True)
    for name, specs in (("seen", seen), ("heldout", heldout)):
        with open(os.path.join(PROMPTS_DIR, f"{name}.jsonl"), "w") as f:
            for spec in specs:
                f.write(json.dumps(spec) + "\n")
        print(f"{name}: {len(specs)} prompts")


if __name__ == "__main__":
    main()
