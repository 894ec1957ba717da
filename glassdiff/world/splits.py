"""Compositions that training never shows, so `heldout` prompts test generalisation.

Each shape and each of eight colours appears in exactly one held-out colour-shape
pair; each shape in exactly one held-out shape pair (never in one scene together).
"""

HELDOUT_COLOR_SHAPE = frozenset({
    ("red", "diamond"), ("orange", "circle"), ("yellow", "star"), ("green", "heart"),
    ("blue", "cross"), ("purple", "square"), ("pink", "triangle"), ("brown", "hexagon"),
})

HELDOUT_SHAPE_PAIRS = frozenset({
    frozenset(("circle", "cross")), frozenset(("square", "heart")),
    frozenset(("triangle", "hexagon")), frozenset(("star", "diamond")),
})


def is_heldout(spec: dict) -> bool:
    """Whether a spec names a composition training never shows."""
    entries = spec["include"]
    if any((e.get("color"), e["class"]) in HELDOUT_COLOR_SHAPE for e in entries):
        return True
    shapes = {e["class"] for e in entries}
    return any(pair <= shapes for pair in HELDOUT_SHAPE_PAIRS)


def card() -> str:
    """The split, in words, for the dataset's card."""
    pairs = ", ".join(f"{c} {s}" for c, s in sorted(HELDOUT_COLOR_SHAPE))
    shapes = ", ".join(" + ".join(sorted(p)) for p in sorted(HELDOUT_SHAPE_PAIRS, key=sorted))
    return (f"Held out of training: the colour-shape pairs {pairs} (never drawn), "
            f"and the shape pairs {shapes} (never in one scene).")
