"""The shapes world, the detector and GenEval's rules, tag by tag, on hand-built scenes."""

import json
import random

import numpy as np
import pytest
from PIL import Image

from glassdiff.config import BadInput
from glassdiff.evaluate.detect import detect
from glassdiff.evaluate.prompts import build, load_prompts
from glassdiff.evaluate.score import judge
from glassdiff.world import HELDOUT_COLOR_SHAPE, Obj, Scene, is_heldout, render, sample_spec, scene_from_spec
from glassdiff.world.vocab import COLORS, relation_holds


def obj(shape, color, span, cx, cy):
    return Obj(shape, color, span, cx, cy, COLORS[color])


def verdict(spec, *objects, background="white"):
    return judge(spec, detect(render(Scene(background, objects))))


def one(cls, **extra):
    return {"class": cls, "count": 1, **extra}


def test_captions_are_true_of_their_scenes():
    rng = random.Random(1)
    for _ in range(300):
        spec = sample_spec(rng)
        scene = scene_from_spec(spec, rng, banned_pairs=HELDOUT_COLOR_SHAPE)
        assert judge(spec, detect(render(scene))).passed, spec["prompt"]


def test_training_specs_never_show_heldout_compositions():
    rng = random.Random(2)
    for _ in range(2000):
        spec = sample_spec(rng)
        scene = scene_from_spec(spec, rng, banned_pairs=HELDOUT_COLOR_SHAPE)
        assert not is_heldout(spec)
        assert not any((o.color, o.shape) in HELDOUT_COLOR_SHAPE for o in scene.objects)


@pytest.mark.parametrize("p_color", [0.0, 0.5, 1.0])
def test_caption_colour_share_is_honoured_and_uncoloured_objects_take_any_colour(p_color):
    rng = random.Random(3)
    named, colors_drawn = [], set()
    for _ in range(300):
        spec = sample_spec(rng, p_color=p_color)
        scene = scene_from_spec(spec, rng, banned_pairs=HELDOUT_COLOR_SHAPE)
        assert judge(spec, detect(render(scene))).passed, spec["prompt"]
        named += ["color" in entry for entry in spec["include"]]
        colors_drawn |= {o.color for o in scene.objects}
    # a little under p_color: specs naming a held-out colour-shape pair are drawn again
    assert abs(sum(named) / len(named) - p_color) < 0.1
    assert colors_drawn == set(COLORS)  # with no colour named, every colour still appears

@pytest.mark.parametrize("p_cell", [0.0, 0.35, 1.0])
def test_caption_cell_share_is_honoured_and_the_scene_puts_the_object_there(p_cell):
    rng = random.Random(4)
    singles = [spec for spec in (sample_spec(rng, p_cell=p_cell) for _ in range(600))
               if spec["tag"] == "single_object"]
    in_cell = [spec for spec in singles if "cell" in spec["include"][0]]
    for spec in in_cell[:50]:
        assert judge(spec, detect(render(scene_from_spec(spec, rng)))).passed, spec["prompt"]
    assert abs(len(in_cell) / len(singles) - p_cell) < 0.08


def test_caption_task_mix_is_honoured_and_a_bad_one_is_refused():
    from collections import Counter

    from glassdiff.world.captions import TRAIN_TAGS, task_mix

    assert task_mix("") == TRAIN_TAGS
    mix = task_mix("counting=6, position=0")
    assert mix == {**TRAIN_TAGS, "counting": 6.0, "position": 0.0}
    rng = random.Random(5)
    tags = Counter(sample_spec(rng, tags=mix)["tag"] for _ in range(1100))
    assert tags["position"] == 0 and abs(tags["counting"] / 1100 - 6 / 11) < 0.06
    for bad in ("count=3", "counting=-1", "counting=many", "counting=nan",
                "single_object=0,counting=0,two_object=0,position=0"):
        with pytest.raises(BadInput, match="--caption-tasks"):
            task_mix(bad)


def test_single_object_rule():
    spec = {"tag": "single_object", "include": [one("star")]}
    assert verdict(spec, obj("star", "red", 0.3, 0.5, 0.5)).passed
    failed = verdict(spec, obj("heart", "red", 0.3, 0.5, 0.5))
    assert not failed.passed and "expected star>=1, found 0" in failed.reason
    assert failed.kind == "shape missing"
    blank = judge(spec, detect(Image.new("RGB", (64, 64), (250, 250, 250))))
    assert blank.kind == "nothing drawn"


def test_two_object_rule():
    spec = {"tag": "two_object", "include": [one("circle"), one("heart")]}
    assert verdict(spec, obj("circle", "blue", 0.25, 0.25, 0.5), obj("heart", "red", 0.25, 0.75, 0.5)).passed
    assert not verdict(spec, obj("circle", "blue", 0.25, 0.25, 0.5), obj("circle", "red", 0.25, 0.75, 0.5)).passed


def test_counting_rule_needs_exactly_n():
    spec = {"tag": "counting", "include": [{"class": "square", "count": 3}],
            "exclude": [{"class": "square", "count": 4}]}
    three = [obj("square", "green", 0.18, x, y) for x, y in ((0.2, 0.2), (0.8, 0.2), (0.2, 0.8))]
    assert verdict(spec, *three).passed
    two = verdict(spec, *three[:2])
    assert "found 2" in two.reason and two.kind == "too few"
    four = verdict(spec, *three, obj("square", "green", 0.18, 0.8, 0.8))
    assert not four.passed and "expected square<4, found 4" in four.reason and four.kind == "too many"


def test_colors_rule():
    spec = {"tag": "colors", "include": [one("triangle", color="green")]}
    assert verdict(spec, obj("triangle", "green", 0.3, 0.5, 0.5)).passed
    wrong = verdict(spec, obj("triangle", "purple", 0.3, 0.5, 0.5))
    assert not wrong.passed and "expected green triangle>=1, found purple triangle" in wrong.reason
    assert wrong.kind == "color"


@pytest.mark.parametrize("relation, a_at, passes", [
    ("right of", (0.8, 0.5), True), ("right of", (0.2, 0.5), False), ("left of", (0.2, 0.5), True),
    ("above", (0.5, 0.2), True), ("below", (0.5, 0.2), False), ("below", (0.5, 0.85), True),
])
def test_position_rule(relation, a_at, passes):
    spec = {"tag": "position", "include": [one("cross"), one("diamond", position=[relation, 0])]}
    anchor = (0.5, 0.5) if relation in ("above", "below") else (0.5, 0.5)
    result = verdict(spec, obj("cross", "black", 0.2, *anchor), obj("diamond", "blue", 0.2, *a_at))
    assert result.passed == passes
    assert result.kind == ("" if passes else "relation")
    assert relation_holds(relation, a_at, anchor) == passes


def test_position_rule_within_margin_fails():
    spec = {"tag": "position", "include": [one("cross"), one("diamond", position=["right of", 0])]}
    close = verdict(spec, obj("cross", "black", 0.14, 0.40, 0.2), obj("diamond", "blue", 0.14, 0.50, 0.8))
    assert not close.passed  # 0.10 apart: less than the 0.15 a relation needs


def test_color_attr_rule():
    spec = {"tag": "color_attr", "include": [one("hexagon", color="blue"), one("star", color="yellow")]}
    assert verdict(spec, obj("hexagon", "blue", 0.3, 0.3, 0.3), obj("star", "yellow", 0.3, 0.7, 0.7)).passed
    swapped = verdict(spec, obj("hexagon", "yellow", 0.3, 0.3, 0.3), obj("star", "blue", 0.3, 0.7, 0.7))
    assert not swapped.passed


def test_extra_keys_size_cell_background():
    spec = {"tag": "single_object", "include": [one("heart", size="large", cell="top left")], "background": "sky"}
    assert verdict(spec, obj("heart", "red", 0.42, 0.24, 0.24), background="sky").passed
    small = verdict(spec, obj("heart", "red", 0.16, 0.2, 0.2), background="sky")
    assert "expected large heart" in small.reason and small.kind == "size"
    elsewhere = verdict(spec, obj("heart", "red", 0.42, 0.7, 0.7), background="sky")
    assert "expected top left heart" in elsewhere.reason and elsewhere.kind == "cell"
    on_sand = verdict(spec, obj("heart", "red", 0.42, 0.24, 0.24), background="sand")
    assert "expected sky background" in on_sand.reason and on_sand.kind == "background"


def test_noise_images_fail():
    rng = np.random.default_rng(0)
    specs = load_prompts("seen")[:60]
    passed = sum(judge(s, detect(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))).passed
                 for s in specs)
    assert passed <= 2


def test_ground_truth_renders_of_benchmark_prompts_pass():
    rng = random.Random(0)
    specs = load_prompts("seen") + load_prompts("heldout")
    passed = sum(judge(s, detect(render(scene_from_spec(s, rng)))).passed for s in specs)
    assert passed / len(specs) >= 0.99


def test_shipped_prompt_files_are_the_builder_output():
    seen, heldout = build()
    assert load_prompts("seen") == seen and load_prompts("heldout") == heldout
    assert len(seen) + len(heldout) == 553
    assert all(not is_heldout(s) for s in seen) and all(is_heldout(s) for s in heldout)


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 1: malformed JSON"),
    ('{"tag": "single_object", "include": [{"class": "blob", "count": 1}]}', "unknown class 'blob'"),
    ('{"tag": "colors", "include": [{"class": "star", "count": 1, "color": "teal"}]}', "unknown color 'teal'"),
    ('{"tag": "nope", "include": [{"class": "star", "count": 1}]}', "unknown tag 'nope'"),
    ('{"tag": "position", "include": [{"class": "star"}, {"class": "heart", "position": ["near", 0]}]}',
     "position must be"),
])
def test_prompt_file_faults_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(BadInput, match=message) as err:
        load_prompts(str(path))
    assert str(path) in str(err.value)


def test_eval_judges_a_folder_written_by_another_program(tmp_path, capsys):
    """GenEval's layout, written here with plain PIL (no glassdiff generation)."""
    from glassdiff.cli import main

    rng = random.Random(4)
    specs = load_prompts("seen")[:12]
    for index, spec in enumerate(specs):
        folder = tmp_path / "imgs" / f"{index:05d}"
        (folder / "samples").mkdir(parents=True)
        (folder / "metadata.jsonl").write_text(json.dumps(spec) + "\n")
        render(scene_from_spec(spec, rng)).save(folder / "samples" / "00000.png")
        Image.new("RGB", (64, 64), (250, 250, 250)).save(folder / "samples" / "00001.png")  # an empty canvas
    out = tmp_path / "scores.json"
    code = main(["eval", "--images", str(tmp_path / "imgs"), "--json", str(out), "--validate", "50",
                 "--sheet", str(tmp_path / "sheet.png")])
    assert code == 0
    scores = json.loads(out.read_text())["sets"]["imgs"]
    assert scores["images"] == 24
    assert scores["overall"] == pytest.approx(0.5)
    # every failure is an empty canvas, and is counted as one
    assert {kind for task in scores["failures"].values() for kind in task} == {"nothing drawn"}
    assert sum(task["nothing drawn"] for task in scores["failures"].values()) == 12
    assert "nothing drawn" in capsys.readouterr().out
    assert Image.open(tmp_path / "sheet.png").width > 0


def test_eval_missing_image_names_it(tmp_path, capsys):
    from glassdiff.cli import main

    folder = tmp_path / "imgs" / "00000"
    (folder / "samples").mkdir(parents=True)
    (folder / "metadata.jsonl").write_text(json.dumps(load_prompts("seen")[0]) + "\n")
    assert main(["eval", "--images", str(tmp_path / "imgs"), "--validate", "0"]) == 2
    assert "no images for prompt 00000" in capsys.readouterr().err


def test_detector_sees_softened_renders_as_a_person_does():
    """Generated edges are soft: a blurred render keeps its shapes and sizes (soft edges must not grow objects)."""
    from glassdiff.evaluate.validate import validate

    report = validate(150, seed=4242, blur=0.7)
    assert report["accuracy"]["shape"] >= 0.95, report["accuracy"]
    assert report["accuracy"]["size"] >= 0.95, report["accuracy"]
    assert report["accuracy"]["color"] >= 0.98, report["accuracy"]


def test_groundtruth_through_the_autoencoder(tmp_path, tiny_model_dir):
    from glassdiff.evaluate.groundtruth import main as groundtruth

    groundtruth([str(tmp_path), "--model", tiny_model_dir, "--sheet", str(tmp_path / "losses.png")])
    for name in ("seen", "heldout"):
        truth = sorted((tmp_path / f"truth-{name}").glob("*/samples/*.png"))
        through = sorted((tmp_path / f"autoencoded-{name}").glob("*/samples/*.png"))
        assert len(through) == len(truth) == len(load_prompts(name))
    a, b = (np.asarray(Image.open(p)) for p in (truth[0], through[0]))
    assert a.shape == b.shape and not np.array_equal(a, b)  # a random tiny autoencoder changes the picture
    sheet = Image.open(tmp_path / "losses.png")  # it breaks renders the judge passes: they are drawn in pairs
    assert sheet.width == 8 * (150 + 6) and sheet.height >= 4 * (128 + 40 + 6)


def test_groundtruth_sheet_bad_input_exits_2(tmp_path):
    from glassdiff.evaluate.groundtruth import main as groundtruth

    with pytest.raises(SystemExit) as exit_info:
        groundtruth([str(tmp_path), "--sheet", str(tmp_path / "losses.png")])
    assert exit_info.value.code == 2 and not (tmp_path / "truth-seen").exists()
    with pytest.raises(SystemExit) as exit_info:
        groundtruth([str(tmp_path), "--model", "default", "--sheet", str(tmp_path / "no" / "losses.png")])
    assert exit_info.value.code == 2 and not (tmp_path / "truth-seen").exists()
