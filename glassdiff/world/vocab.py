"""The shapes world's vocabulary (docs/shapes-world.md), as data."""

SHAPES = ("circle", "square", "triangle", "star", "heart", "diamond", "hexagon", "cross")

COLORS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 215, 40),
    "green": (50, 170, 70),
    "blue": (40, 90, 220),
    "purple": (140, 60, 190),
    "pink": (240, 130, 190),
    "brown": (130, 85, 45),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
    "gray": (128, 128, 128),
}

BACKGROUNDS = {
    "white": (250, 250, 250),
    "black": (15, 15, 15),
    "gray": (90, 90, 90),
    "sky": (170, 210, 240),
    "sand": (235, 220, 180),
}

# An object never takes its background's colour.
FORBIDDEN_ON = {"white": "white", "black": "black", "gray": "gray"}

SIZES = {"small": (0.14, 0.20), "medium": (0.24, 0.30), "large": (0.38, 0.46)}

CELLS = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)

RELATIONS = ("left of", "right of", "above", "below")
RELATION_MARGIN = 0.15  # centres must differ by at least this along the relation's axis

NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}
JITTER = 12  # a render may move each colour channel by up to this much


def plural(shape: str) -> str:
    return shape + ("es" if shape.endswith("x") or shape.endswith("s") else "s")


def cell_of(cx: float, cy: float) -> str:
    """The 3x3 grid cell that holds the point (cx, cy), fractions of the canvas, y down."""
    col = min(int(cx * 3), 2)
    row = min(int(cy * 3), 2)
    return CELLS[row * 3 + col]


def size_of(span: float) -> str:
    """The size class whose range is nearest to a bounding-box span."""
    if span < (SIZES["small"][1] + SIZES["medium"][0]) / 2:
        return "small"
    if span < (SIZES["medium"][1] + SIZES["large"][0]) / 2:
        return "medium"
    return "large"


def relation_holds(relation: str, a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether centre a stands in `relation` to centre b (y grows downward)."""
    dx, dy = a[0] - b[0], a[1] - b[1]
    return {
        "left of": -dx >= RELATION_MARGIN,
        "right of": dx >= RELATION_MARGIN,
        "above": -dy >= RELATION_MARGIN,
        "below": dy >= RELATION_MARGIN,
    }[relation]
