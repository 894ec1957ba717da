"""Grounding: other words for the world's requests get the canonical plan; words the world lacks are named."""

import json
import os
import re
import subprocess
import sys

import pytest

from glassdiff import grounding, lexicon
from glassdiff.evaluate import paraphrase
from glassdiff.evaluate.prompts import load_prompts
from glassdiff.layout import in_grammar, plan, read_as_of
from glassdiff.world.captions import CELL_PHRASES
from glassdiff.world.vocab import BACKGROUNDS, COLORS, NUMBERS, RELATIONS, SHAPES, SIZES

GLASSDIFF = os.path.join(os.path.dirname(sys.executable), "glassdiff")

# (what a person says, the world's wording): two objects, counts and lone objects, each of which layout plans
PARAPHRASES = [
    ("a crimson sphere to the left of a cobalt cube", "a red circle left of a blue square"),
    ("an emerald pyramid on top of a ruby ring", "a green triangle above a red circle"),
    ("a golden valentine underneath a violet tile", "a yellow heart below a purple square"),
    ("to the right of a jade disc, a scarlet star", "a red star right of a green circle"),
    ("sketch of a sphere and a cube", "a circle and a square"),
    ("a tiny sphere and a huge star", "a small circle and a large star"),
    ("a ring beside a hexagon", "a circle and a hexagon"),
    ("a pyramid, a cross", "a triangle and a cross"),
    ("3 spheres", "three circles"),
    ("4 pyramids", "four triangles"),
    ("2 valentines", "two hearts"),
    ("a trio of stars", "three stars"),
    ("a pair of tiles", "two squares"),
    ("a pair of ochre discs", "two orange circles"),
    ("3 tiny cerulean stars", "three small blue stars"),
    ("4 little rings", "four small circles"),
    ("a sphere", "a circle"),
    ("one pyramid", "a triangle"),
    ("an illustration of a valentine", "a heart"),
    ("a big tile", "a large square"),
    ("a huge ring", "a large circle"),
    ("a tiny cube", "a small square"),
    ("a dot to the left of a star", "a circle left of a star"),
    ("a cube further left than a heart", "a square left of a heart"),
    ("a pyramid underneath a sphere", "a triangle below a circle"),
    ("a crimson star on top of a mustard hexagon", "a red star above a yellow hexagon"),
    ("a lilac heart to the right of a slate cross", "a purple heart right of a gray cross"),  # lilac: a pale purple
    ("underneath a disc, a tile", "a square below a circle"),
    ("on top of a cube, a ring", "a circle above a square"),
    ("a sphere and a cube against a beige background", "a circle and a square on a sand background"),
    ("a ruby disc and a jade tile", "a red circle and a green square"),
    ("a tangerine star and a cobalt heart", "an orange star and a blue heart"),
    ("a charcoal cube and a white ring", "a black square and a white circle"),
    ("two violet spheres", "two purple circles"),
    ("three ochre pyramids", "three orange triangles"),
    ("four ruby valentines", "four red hearts"),
    ("2 crimson cubes on top of a golden disc", "two red squares above a yellow circle"),
    ("a pair of rings to the left of a star", "two circles left of a star"),
    ("a sphere to the left of 2 cubes", "a circle left of two squares"),
    ("a tile, digital painting", "a square"),
    ("a cube please", "a square"),
    ("a rendering of 3 discs", "three circles"),
    ("a huge valentine and a tiny pyramid", "a large heart and a small triangle"),
    ("a big sphere beside a little cube", "a large circle and a small square"),
    ("a scarlet ring and an emerald valentine against a slate background",
     "a red circle and a green heart on a gray background"),
    ("a trio of cerulean discs", "three blue circles"),
    ("2 mustard valentines", "two yellow hearts"),
    ("a pyramid to the right of a cube", "a triangle right of a square"),
    ("a disc on top of a valentine", "a circle above a heart"),
    ("a ring underneath a pyramid", "a circle below a triangle"),
]


@pytest.fixture(scope="module")
def grounder(text_encoder):
    return grounding.Grounder(text_encoder)


def test_fifty_paraphrases_get_the_plan_of_the_canonical_prompt(grounder):
    assert len(PARAPHRASES) >= 50
    wrong = []
    for said, canonical in PARAPHRASES:
        expected = plan(canonical)
        assert expected is not None, canonical  # each canonical prompt here is planned: the test compares plans
        got = plan(read_as_of(said, grounder.read(said)))
        if got != expected:
            wrong.append((said, read_as_of(said, grounder.read(said)), canonical))
    assert not wrong, wrong


def test_the_benchmarks_own_wording_is_read_as_written(grounder):
    """Seen and held-out prompts are drawn exactly as before grounding: their words go to the model unchanged."""
    for name in ("seen", "heldout"):
        for spec in load_prompts(name):
            assert in_grammar(spec["prompt"]), spec["prompt"]
            assert read_as_of(spec["prompt"], grounder.read(spec["prompt"])) == spec["prompt"]


def test_a_grounded_prompt_names_what_each_word_was_read_as(grounder):
    read = grounder.read("a cobalt orb beneath a tile")
    assert read.caption == "a blue circle below a square"
    kinds = {r.words: (r.kind, r.value, r.source) for r in read.readings}
    assert kinds["cobalt"] == ("color", "blue", "colour survey")
    assert kinds["orb"][:2] == ("shape", "circle") and kinds["tile"][:2] == ("shape", "square")
    assert kinds["beneath"][:2] == ("relation", "below")
    assert not read.unknown


@pytest.mark.parametrize("prompt, words", [("a raccoon in a blue jacket", {"raccoon", "jacket"}),
                                           ("a helicopter", {"helicopter"})])
def test_words_outside_the_world_are_named_with_the_nearest_word_it_knows(grounder, prompt, words):
    read = grounder.read(prompt)
    assert {r.words for r in read.unknown} == words
    assert read.spec is None  # no object was read: the prompt is drawn as written, not guessed
    known = {*SHAPES, *COLORS, *SIZES, *NUMBERS.values(), *BACKGROUNDS}
    assert all(r.value in known and -1 <= r.score < grounding.SHAPE_SIMILARITY for r in read.unknown)
    for word in words:
        assert re.search(rf"{word}: not in this model's world, nearest it knows: \w+ \(\d\.\d\d\)", read.notice())


def test_what_was_read_is_drawn_and_what_was_not_is_named(grounder):
    read = grounder.read("a raccoon left of a red star")
    assert read.caption == "a red star"  # not "on the left": the raccoon, unread, is what the star is right of
    assert [r.words for r in read.unknown] == ["raccoon"] and "drawn as 'a red star'" in read.notice()
    # "background" is the world's own word, though it names no background here
    assert [r.words for r in grounder.read("a star on a raccoon background").unknown] == ["raccoon"]


def test_unknown_words_are_a_notice_not_an_error(tmp_path):
    for prompt, words in (("a raccoon in a blue jacket", ("raccoon", "jacket")), ("a helicopter", ("helicopter",))):
        out = tmp_path / "x.png"
        run = subprocess.run([GLASSDIFF, "generate", prompt, "--steps", "2", "-o", str(out)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert out.exists()
        notes = [line for line in run.stderr.splitlines() if "not in this model's world" in line]
        assert len(notes) == 1 and all(word in notes[0] for word in words), run.stderr


# what the dictionaries read (glassdiff.lexicon), in words the paraphrase benchmark does not use
DICTIONARY_PARAPHRASES = [
    ("a rhomb", "a diamond"),  # WordNet: "rhombus, rhomb, diamond"
    ("three pentagrams", "three stars"),  # WordNet: a pentagram is a kind of star (a plural by its singular)
    ("a big rhomb beside a little pentagram", "a large diamond and a small star"),
    ("a bullet to the left of a ballot box", "a circle left of a square"),  # Unicode: BULLET, BALLOT BOX
    ("a pair of bullets", "two circles"),
    ("a star higher than a circle", "a star above a circle"),  # WordNet: "higher", antonym "low"
    ("a hexagon downstairs from a star", "a hexagon below a star"),
    ("a tile further up than a ring", "a square above a circle"),  # "up": antonym "down", synonym "downward"
    ("an average-sized heart", "a medium heart"),  # a size compound
    ("a middle-sized cross", "a medium cross"),
    ("a duo of hexagons", "two hexagons"),  # WordNet: a duo is a kind of two
    ("a quartet of hearts", "four hearts"),
    ("a light blue star and a dark green cross", "a blue star and a green cross"),  # a world colour, shaded
    ("a heart on an ice blue background", "a heart on a sky background"),  # a near-white whose name says blue
]


def test_dictionaries_read_rare_shape_words_and_directions(grounder):
    wrong = [(said, grounder.read(said).caption) for said, canonical in DICTIONARY_PARAPHRASES
             if plan(read_as_of(said, grounder.read(said))) != plan(canonical)]
    assert not wrong, wrong
    sources = {r.words: r.source for r in grounder.read("a rhomb beside a bullet").readings}
    assert sources["rhomb"] == "WordNet" and sources["bullet"] == "Unicode glyph"
    assert "rhomb: diamond 1.00 by WordNet" in grounder.read("a rhomb beside a bullet").summary()
    relation = {r.words: r for r in grounder.read("a star higher than a circle").readings}["higher than"]
    assert (relation.kind, relation.value, relation.source) == ("relation", "above", "WordNet")


@pytest.mark.parametrize("said, canonical", [
    ("a circle, and to its right a square", "a square right of a circle"),  # "its": the side of the circle
    ("two circles and above them a star", "a star above two circles"),
    ("a star with a heart to its left", "a heart left of a star"),
    ("a ring above a square", "a circle above a square"),  # not Unicode's accent "RING ABOVE"
])
def test_a_relation_that_refers_back_relates_the_later_object(grounder, said, canonical):
    assert grounder.read(said).caption == canonical


@pytest.mark.parametrize("said", ["a star close to a heart", "a star together with a heart"])
def test_a_two_word_joining_phrase_is_read_whole(grounder, said):
    read = grounder.read(said)
    assert read.caption == "a star and a heart" and not read.unknown


def test_the_dictionaries_name_no_shape_for_what_the_world_cannot_draw():
    shapes = tuple(SHAPES)
    assert lexicon.glyph_shape("plus sign", shapes) == ("cross", lexicon.glyph_shape("plus sign", shapes)[1])
    assert lexicon.glyph_names("umbrella") and lexicon.glyph_shape("umbrella", shapes) is None  # drawn, like none
    assert lexicon.glyph_shape("trade mark sign", shapes) is None  # letters, not a figure
    assert lexicon.glyph_shape("hyphen-minus", shapes) is None  # a bar
    assert lexicon.wordnet_shape("rhombus", shapes) == "diamond"
    assert lexicon.wordnet_shape("ellipse", shapes) is None  # a shape, none of the world's
    assert lexicon.wordnet_shape("eye", shapes) is None  # "heart" in another sense ("the centre"), not a shape
    synonyms, antonyms = lexicon.relatives("up")
    assert "upward" in synonyms and "down" in antonyms


def test_colour_names_are_read_by_the_colour_they_name():
    for word, colour in (("crimson", "red"), ("cobalt", "blue"), ("emerald", "green"), ("tangerine", "orange"),
                         ("violet", "purple"), ("chestnut", "brown"), ("grey", "gray"), ("snow", "white"),
                         ("maroon", "red"), ("burgundy", "red"), ("lavender", "purple"), ("plum", "purple"),
                         ("mint", "green")):  # by hue first: dark reds are not brown, pale purples not pink
        assert grounding.color_reading(word).value == colour, word
    assert grounding.color_reading("beige", BACKGROUNDS, "background").value == "sand"
    assert grounding.color_reading("raccoon") is None


def _words(texts) -> set[str]:
    return {w for text in texts for w in grounding.words_of(text)}


def test_the_paraphrase_benchmark_keeps_apart_from_the_grounders_word_lists_and_the_captions():
    """Its phrases are new to the training captions, and its words (beyond grammar) are in no list the grounder
    was built with: what it measures is what the text encoder and the colour survey carry."""
    tables = (paraphrase.COLOR_WORDS, paraphrase.SHAPE_WORDS, paraphrase.SIZE_WORDS, paraphrase.COUNT_WORDS,
              paraphrase.RELATION_WORDS, paraphrase.CELL_WORDS, paraphrase.BACKGROUND_WORDS)
    phrases = [p for table in tables for values in table.values() for p in values]
    phrases += paraphrase.CARRIERS_BEFORE + paraphrase.CARRIERS_AFTER + paraphrase.JOINS
    caption_phrases = {*SHAPES, *COLORS, *SIZES, *NUMBERS.values(), *RELATIONS, *CELL_PHRASES.values(), *BACKGROUNDS}
    assert not caption_phrases & {p.strip(" ,") for p in phrases}
    grammar = {"a", "an", "the", "of", "to", "on", "in", "at", "as", "than", "with", "and", "against", "very",
               "i", "you", "would", ","}
    world = {*SHAPES, *COLORS, *SIZES, *BACKGROUNDS, "background", "left", "right", "top", "bottom", "center"}
    grounder_lists = (_words(grounding.DIRECTIONS) | grounding.POSITION_FILLERS | _words(grounding.CARRIERS)
                      | _words(grounding.JOINING) | grounding.BACKGROUND_WORDS | set(grounding.ARTICLES)
                      | grounding.FUNCTION_WORDS) - grammar - world
    assert not _words(phrases) & grounder_lists, _words(phrases) & grounder_lists


def test_the_paraphrase_file_is_what_the_module_builds():
    with open(paraphrase.os.path.join(paraphrase.PROMPTS_DIR, "paraphrase.jsonl")) as f:
        shipped = [json.loads(line) for line in f]
    built = paraphrase.build()
    assert shipped == built and len(built) >= 300
    assert all(spec["prompt"] != spec["canonical"] for spec in built)
    assert {spec["tag"] for spec in built} == {"single_object", "two_object", "counting", "colors", "position",
                                               "color_attr"}


def test_the_explainer_shows_each_reading_its_source_and_the_glyph_compared(grounder):
    from glassdiff.explain.report import grounding_section

    read = grounder.read("a rhomb beside 2 plus signs")
    section = grounding_section(read, read.caption)
    rows = re.findall(r"<tr class='(\w+)'><td><code>([^<]*)</code>.*?</tr>", section)
    assert ("shape", "rhomb") in rows and ("shape", "plus signs") in rows
    assert "WordNet" in section and "Unicode glyph <span class='glyph'>+</span> (PLUS SIGN)" in section
