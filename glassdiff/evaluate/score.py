"""GenEval's rules, applied to the shapes world's detections.

As GenEval's `evaluate`: for each `include` entry, the `count` most confident
detections of its class must exist; with `color`, that many of them must have
that colour; with `position`, each must stand in the relation to every object
matched for the entry it names. `exclude` entries fail when `count` or more
of the class are found. Relations are judged as SHAPES_WORLD.md defines them
(centres apart by at least 0.15), not by GenEval's box-overlap rule. The
spec's extra keys: `size` and `cell` must hold for each matched object;
`background` for the image.

Each failure also gets a kind (FAILURE_KINDS), so that `glassdiff eval` can say
what goes wrong most: nothing drawn at all, a shape missing, a wrong colour...
"""

from __future__ import annotations

import dataclasses

from ..config import BadInput
from ..world.vocab import BACKGROUNDS, CELLS, COLORS, RELATIONS, SHAPES, SIZES, relation_holds
from .detect import Detection, Detections

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
# Why an image fails. An image counts once, under the first failure the judge finds (entries in prompt order).
FAILURE_KINDS = ("nothing drawn", "shape missing", "too few", "too many", "color", "size", "cell",
                 "relation", "background")


@dataclasses.dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str  # empty when passed
    kind: str = ""  # the first failure's kind (FAILURE_KINDS), empty when passed


def _found(detections: Detections, cls: str) -> list[Detection]:
    """Detections of a class, most confident first (confidence: how well the shape's drawing fits)."""
    return sorted((d for d in detections.objects if d.shape == cls), key=lambda d: -d.shape_score)


def judge(spec: dict, detections: Detections) -> Verdict:
    reasons: list[tuple[str, str]] = []  # (kind, text)
    matched_groups: list[list[Detection] | None] = []
    for req in spec.get("include", []):
        cls, count = req["class"], req.get("count", 1)
        found = _found(detections, cls)[:count]
        ok = len(found) >= count
        if not ok:
            kind = "nothing drawn" if not detections.objects else "too few" if found else "shape missing"
            reasons.append((kind, f"expected {cls}>={count}, found {len(found)}"))
        else:
            ok = _attributes_hold(req, found, reasons)
            if ok and "position" in req:
                _relation_holds(req, found, matched_groups, reasons)
        matched_groups.append(found if ok else None)
    for req in spec.get("exclude", []):
        n = len(_found(detections, req["class"]))
        if n >= req["count"]:
            reasons.append(("too many", f"expected {req['class']}<{req['count']}, found {n}"))
    if spec.get("background") and detections.background != spec["background"]:
        reasons.append(("background", f"expected {spec['background']} background, found {detections.background}"))
    if not reasons:
        return Verdict(True, "")
    return Verdict(False, "; ".join(text for _, text in reasons), reasons[0][0])


def _attributes_hold(req: dict, found: list[Detection], reasons: list[tuple[str, str]]) -> bool:
    cls, count = req["class"], req.get("count", 1)
    for key, attribute in (("color", "color"), ("size", "size"), ("cell", "cell")):
        if key in req:
            values = [getattr(d, attribute) for d in found]
            if values.count(req[key]) < count:
                reasons.append((key, f"expected {req[key]} {cls}>={count}, found {', '.join(values)} {cls}"))
                return False
    return True


def _relation_holds(req, found, matched_groups, reasons) -> None:
    relation, target = req["position"]
    if target >= len(matched_groups) or matched_groups[target] is None:
        reasons.append(("relation", f"no target for {req['class']} to be {relation}"))
        return
    for obj in found:
        for other in matched_groups[target]:
            if not relation_holds(relation, (obj.cx, obj.cy), (other.cx, other.cy)):
                text = (f"expected {req['class']} {relation} target {other.shape}, "
                        f"found centres ({obj.cx:.2f}, {obj.cy:.2f}) vs ({other.cx:.2f}, {other.cy:.2f})")
                reasons.append(("relation", text))
                return


def validate_spec(spec, where: str) -> dict:
    """Check one prompt-file entry; a BadInput names `where` and the fault."""
    if not isinstance(spec, dict) or not isinstance(spec.get("include"), list) or not spec["include"]:
        raise BadInput(f"{where}: expected an object with a non-empty 'include' list")
    if "tag" in spec and spec["tag"] not in TAGS:
        raise BadInput(f"{where}: unknown tag {spec['tag']!r}; known: {', '.join(TAGS)}")
    if spec.get("background") is not None and spec["background"] not in BACKGROUNDS:
        raise BadInput(f"{where}: unknown background {spec['background']!r}; known: {', '.join(BACKGROUNDS)}")
    for n, req in enumerate(spec["include"] + spec.get("exclude", [])):
        _validate_entry(req, n, len(spec["include"]), where)
    return spec


def _validate_entry(req, n, n_include, where):
    known = {"class": SHAPES, "color": tuple(COLORS), "size": tuple(SIZES), "cell": CELLS}
    if not isinstance(req, dict) or "class" not in req:
        raise BadInput(f"{where}: entry {n} needs a 'class'")
    for key, values in known.items():
        if key in req and req[key] not in values:
            raise BadInput(f"{where}: unknown {key} {req[key]!r}; known: {', '.join(values)}")
    count = req.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise BadInput(f"{where}: entry {n} count must be a positive whole number, got {count!r}")
    if "position" in req:
        position = req["position"]
        if (not isinstance(position, list) or len(position) != 2 or position[0] not in RELATIONS
                or not isinstance(position[1], int) or not 0 <= position[1] < n_include):
            raise BadInput(f"{where}: position must be [relation, index] with relation one of "
                           f"{', '.join(RELATIONS)} and a valid include index, got {position!r}")
