"""The embedded default model: it loads, draws what it is asked, and its attention points where it draws."""

import os
import random

import pytest
import torch

from glassdiff.evaluate.detect import detect
from glassdiff.evaluate.score import judge
from glassdiff.pipeline import WEIGHTS_DIR, Pipeline
from glassdiff.world.captions import CELL_PHRASES
from glassdiff.world.vocab import CELLS, SHAPES, cell_of

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(os.path.join(WEIGHTS_DIR, "model_index.json")),
                                 reason="no embedded model")]


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.default()


def test_default_model_loads_and_is_deterministic(pipe):
    first = pipe("two blue squares above a red circle", seed=0)
    again = pipe("two blue squares above a red circle", seed=0)
    assert first.image.size == (64, 64)
    assert first.image.tobytes() == again.image.tobytes()
    assert f"Model hash: {pipe.model_hash}" in first.infotexts[0]
    pixels = torch.tensor(list(first.image.getdata()), dtype=torch.float32)
    assert float(pixels.std(0).mean()) > 5  # not a blank canvas


def test_default_model_draws_simple_prompts(pipe):
    specs = [{"tag": "colors", "include": [{"class": shape, "count": 1, "color": color}]}
             for shape, color in (("circle", "red"), ("square", "blue"), ("triangle", "green"), ("heart", "pink"))]
    result = pipe([f"a {s['include'][0]['color']} {s['include'][0]['class']}" for s in specs], seed=0, batch=4)
    passed = sum(judge(spec, detect(image)).passed
                 for k, image in enumerate(result.images) for spec in [specs[k // 4]])
    assert result.images[0].size == (64, 64)
    assert passed >= 12, f"{passed} of 16 simple prompts drawn as asked"


def benchmark_specs(tag: str, n: int, keep=lambda spec: True) -> list[dict]:
    from glassdiff.evaluate.prompts import load_prompts

    return [s for s in load_prompts("seen") if s["tag"] == tag and keep(s)][:n]


def passing(pipe, specs: list[dict], layout: float, batch: int = 2) -> int:
    """How many of the specs' images (seeds 0..batch-1) the judge passes."""
    result = pipe([s["prompt"] for s in specs], seed=0, batch=batch, layout=layout)
    return sum(judge(specs[k // batch], detect(image)).passed for k, image in enumerate(result.images))


def test_layout_puts_two_objects_where_the_relation_says(pipe):
    """The benchmark's first position prompts: planned halves pass far more often than the model alone."""
    specs = benchmark_specs("position", 8)
    with_layout, alone = passing(pipe, specs, 0.33), passing(pipe, specs, 0.0)
    print(f"position prompts passing: {with_layout}/16 with layout, {alone}/16 without")
    assert with_layout >= 14 and with_layout >= alone + 8


def test_layout_draws_each_copy_of_a_counted_object(pipe):
    """The benchmark's first prompts counting three or four: a part of the canvas per copy counts right more
    often."""
    specs = benchmark_specs("counting", 12, lambda spec: spec["include"][0]["count"] >= 3)
    with_layout, alone = passing(pipe, specs, 0.33), passing(pipe, specs, 0.0)
    print(f"counting prompts passing: {with_layout}/24 with layout, {alone}/24 without")
    assert with_layout >= 21 and with_layout >= alone + 3


def test_layout_draws_a_lone_object_named_with_no_colour(pipe):
    """The benchmark's first single-object prompts naming no colour or cell ("a star"): drawn alone, the model
    leaves some canvases empty; asked for a medium object in the centre, it draws them."""
    specs = benchmark_specs("single_object", 24, lambda spec: not {"color", "cell"} & set(spec["include"][0]))
    with_layout, alone = passing(pipe, specs, 0.33), passing(pipe, specs, 0.0)
    print(f"lone objects named with no colour passing: {with_layout}/48 with layout, {alone}/48 without")
    assert with_layout >= 45 and with_layout >= alone + 4


def two_copies_related_to_one(n: int, seed: int = 0) -> list[dict]:
    """n position specs of two copies and one object ("two blue squares above a circle"), colours named half the
    time."""
    from glassdiff.world.captions import caption
    from glassdiff.world.vocab import COLORS, RELATIONS

    rng, specs = random.Random(seed), []
    for _ in range(n):
        a, b = rng.sample(SHAPES, 2)
        pair = [{"class": a, "count": 2}, {"class": b, "count": 1}]
        for entry in pair:
            if rng.random() < 0.5:
                entry["color"] = rng.choice(list(COLORS))
        rng.shuffle(pair)
        pair[1]["position"] = [rng.choice(RELATIONS), 0]
        spec = {"tag": "position", "include": pair}
        specs.append({**spec, "prompt": caption(spec)})
    return specs


def test_layout_gives_two_copies_a_quarter_each(pipe):
    specs = two_copies_related_to_one(24)
    with_layout, alone = passing(pipe, specs, 0.33, batch=1), passing(pipe, specs, 0.0, batch=1)
    print(f"two copies and one object, related: {with_layout}/24 with layout, {alone}/24 without")
    assert with_layout >= 16 and with_layout >= alone + 10


def word_pieces(tokens: list[str], word: str) -> slice:
    """The token positions that spell `word` ('hexagon' -> 'hex', '##agon')."""
    for i, token in enumerate(tokens):
        j, spelled = i + 1, token
        while j < len(tokens) and tokens[j].startswith("##"):
            spelled, j = spelled + tokens[j][2:], j + 1
        if spelled == word:
            return slice(i, j)
    raise ValueError(f"{word!r} not in {tokens}")


def attention_peak_cells(pipe, prompts, shapes):
    result = pipe(prompts, seed=0, attention=True)
    maps = result.attention.maps()  # (B, L, h, w)
    cells = []
    for b, (prompt, shape) in enumerate(zip(prompts, shapes)):
        word_map = maps[b, word_pieces(pipe.text_encoder([prompt]).tokens[0], shape)].sum(0)
        y, x = divmod(int(torch.argmax(word_map)), word_map.shape[1])
        cells.append(cell_of((x + 0.5) / word_map.shape[1], (y + 0.5) / word_map.shape[0]))
    return cells


def test_shape_word_attention_peaks_in_the_named_cell(pipe):
    rng = random.Random(0)
    cases = [(shape, cell) for cell in CELLS for shape in rng.sample(SHAPES, 6)]  # 54 prompts
    colors = ["red", "blue", "green", "yellow", "purple", "orange"]
    prompts = [f"a {rng.choice(colors)} {shape} {CELL_PHRASES[cell]}" for shape, cell in cases]
    found = attention_peak_cells(pipe, prompts, [s for s, _ in cases])
    hits = sum(f == cell for f, (_, cell) in zip(found, cases))
    print(f"attention peak in the named cell: {hits}/{len(cases)}")
    assert hits / len(cases) >= 0.8


def test_default_autoencoder_keeps_what_the_judge_looks_for(pipe):
    """The decoder's ceiling: ground-truth renders of the seen prompts, encoded and decoded, still mostly pass.

    It is what the autoencoder costs the benchmark on the world's own scenes, placed at random; a planned layout,
    objects apart in parts of their own, is easier to decode, and can score above it.
    """
    from glassdiff.evaluate.groundtruth import round_trip
    from glassdiff.evaluate.prompts import load_prompts
    from glassdiff.world import render, scene_from_spec

    rng = random.Random(0)
    specs = load_prompts("seen")
    truth = [render(scene_from_spec(spec, rng)) for spec in specs]
    passed = sum(judge(spec, detect(image)).passed for spec, image in zip(specs, round_trip(pipe, truth)))
    print(f"seen prompts passing through the autoencoder: {passed}/{len(specs)}")
    assert passed / len(specs) >= 0.85  # 392/442 with stage 13's decoder; stage 7's passed 363


def test_word_swap_probe_sees_the_default_model_use_its_caption(pipe):
    """The probe measures conditioning: wrong colour words or no caption at all predict the objects worse."""
    from glassdiff.train.probe import probe

    errors = probe(pipe, scenes=32, timesteps=(600,))[600]
    assert errors["true"] < errors["colour swapped"]
    assert errors["true"] < errors["empty"]


def test_image_to_image_recolours_in_place_and_inpainting_adds_what_the_prompt_names(pipe):
    """From a render of a red circle on the left, 50 seeds: at strength 0.6 "a blue circle on the left" keeps the
    place and takes the new colour (the image-to-image UNet); inpainting the right half adds the prompted star there."""
    import numpy as np
    from PIL import Image

    from glassdiff.world import render, scene_from_spec

    picture = render(scene_from_spec({"include": [{"class": "circle", "count": 1, "color": "red", "cell": "left"}]},
                                     random.Random(0)))
    recoloured = pipe("a blue circle on the left", seed=0, batch=50, init_image=picture, strength=0.6)
    kept_place = sum(any(o.shape == "circle" and o.color == "blue" and o.cell == "left" for o in seen)
                     and not any(o.color == "red" for o in seen)
                     for seen in (detect(image).objects for image in recoloured.images))
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    inpainted = pipe("a blue star on the right", seed=0, batch=50, init_image=picture, strength=1.0,
                     mask=Image.fromarray(mask))
    added = sum(any(o.shape == "star" and o.color == "blue" and o.cx > 0.5 for o in detect(image).objects)
                for image in inpainted.images)
    assert kept_place >= 40 and added >= 40, (kept_place, added)


def test_the_shipped_student_draws_in_four_steps_what_the_teachers_split_loses():
    """default-fast (weights/fast) at its own sampling (lcm, 4 steps, regions on every step) against the same
    student with the teacher's split (one region step of four): the benchmark's first counting, position and
    colour-binding prompts, seeds 0-3."""
    from glassdiff.models import resolve

    student = Pipeline.load(resolve("default-fast"))
    assert student.sampling == {"sampler": "lcm", "steps": 4, "guidance": 1.0, "layout": 1.0}
    specs = [s for tag in ("counting", "position", "color_attr") for s in benchmark_specs(tag, 8)]
    own, split = passing(student, specs, 1.0, batch=4), passing(student, specs, 0.33, batch=4)
    print(f"student prompts passing: {own}/96 on its own layout, {split}/96 with the teacher's split")
    assert own >= 80 and own >= split + 40
