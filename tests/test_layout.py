"""Layout planning: which prompts get regions, where they lie, and how the loop draws them."""

import numpy as np
import pytest
import torch

from glassdiff.config import scheduler_preset
from glassdiff.layout import FREE_COLORS, masks, plan
from glassdiff.sampling import Regions, TrajectoryRecorder, initial_noise, sample
from glassdiff.schedulers import SCHEDULERS, make_scheduler
from glassdiff.world.vocab import BACKGROUNDS, RELATIONS, relation_holds


def centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


@pytest.mark.parametrize("relation", RELATIONS)
def test_each_object_gets_the_half_its_relation_asks_for(relation):
    star, heart = plan(f"a star {relation} a heart")
    assert relation_holds(relation, centre(star.box), centre(heart.box))
    assert star.prompt.startswith("a medium star ") and heart.prompt.startswith("a medium heart ")


def test_region_prompts_are_captions_of_one_object_in_a_named_cell():
    assert [r.prompt for r in plan("a small red circle and a large blue square")] == [
        "a small red circle on the left", "a large blue square on the right"]
    assert [r.prompt for r in plan("  A Yellow Star above a hexagon on sand. ")] == [
        "a medium yellow star at the top on a sand background", "a medium hexagon at the bottom on a sand background"]


def test_two_copies_share_their_half_one_quarter_each():
    squares_top, squares_bottom, circle = plan("two blue squares above a red circle")
    assert [squares_top.prompt, squares_bottom.prompt, circle.prompt] == [
        "a medium blue square in the top left", "a medium blue square in the top right",
        "a medium red circle at the bottom"]
    assert [squares_top.box, squares_bottom.box] == [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5)]
    assert [r.box for r in plan("two crosses left of a heart")[:2]] == [(0.0, 0.0, 0.5, 0.5), (0.0, 0.5, 0.5, 1.0)]


def test_each_copy_of_a_counted_object_gets_a_part_of_its_own():
    assert [(r.prompt, r.box) for r in plan("two red crosses on a black background")] == [
        ("a medium red cross on the left on a black background", (0.0, 0.0, 0.5, 1.0)),
        ("a medium red cross on the right on a black background", (0.5, 0.0, 1.0, 1.0))]
    assert [r.prompt for r in plan("three small stars")] == [
        "a small star in the top left", "a small star in the top right", "a small star at the bottom"]
    assert [r.prompt for r in plan("Four hearts.")] == [
        "a medium heart in the top left", "a medium heart in the top right", "a medium heart in the bottom left",
        "a medium heart in the bottom right"]


def test_a_lone_object_named_with_no_colour_is_asked_for_in_the_centre_of_the_whole_canvas():
    assert [(r.prompt, r.box) for r in plan("a star")] == [("a medium star in the center", (0.0, 0.0, 1.0, 1.0))]
    assert [r.prompt for r in plan("One small hexagon on a gray background")] == [
        "a small hexagon in the center on a gray background"]


@pytest.mark.parametrize("prompt", ["a red star", "one small blue star on sand", "three stars and a heart",
                                    "four stars left of a heart", "five stars", "three stars in the top left",
                                    "a star in the top left and a heart", "a crimson ball left of a box",
                                    "a star and a heart and a cross", ""])
def test_lone_objects_with_their_colour_and_prompts_the_planner_does_not_read_are_drawn_as_they_are(prompt):
    assert plan(prompt) is None


@pytest.mark.parametrize("height,width", [(16, 16), (7, 9)])
def test_regions_tile_the_canvas(height, width):
    for prompt in ("a star and a heart", "a star above a heart", "two stars left of two hearts", "two stars",
                   "three stars", "four stars"):
        tiled = masks(plan(prompt), height, width).sum(0)
        assert torch.equal(tiled, torch.ones(1, height, width))


def canvas_denoiser(x_in, t, context):
    """Each pixel's output depends on its pixel, the whole canvas's mean and the context, as a UNet's reaches
    across the canvas: a region drawn on a canvas shared with other regions would feel them."""
    return 0.5 * x_in + 0.3 * x_in.mean(dim=(1, 2, 3), keepdim=True) + context.mean(dim=(1, 2)).view(-1, 1, 1, 1)


@pytest.mark.parametrize("sampler", SCHEDULERS)
def test_each_region_draws_what_its_prompt_alone_would_there(sampler):
    noise = initial_noise((2, 4, 6), [3])
    left, right, empty = torch.full((1, 3, 8), 1.0), torch.full((1, 3, 8), -2.0), torch.zeros(1, 3, 8)
    region_masks = torch.zeros(2, 1, 4, 6)
    region_masks[0, ..., :3], region_masks[1, ..., 3:] = 1, 1
    regions = Regions(torch.cat([left, right]), torch.tensor([0, 0]), region_masks, steps=5)

    def run(context, regions=None, observers=()):
        return sample(canvas_denoiser, make_scheduler(sampler, scheduler_preset()), noise, context=context,
                      uncond_context=empty, guidance_scale=3.0, steps=5, generators=[3], observers=observers,
                      regions=regions)

    drawn = run(left, regions)  # regions for every step: a collage of what each prompt alone draws
    torch.testing.assert_close(drawn[..., :3], run(left)[..., :3])
    torch.testing.assert_close(drawn[..., 3:], run(right)[..., 3:])
    # regions for the first 2 steps only: the records show the pasted canvases, then the whole prompt's steps
    recorder, alone = TrajectoryRecorder(), {}
    partly = run(left, Regions(regions.context, regions.owner, region_masks, steps=2), (recorder,))
    for name, context in (("left", left), ("right", right)):
        alone[name] = TrajectoryRecorder()
        run(context, observers=(alone[name],))
    assert [r.regional for r in recorder.records] == [True, True, False, False, False]
    collage = torch.cat([alone["left"].records[1].x_next[..., :3], alone["right"].records[1].x_next[..., 3:]], -1)
    torch.testing.assert_close(recorder.records[1].x_next, collage)
    assert not torch.allclose(partly, drawn) and not torch.allclose(partly, run(left))
    # canvases cut after a step of the whole prompt, with the same prompt each, paste back the latent (and the
    # scheduler's memory, and the noise generator's place) they were cut from
    recorder = TrajectoryRecorder()
    same = Regions(torch.cat([left, left]), regions.owner, region_masks, steps=2, start=1)
    torch.testing.assert_close(run(left, same, (recorder,)), run(left))
    assert [r.regional for r in recorder.records] == [False, True, True, False, False]


def test_pipeline_plans_the_prompts_the_planner_reads_and_draws_the_others_as_they_are(tiny_pipe):
    two, one = "a star left of a heart", "a red circle"
    with_layout = tiny_pipe([two, one], seed=1, batch=2, steps=3)
    without = tiny_pipe([two, one], seed=1, batch=2, steps=3, layout=0.0)
    assert with_layout.plans[0] == plan(two) and with_layout.plans[1] is None and without.plans == [None, None]
    assert not torch.allclose(with_layout.latents[:2], without.latents[:2])
    torch.testing.assert_close(with_layout.latents[2:], without.latents[2:], atol=1e-5, rtol=1e-5)
    assert "Layout: 0.33," in with_layout.infotexts[0] and "Layout: 0.0," in without.infotexts[0]


def test_layout_one_draws_every_step_in_regions_that_name_what_the_prompt_left_free(tiny_pipe):
    prompt = "two stars left of a heart"
    result = tiny_pipe(prompt, seed=3, steps=3, layout=1.0, trace=True)
    assert [r.regional for r in result.trace] == [True, True, True]
    assert result.plans[0] == plan(prompt, seed=3)
    backgrounds = {r.prompt.split(" on a ")[-1] for r in result.plans[0]}
    hues = [next(c for c in FREE_COLORS if f" {c} " in r.prompt) for r in result.plans[0]]
    assert len(backgrounds) == 1 and backgrounds <= {f"{b} background" for b in BACKGROUNDS}
    assert hues[0] == hues[1] != hues[2]  # the two stars share a hue; the heart has its own
    picks = [plan(prompt, seed=seed) for seed in range(60)]
    assert {r[0].prompt.split(" on a ")[-1] for r in picks} == {f"{b} background" for b in BACKGROUNDS}
    named = plan("a green star left of a heart on a black background", seed=3)
    assert " green star " in named[0].prompt and all(r.prompt.endswith(" on a black background") for r in named)
    assert plan("a red star", seed=3) is None  # one object with its colour is still drawn as it is
    on = {plan("a white star and a black heart", seed=seed)[0].prompt.split(" on a ")[-1] for seed in range(60)}
    assert on == {"gray background", "sky background", "sand background"}  # never a colour's forbidden ground
    partly = tiny_pipe(prompt, seed=3, steps=3, layout=0.67, trace=True)  # a first step of the whole prompt
    assert [r.regional for r in partly.trace] == [False, True, True] and partly.plans[0] == plan(prompt)


def test_guidance_zero_runs_no_region_prompts(tiny_pipe):
    result = tiny_pipe("a star left of a heart", seed=1, steps=3, guidance=0.0, trace=True)
    assert all(r.eps_cond is None and not r.regional for r in result.trace) and result.plans == [None]
    assert torch.equal(result.latents, tiny_pipe("a star left of a heart", seed=1, steps=3, guidance=0.0,
                                                 layout=0.0).latents)


def test_attention_maps_skip_the_layout_steps_and_leave_the_image_unchanged(tiny_pipe):
    prompt = "a star above a heart"
    plain = tiny_pipe(prompt, seed=2, steps=6, layout=0.5)
    recorded = tiny_pipe(prompt, seed=2, steps=6, layout=0.5, attention=True)
    assert torch.equal(plain.latents, recorded.latents)
    per_step = recorded.attention.per_step
    assert [float(m.abs().sum()) == 0 for m in per_step] == [False] + [True] * 3 + [False] * 2
    assert np.isfinite(np.stack([m.numpy() for _, m in recorded.attention.word_maps()])).all()
