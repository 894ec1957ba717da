"""The paraphrase benchmark: the seen benchmark's requests, 50 per task, in other words.

`python -m glassdiff.evaluate.paraphrase` rebuilds `prompts/paraphrase.jsonl` deterministically (seed 0). Each
prompt keeps its seen prompt's spec (the judge checks the same facts) and words it as a person might: other names
for colours and shapes, other wordings of counts, sizes, relations, cells and backgrounds, other word orders, and
carrier phrases or style tags the world cannot draw. Its word lists are the test's own: none of them is a word
list of grounding.py, and none is a word of the training captions (tests/test_grounding.py checks both).
"""

from __future__ import annotations

import json
import os
import random

from .prompts import PROMPTS_DIR, load_prompts

PER_TASK = 50
COLOR_WORDS = {"red": ["crimson", "scarlet", "cherry red"], "orange": ["tangerine", "pumpkin"],
               "yellow": ["lemon", "canary yellow"], "green": ["emerald", "kelly green"],
               "blue": ["cobalt", "royal blue", "sapphire"], "purple": ["violet", "amethyst"],
               "pink": ["hot pink", "bubblegum pink"], "brown": ["chocolate", "chestnut"],
               "white": ["snow white"], "black": ["jet black", "pitch black"], "gray": ["grey", "slate grey"]}
SHAPE_WORDS = {"circle": ["disc", "orb", "sphere"], "square": ["tile", "box"], "triangle": ["pyramid"],
               "heart": ["valentine"], "diamond": ["rhombus", "lozenge"], "cross": ["plus sign"]}
PLURALS = {"box": "boxes", "plus sign": "plus signs"}
SIZE_WORDS = {"small": ["tiny", "little"], "medium": ["mid-sized", "moderately sized"], "large": ["big", "huge"]}
COUNT_WORDS = {2: ["2", "a pair of", "a couple of"], 3: ["3", "a trio of"], 4: ["4", "a set of four"]}
RELATION_WORDS = {"left of": ["to the left of", "further left than"],
                  "right of": ["to the right of", "further right than"],
                  "above": ["on top of", "atop", "higher up than"], "below": ["underneath", "further down than"]}
CELL_WORDS = {"top left": ["toward the top left"], "top": ["at the very top", "up at the top"],
              "top right": ["toward the top right"], "left": ["at the far left"],
              "center": ["in the very center", "dead center"], "right": ["at the far right"],
              "bottom left": ["toward the bottom left"], "bottom": ["down at the bottom", "near the bottom"],
              "bottom right": ["toward the bottom right"]}
BACKGROUND_WORDS = {"white": ["against a snow white background"], "black": ["set on a jet black background"],
                    "gray": ["against a grey background"], "sky": ["on a pale blue background"],
                    "sand": ["against a beige background", "set on a sandy background"]}
CARRIERS_BEFORE = ["a rendering of", "an illustration of", "could you make", "i would like", "a drawing of"]
CARRIERS_AFTER = [", children's book illustration", ", minimalist vector graphic", ", digital artwork", ", flat design"]
JOINS = [" and ", " as well as ", " along with ", ", plus "]


def _pick(rng: random.Random, canonical: str, table: dict, share: float = 0.7) -> str:
    """Another word for a world word (share of the time), else the world word."""
    return rng.choice(table[canonical]) if canonical in table and rng.random() < share else canonical


def object_phrase(entry: dict, rng: random.Random) -> str:
    count = entry.get("count", 1)
    shape = _pick(rng, entry["class"], SHAPE_WORDS, 0.6)
    noun = shape if count == 1 else PLURALS.get(shape, shape + ("es" if shape.endswith(("x", "s")) else "s"))
    words = [_pick(rng, entry[k], SIZE_WORDS if k == "size" else COLOR_WORDS) for k in ("size", "color") if k in entry]
    body = " ".join(words + [noun])
    if count == 1:
        lead = "an" if body[0] in "aeiou" else "a"
    else:
        lead = rng.choice(COUNT_WORDS[count])
    phrase = f"{lead} {body}"
    if entry.get("cell"):
        phrase += " " + rng.choice(CELL_WORDS[entry["cell"]])
    return phrase


def paraphrase(spec: dict, rng: random.Random) -> str:
    include = spec["include"]
    if len(include) == 1:
        text = object_phrase(include[0], rng)
    elif include[1].get("position"):
        relation = rng.choice(RELATION_WORDS[include[1]["position"][0]])
        first, second = object_phrase(include[1], rng), object_phrase(include[0], rng)  # "first relation second"
        text = f"{relation} {second}, {first}" if rng.random() < 0.3 else f"{first} {relation} {second}"
    else:
        text = rng.choice(JOINS).join(object_phrase(entry, rng) for entry in include)
    if spec.get("background"):
        text += " " + rng.choice(BACKGROUND_WORDS[spec["background"]])
    roll = rng.random()
    if roll < 0.3:
        text = f"{rng.choice(CARRIERS_BEFORE)} {text}"
    elif roll < 0.5:
        text += rng.choice(CARRIERS_AFTER)
    return text


def build(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    seen = load_prompts("seen")
    for tag in dict.fromkeys(spec["tag"] for spec in seen):
        specs = [spec for spec in seen if spec["tag"] == tag]
        for spec in rng.sample(specs, PER_TASK):
            text = spec["prompt"]
            while text == spec["prompt"]:  # every prompt says it in other words somewhere
                text = paraphrase(spec, rng)
            out.append({**spec, "canonical": spec["prompt"], "prompt": text})
    return out


def main():
    specs = build()
    with open(os.path.join(PROMPTS_DIR, "paraphrase.jsonl"), "w") as f:
        for spec in specs:
            f.write(json.dumps(spec) + "\n")
    print(f"paraphrase: {len(specs)} prompts")


if __name__ == "__main__":
    main()
