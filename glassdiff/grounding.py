"""Grounding: a prompt's words read as the shapes world's vocabulary by what they mean, not by their spelling.

People don't speak the world's caption grammar: "a pair of cobalt orbs beneath a tile" asks for what "two blue
circles below a square" asks for. The grounder finds the objects of a prompt (a shape word and the count, size and
colour words before it), then reads the words between and around them as a relation, a cell, a background, a
joining word or a carrier phrase ("a sketch of", "in a watercolour style") that the world cannot draw.

Each word is read by the first of these sources that reads it, and only above a threshold:
- the world's own words (and plurals, numerals), exactly;
- for colours, a colour survey: matplotlib's XKCD and CSS colour names give a word an sRGB value, read as the
  nearest of the world's colours in OKLab (MiniLM places "crimson" nearer purple than red; a survey does not);
- for shapes, counts and directions, two dictionaries (glassdiff.lexicon): WordNet ("rhombus" is a diamond, "a
  couple" a kind of two, "higher" the antonym of "low") and Unicode's glyph names, drawn and compared with the
  world's outlines ("plus sign");
- for everything else, the text encoder (MiniLM): cosine similarity between the word's embedding and the world's
  words, in a short context ("a tile shape" against "a square shape").
A size compound ("mid-sized", "moderately sized") reads its first word as the nearest size, by a margin.
What is not grounded is reported with its nearest known word and their similarity, never guessed. A prompt with at
least one object read gets a spec of what was read (the notice says what was left out and what is drawn); one with
none is drawn as written. Closed classes that an embedding cannot tell apart (left from right, above from below:
antonyms sit close) come from short word lists here.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np

from . import lexicon
from .world.captions import caption
from .world.vocab import BACKGROUNDS, COLORS, NUMBERS, SHAPES, SIZES, plural

SHAPE_SIMILARITY = 0.60  # "a W shape" against "a square shape", for a word where a noun stands: MiniLM, cosine
SHAPE_MARGIN = -0.06  # and at most this much less similar to "a star shape" than to "a shape"
DIRECTION_SIMILARITY = 0.70  # a word against the direction words, and ahead of the opposite direction by a margin
DIRECTION_MARGIN = 0.05
SCALE_MARGIN = 0.05  # a size or count word ahead of the next size or count by this much ("mid-sized" is not)
JOINING_SIMILARITY = 0.50
SIZE_SIMILARITY = 0.60
COUNT_SIMILARITY = 0.50
CARRIER_SIMILARITY = 0.50
COLOR_DISTANCE = 30.0  # OKLab distance (x100) from a surveyed colour to the nearest of the world's colours, at most
CHROMATIC = 5.0  # OKLab chroma (x100) from which a colour has a hue
LIGHTNESS_CHROMA_WEIGHT = 0.3  # how much differences in lightness and chroma count against one in hue

ARTICLES = {"a": 1, "an": 1, "one": 1, "single": 1}
BACK_REFERENCES = frozenset({"it", "its", "them", "their"})  # "to its right", "above them": the object named before
FUNCTION_WORDS = frozenset("a an the of is are be it its them their that this there here which some each just very "
                           "and , to in on at with against than as".split())
JOINING = ("and", "with", "next to", "beside")
# direction words: the world's own, and the few everyday ones an embedding cannot tell from their antonyms
DIRECTIONS = {"left": "left", "right": "right", "top": "top", "bottom": "bottom", "center": "center",
              "upper": "top", "lower": "bottom", "middle": "center", "centre": "center",
              "above": "top", "over": "top", "below": "bottom", "under": "bottom", "beneath": "bottom"}
POSITION_FILLERS = frozenset("corner side edge hand part half of the to in on at".split())
OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
RELATION_OF = {"left": "left of", "right": "right of", "top": "above", "bottom": "below"}
CARRIERS = ("a picture of", "an image of", "a photo of", "draw", "please", "show me", "in the style of", "art",
            "painting")
BACKGROUND_WORDS = frozenset("background backdrop".split())
SIZE_NOUN = "size"  # "W-sized" and "W size" name a size
WORLD_VOCABULARY = tuple(dict.fromkeys([*SHAPES, *COLORS, *SIZES, *NUMBERS.values(), *BACKGROUNDS]))
WORLD_WORDS = frozenset(WORLD_VOCABULARY)
KNOWN_WORDS = WORLD_WORDS | BACKGROUND_WORDS | FUNCTION_WORDS | POSITION_FILLERS | set(DIRECTIONS)  # no dictionary
DICTIONARIES = ("world", "WordNet", "Unicode glyph")  # sources sure enough that a shape word names an object alone


@dataclasses.dataclass(frozen=True)
class Reading:
    words: str  # the prompt's words
    kind: str  # shape, color, size, count, relation, cell, background, joining, carrier, loose, unknown
    value: str | int | None  # the world's word it was read as (unknown: the nearest it knows)
    score: float  # similarity, 1.0 for the world's own words
    source: str  # "world", "numeral", "colour survey", "WordNet", "Unicode glyph", "text encoder"


@dataclasses.dataclass(frozen=True)
class Grounding:
    prompt: str
    readings: tuple[Reading, ...]
    spec: dict | None  # {"objects": [...], "relation": ..., "background": ...}, None when not all was read

    @property
    def unknown(self) -> list[Reading]:
        return [r for r in self.readings if r.kind == "unknown"]

    @property
    def caption(self) -> str | None:
        """The world's own wording of the spec ("two blue circles below a square")."""
        return None if self.spec is None else caption(to_include(self.spec))

    def summary(self) -> str:
        """The world's wording and the readings that led to it: "'a blue diamond below a square' (cobalt: blue
        0.78, rhombus: diamond 1.00 by WordNet, ...)"."""
        drawn = ("shape", "color", "size", "count", "relation", "cell", "background")
        read = [f"{r.words}: {r.value} {r.score:.2f}" + (f" by {r.source}" if r.source in DICTIONARIES[1:] else "")
                for r in self.readings if r.kind in drawn and str(r.value) != r.words]
        ignored = [r.words for r in self.readings if r.kind in ("carrier", "loose")]
        detail = ", ".join(read + [f"{words}: not drawn" for words in ignored])
        return f"{self.caption!r}" + (f" ({detail})" if detail else "")

    def notice(self) -> str | None:
        """One line naming the words the model's world has no meaning for, or None."""
        if not self.unknown:
            return None
        words = "; ".join(f"{r.words}: not in this model's world, nearest it knows: {r.value} ({r.score:.2f})"
                          for r in self.unknown)
        drawn = f"drawn as {self.caption!r}" if self.spec else "drawn as written"
        return f"{words} ({drawn})"


def to_include(spec: dict) -> dict:
    """A grounded spec in the captions' form (the related object first, a relation on the second)."""
    include = [dict(entry) for entry in spec["objects"]]
    if spec.get("relation"):
        include = [include[1], {**include[0], "position": [spec["relation"], 0]}]
    out = {"include": include}
    if spec.get("background"):
        out["background"] = spec["background"]
    return out


def words_of(prompt: str) -> list[str]:
    """Lower-case words, numerals and commas. A hyphenated word of directions splits ("upper-left" -> "upper",
    "left"); another stays one word ("mid-sized")."""
    words = []
    for word in re.findall(r"\d+|[a-z]+(?:['-][a-z]+)*|,", prompt.lower()):
        parts = word.split("-")
        split = all(part in DIRECTIONS or part in POSITION_FILLERS for part in parts)
        words += parts if split else [word]
    return words


# ---------- colours: a survey's sRGB, read as the nearest of the world's colours ----------

def _lab(rgb) -> np.ndarray:
    """sRGB 0-255 -> OKLab x 100 (Ottosson 2020: CIELAB's blues drift to purple; OKLab's hues hold)."""
    c = np.asarray(rgb, float) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    lms = np.cbrt(c @ np.array([[0.4122214708, 0.5363325363, 0.0514459929], [0.2119034982, 0.6806995451, 0.1073969566],
                                [0.0883024619, 0.2817188376, 0.6299787005]]).T)
    return 100 * lms @ np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                                 [1.9779984951, -2.4285922050, 0.4505937099],
                                 [0.0259040371, 0.7827717662, -0.8086757660]]).T


def _chroma(rgb) -> float:
    lab = _lab(rgb)
    return float(np.hypot(lab[1], lab[2]))


@functools.cache
def _survey() -> dict[str, tuple[float, float, float]]:
    from matplotlib import colors

    named = dict(colors.CSS4_COLORS)  # the survey's names win: CSS's "lavender" is nearly white
    named |= {name.removeprefix("xkcd:"): value for name, value in colors.XKCD_COLORS.items()}
    return {name: tuple(255 * v for v in colors.to_rgb(value)) for name, value in named.items()}


def nearest_color(rgb, palette: dict, by_hue: bool = True, hued: bool = False) -> tuple[str, float]:
    """The palette's colour nearest to rgb, and their OKLab distance (x100, unweighted).
    by_hue: a chromatic colour is read among the chromatic ones by hue first, differences in lightness and chroma
    counting LIGHTNESS_CHROMA_WEIGHT of one in hue (the world's colours are saturated: maroon is a dark red, not
    brown; lavender a pale purple, not pink), any other among white, gray and black.
    hued: the colour is chromatic whatever its chroma (its name says a hue)."""
    lab = _lab(rgb)
    names = list(palette)
    labs = _lab(np.array(list(palette.values())))
    chroma = np.hypot(labs[:, 1], labs[:, 2])
    chromatic = bool(hued or np.hypot(lab[1], lab[2]) >= CHROMATIC) and by_hue
    keep = (chroma >= CHROMATIC) == chromatic if by_hue else np.ones(len(names), bool)
    distance = np.linalg.norm(labs - lab, axis=1)
    if chromatic:
        d_lightness, d_chroma = labs[:, 0] - lab[0], chroma - np.hypot(lab[1], lab[2])
        d_hue_squared = np.maximum(distance ** 2 - d_lightness ** 2 - d_chroma ** 2, 0)
        distance = np.sqrt(LIGHTNESS_CHROMA_WEIGHT ** 2 * (d_lightness ** 2 + d_chroma ** 2) + d_hue_squared)
    distance[~keep] = np.inf
    best = int(distance.argmin())
    return names[best], float(np.linalg.norm(labs[best] - lab))


def color_reading(words: str, palette: dict = COLORS, kind: str = "color") -> Reading | None:
    """A colour name read as the palette's colour. A name that ends in a world colour ("light blue", "navy blue")
    names that hue, shaded: an object's colour is the world's word; a background is read among the hued ones when
    the world's word has a hue ("pale blue": the survey's near-white (208, 254, 254), but its name says blue)."""
    if words in palette:
        return Reading(words, kind, words, 1.0, "world")
    *shade, hue = words.split()
    if shade and hue in COLORS and palette is COLORS:
        return Reading(words, kind, hue, 1.0, "world")
    rgb = _survey().get(words) or _survey().get(words.replace(" ", ""))
    if rgb is None:
        return None
    hued = bool(shade) and hue in COLORS and _chroma(COLORS[hue]) >= CHROMATIC
    name, distance = nearest_color(rgb, palette, hued=hued)
    if distance > COLOR_DISTANCE:
        return None
    return Reading(words, kind, name, round(1 - distance / (2 * COLOR_DISTANCE), 2), "colour survey")


# ---------- the text encoder's readings ----------

def singular(word: str) -> str:
    if word.endswith(("xes", "ses", "shes", "ches")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


class Grounder:
    """Reads prompts with a MiniLM text encoder (glassdiff.text.TextEncoder)."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.shape_context = encoder.word_vectors([f"a {shape} shape" for shape in SHAPES])
        self.any_shape = encoder.word_vectors(["a shape"])[0]
        self.directions = encoder.word_vectors(list(DIRECTIONS))
        self.joining = encoder.word_vectors(list(JOINING))
        self.sizes = encoder.word_vectors(list(SIZES))
        self.counts = encoder.word_vectors(list(NUMBERS.values()))
        self.carriers = encoder.word_vectors(list(CARRIERS))
        self.known = list(WORLD_VOCABULARY)
        self.known_vectors = encoder.word_vectors(self.known)

    def word(self, word: str) -> Reading | None:
        """A word inside an object ("three small crimson discs"): a count, size, colour or shape, or None."""
        return max(self.readings(word), key=lambda r: r.score, default=None)

    def attribute(self, word: str) -> Reading | None:
        """The word as a count, size or colour ("pair": a shape to the text encoder too, but a count first)."""
        return max((r for r in self.readings(word) if r.kind != "shape"), key=lambda r: r.score, default=None)

    @functools.lru_cache(maxsize=4096)
    def readings(self, word: str) -> tuple[Reading, ...]:
        if word.isdigit():
            return (Reading(word, "count", int(word), 1.0, "numeral"),)
        for number, name in NUMBERS.items():
            if word == name:
                return (Reading(word, "count", number, 1.0, "world"),)
        if word in SIZES:
            return (Reading(word, "size", word, 1.0, "world"),)
        for shape in SHAPES:
            if word in (shape, plural(shape)):
                return (Reading(word, "shape", shape, 1.0, "world"),)
        compound = re.fullmatch(rf"(\w+)[- ]{SIZE_NOUN}d?", word)
        if compound:
            return self._size_compound(word, compound.group(1))
        colour = color_reading(word)
        if colour:
            return (colour,)
        if word in KNOWN_WORDS:  # "sky", "left": no dictionary needed
            return self._encoded(word)
        shape = dictionary_shape(word)
        if shape:
            return (shape,)
        count = lexicon.wordnet_count(word, NUMBERS)
        return (Reading(word, "count", count, 1.0, "WordNet"),) if count else self._encoded(word)

    def _encoded(self, word: str) -> tuple[Reading, ...]:
        """A shape when "a W shape" is near a shape of the world's and not much further than from "a shape" itself
        (a word that adds nothing, "a far shape", is near every shape); a size or count by the bare word."""
        base = singular(word)
        context = self.encoder.word_vectors([f"a {base} shape"])[0]
        similarity = context @ self.shape_context.T
        bare = self.encoder.word_vectors([word])[0]
        candidates = []
        shape = int(similarity.argmax())
        if similarity[shape] >= SHAPE_SIMILARITY and similarity[shape] - context @ self.any_shape >= SHAPE_MARGIN:
            candidates.append(Reading(word, "shape", SHAPES[shape], round(float(similarity[shape]), 2),
                                      "text encoder"))
        for kind, table, names, threshold in (("size", self.sizes, list(SIZES), SIZE_SIMILARITY),
                                              ("count", self.counts, list(NUMBERS), COUNT_SIMILARITY)):
            similarity = bare @ table.T
            second, best = similarity.topk(2).indices.tolist()[::-1]
            if similarity[best] >= threshold and similarity[best] - similarity[second] >= SCALE_MARGIN:
                candidates.append(Reading(word, kind, names[best], round(float(similarity[best]), 2), "text encoder"))
        return tuple(candidates)

    def _size_compound(self, word: str, modifier: str) -> tuple[Reading, ...]:
        """"W-sized": the head says W names a size, so W is read as the nearest size by a margin, with no floor
        ("mid-sized", "moderately sized": medium)."""
        if modifier in SIZES:
            return (Reading(word, "size", modifier, 1.0, "world"),)
        similarity = self.encoder.word_vectors([modifier])[0] @ self.sizes.T
        second, best = similarity.topk(2).indices.tolist()[::-1]
        if similarity[best] - similarity[second] < SCALE_MARGIN:
            return ()
        return (Reading(word, "size", list(SIZES)[best], round(float(similarity[best]), 2), "text encoder"),)

    def direction(self, word: str) -> str | None:
        """left, right, top, bottom or center for a direction word ("upper", or "downward" by the text encoder,
        when it is clearly nearer one direction than its opposite), else None."""
        reading = self.direction_reading(word)
        return reading and reading.value

    @functools.lru_cache(maxsize=1024)
    def direction_reading(self, word: str) -> Reading | None:
        """A direction word of the world's; else one WordNet relates to directions; else the text encoder's
        reading (which places "higher" nearer "lower" than "above": WordNet goes first)."""
        if word in KNOWN_WORDS:
            return _world_direction(word) or self._encoded_direction(word)
        return self._dictionary_direction(word) or self._encoded_direction(word)

    def _dictionary_direction(self, word: str) -> Reading | None:
        """By WordNet: the one direction that the word's synonyms read as, and its antonyms read opposite to
        ("higher": antonym "low", which reads bottom, so top; "up": antonym "down", synonym "downward")."""
        synonyms, antonyms = lexicon.relatives(word)
        read = [r for r in map(self._plain_direction, synonyms) if r]
        read += [dataclasses.replace(r, value=OPPOSITE[r.value]) for r in map(self._plain_direction, antonyms)
                 if r and r.value in OPPOSITE]
        if len({r.value for r in read}) != 1:
            return None
        return Reading(word, "direction", read[0].value, min(r.score for r in read), "WordNet")

    def _plain_direction(self, word: str) -> Reading | None:
        return _world_direction(word) or self._encoded_direction(word)

    def _encoded_direction(self, word: str) -> Reading | None:
        similarity = self.encoder.word_vectors([word])[0] @ self.directions.T
        best = {}
        for name, value in zip(DIRECTIONS, similarity.tolist()):
            best[DIRECTIONS[name]] = max(best.get(DIRECTIONS[name], -1.0), value)
        found = max(best, key=best.get)
        opposite = OPPOSITE.get(found)
        if best[found] < DIRECTION_SIMILARITY or (opposite and best[found] - best[opposite] < DIRECTION_MARGIN):
            return None
        return Reading(word, "direction", found, round(best[found], 2), "text encoder")

    def nearest(self, words: str) -> tuple[str, float]:
        similarity = self.encoder.word_vectors([words])[0] @ self.known_vectors.T
        best = int(similarity.argmax())
        return self.known[best], round(float(similarity[best]), 2)

    def carrier(self, words: str) -> float:
        return float((self.encoder.word_vectors([words])[0] @ self.carriers.T).max())

    def read(self, prompt: str) -> Grounding:
        """The prompt's readings, and the spec of what was read when it names one or two objects the world draws."""
        tokens = _merge_names(words_of(prompt))
        heads = [i for i in range(len(tokens)) if self._is_head(tokens, i)]
        objects, readings, taken = [], [], set()
        for n, head in enumerate(heads):
            entry, used, chunk = self._object(tokens, head, heads[n - 1] if n else -1)
            objects.append(entry)
            readings += chunk
            taken |= used
        spec = {"objects": objects, "relation": None, "background": None}
        for role, span in _segments(tokens, taken, heads):
            words = [tokens[i] for i in span]
            for reading in self._segment(" ".join(words), words, role, len(objects)):
                readings.append(reading)
                _apply(reading, role, spec)
        return Grounding(prompt, tuple(readings), spec if _complete(spec) else None)

    def _is_head(self, tokens: list[str], i: int) -> bool:
        """Whether tokens[i] names an object: a shape word of the world's, or a word the text encoder reads as
        one where a noun stands (after an article, a number, "of", or a count, size or colour word)."""
        token = tokens[i]
        if token in FUNCTION_WORDS or token in DIRECTIONS or token in POSITION_FILLERS or token in BACKGROUND_WORDS:
            return False
        reading = self.word(token)
        if reading is None or reading.kind != "shape":
            return False
        confident = reading.source in DICTIONARIES
        if confident or i == 0:  # a word the text encoder reads as a shape needs one before it
            return confident
        after = tokens[i + 1] if i + 1 < len(tokens) else ","
        if after == "of":  # "a sketch of", "a stack of": what holds, not a shape
            return False
        before = tokens[i - 1]
        previous = self.word(before) if before not in FUNCTION_WORDS else None
        return before in ARTICLES or before in ("the", "of") or (previous is not None and previous.kind != "shape")

    def _object(self, tokens, head, before):
        """The object whose shape word is tokens[head], with the count, size and colour words before it."""
        shape = self.word(tokens[head])
        entry, chunk, used = {"class": shape.value}, [shape], {head}
        plural_form = _plural(tokens[head], shape.value)
        j = head - 1
        while j > before:
            token = tokens[j]
            reading = self.attribute(token) if token not in FUNCTION_WORDS else None
            if token in ARTICLES:
                if "count" not in entry:
                    entry["count"] = None if plural_form else 1
            elif reading and reading.kind == "color" and "color" in entry and tokens[j + 1] not in FUNCTION_WORDS:
                chunk.append(dataclasses.replace(reading, kind="modifier"))  # "snow" in "snow white"
            elif reading and reading.kind in ("count", "size", "color") and reading.kind not in entry:
                entry[reading.kind] = reading.value
                chunk.append(reading)
            elif token == "of" and j > before + 1 and (self.attribute(tokens[j - 1]) or _NONE).kind == "count":
                pass
            elif token != "the":
                break
            used.add(j)
            j -= 1
        if entry.get("count") is None:
            entry["count"] = None if plural_form else 1
        if entry["count"] is None:
            chunk.append(Reading(tokens[head], "unknown", "a number: one to four", 0.0, "world"))
        return entry, used, chunk[::-1]

    def _segment(self, text: str, words: list[str], role: str, objects: int) -> list[Reading]:
        """What the words between or around the objects say: a relation, cell, background, joining words, a
        carrier phrase, or unknown words. A relation, cell or background may hold words read as nothing
        ("further" in "further left than"): they are reported as unknown, and the rest is read."""
        content = [w for w in words if w not in FUNCTION_WORDS]
        if not content:
            return [Reading(text, "joining", "and", 1.0, "world")]
        read = [self.direction_reading(w) for w in content if self.direction(w)]
        directions = [r.value for r in read]
        score = min(r.score for r in read) if read else 0.0
        source = next((r.source for r in read if r.source != "world"), "world")
        unread = [w for w in content if not self.direction(w) and w not in POSITION_FILLERS
                  and w not in BACKGROUND_WORDS and self.word(w) is None]
        others = [w for w in content if not self.direction(w) and w not in POSITION_FILLERS and w not in unread]
        # "a raccoon left of a star": before a lone object, an unread word may be the object the phrase is about
        if directions and not others and not (role == "before" and objects < 2 and unread):
            # "a star with a heart to its left": after both objects, a phrase that refers back relates them
            refers_back = role == "after" and objects == 2 and set(words) & BACK_REFERENCES
            if role == "between" or (role == "before" and objects == 2) or refers_back:
                value = RELATION_OF.get(directions[0]) if len(set(directions)) == 1 else None
                if value:
                    return [Reading(text, "relation", value, score, source), *map(self._loose, unread)]
            elif _cell(directions):
                return [Reading(text, "cell", _cell(directions), score, source), *map(self._loose, unread)]
        colours = [color_reading(w, BACKGROUNDS, "background") for w in content if w not in BACKGROUND_WORDS
                   and w not in unread]
        if role == "after" and colours and all(colours):  # "snow white": the last word names the colour
            return [dataclasses.replace(colours[-1], words=text), *map(self._loose, unread)]
        if role == "between":
            joining = float((self.encoder.word_vectors([text])[0] @ self.joining.T).max())
            if joining >= JOINING_SIMILARITY:
                return [Reading(text, "joining", "and", round(joining, 2), "text encoder")]
        similarity = self.carrier(text)
        if similarity >= CARRIER_SIMILARITY and not any(map(self.word, content)):  # "in a blue jacket": no carrier
            return [Reading(text, "carrier", None, round(similarity, 2), "text encoder")]
        return [self._loose(word) for word in content]

    def _loose(self, word: str) -> Reading:
        """A word outside every object and phrase: a carrier word ("illustration"), a word the world knows that
        belongs to no object here ("loose": "blue" in "a blue jacket"), or unknown, with the nearest word the world
        knows."""
        known = self.word(word)
        if known and known.source != "text encoder":
            return dataclasses.replace(known, kind="loose")
        if word in BACKGROUND_WORDS or word in POSITION_FILLERS:  # the world's own word, here naming nothing
            return Reading(word, "loose", None, 1.0, "world")
        if self.direction(word):
            return Reading(word, "loose", self.direction(word), 1.0, "world")
        similarity = self.carrier(word)
        if similarity >= CARRIER_SIMILARITY:
            return Reading(word, "carrier", None, round(similarity, 2), "text encoder")
        nearest, score = self.nearest(word)
        return Reading(word, "unknown", nearest, score, "text encoder")


_NONE = Reading("", "none", None, 0.0, "")


def _world_direction(word: str) -> Reading | None:
    return Reading(word, "direction", DIRECTIONS[word], 1.0, "world") if word in DIRECTIONS else None


def _merge_names(tokens: list[str]) -> list[str]:
    """Two words that name one thing together as one word: a colour in the colour survey ("navy blue", "light
    gray"), a size ("W size", "W sized"), a shape in a dictionary ("plus sign", "plus signs"); never with a word
    of the world's ("black star"), a direction ("ring above") or a function word."""
    out = []
    for token in tokens:
        pair = f"{out[-1]} {token}" if out else ""
        if out and (pair in _survey() and out[-1] not in COLORS
                    or token.rstrip("d") == SIZE_NOUN and out[-1] not in FUNCTION_WORDS
                    or not {out[-1], singular(token)} & KNOWN_WORDS and dictionary_shape(pair)):
            out[-1] = pair
        else:
            out.append(token)
    return out


def dictionary_shape(words: str) -> Reading | None:
    """A shape word the dictionaries know (glassdiff.lexicon): a noun WordNet files under a world shape, or the
    name of a Unicode glyph drawn like one; plurals by their singular."""
    found = next(filter(None, map(_dictionary_shape, _forms(words))), None)
    return dataclasses.replace(found, words=words) if found else None


def _forms(words: str) -> tuple[str, ...]:
    """The words as written, then with the last one singular ("plus signs": "plus sign")."""
    *before, last = words.split()
    return tuple(dict.fromkeys([words, " ".join([*before, singular(last)])]))


@functools.cache
def _dictionary_shape(form: str) -> Reading | None:
    shape = lexicon.wordnet_shape(form, SHAPES)
    if shape:
        return Reading(form, "shape", shape, 1.0, "WordNet")
    drawn = lexicon.glyph_shape(form, tuple(SHAPES))
    return Reading(form, "shape", drawn[0], drawn[1], "Unicode glyph") if drawn else None


def glyph_of(words: str) -> str | None:
    """The Unicode character a shape word was read through ("plus signs": "+"), or None."""
    match = next(filter(None, (lexicon.glyph_match(form, tuple(SHAPES)) for form in _forms(words))), None)
    return match and match[0]


def _plural(word: str, shape: str) -> bool:
    """Whether a word for a shape is a plural: "orbs", "lozenges", but not "rhombus" (a dictionary knows it as
    written)."""
    if word == shape or singular(word) == word:
        return False
    return word == plural(shape) or _dictionary_shape(word) is None


def _segments(tokens, taken, heads) -> list[tuple[str, list[int]]]:
    """The words outside objects in runs, each with its role: "before" the first object, "between" two, "after"
    the last; a run between two objects that ends at a joining word is the first object's cell."""
    free = [i for i in range(len(tokens)) if i not in taken]
    runs, current = [], []
    for i in free:
        # "to" and "with" start a phrase, unless they end one ("next to", "together with")
        ends_phrase = tokens[i] in ("to", "with") and current and tokens[current[-1]] not in KNOWN_WORDS
        if current and (i != current[-1] + 1 or tokens[i] in (",", "and", "on", "in", "at", "against", "with", "to")
                        and not ends_phrase):
            runs.append(current)
            current = []
        current.append(i)
    if current:
        runs.append(current)
    first = min(taken) if taken else len(tokens)
    last = max(taken) if taken else -1
    out = []
    for k, run in enumerate(runs):
        if not heads or run[-1] < first:
            role = "before"
        elif run[0] > last:
            role = "after"
        else:
            following = next((r for r in runs[k + 1:] if r[0] < last), None)
            joins = following is not None and all(tokens[i] in FUNCTION_WORDS for i in following)
            role = "cell" if joins else "between"
        out.append((role, run))
    return out


def _cell(directions: list[str]) -> str | None:
    vertical = [d for d in directions if d in ("top", "bottom")]
    horizontal = [d for d in directions if d in ("left", "right")]
    if len(set(vertical)) > 1 or len(set(horizontal)) > 1:
        return None
    name = " ".join(vertical[:1] + horizontal[:1])
    return name or "center"


def _apply(reading: Reading, role: str, spec: dict):
    """Put a phrase's reading into the spec. A relation before both objects ("to the right of a square, a heart")
    relates the second to the first, as does one that refers back ("to its right", "above them"); the spec lists A,
    B for "A relation B"."""
    objects = spec["objects"]
    if reading.kind == "background":
        spec["background"] = reading.value
    elif reading.kind == "relation":
        spec["relation"] = reading.value
        if role == "before" or set(reading.words.split()) & BACK_REFERENCES:  # "a circle, and to its right a square"
            objects.reverse()
    elif reading.kind == "cell" and objects:
        objects[-1 if role == "after" else 0]["cell"] = reading.value


def _complete(spec: dict) -> bool:
    objects = spec["objects"]
    if not 1 <= len(objects) <= 2:
        return False
    if any(not 1 <= (entry.get("count") or 0) <= 4 for entry in objects):
        return False
    if len(objects) == 2 and any(entry["count"] > 2 for entry in objects):
        return False
    return spec["relation"] is None or len(objects) == 2
