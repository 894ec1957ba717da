"""Image-to-image and inpainting: diffusers' pixels on a tiny SD model, and what strength and mask promise."""

import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from glassdiff.autoencoder import encode
from glassdiff.config import SamplingConfig
from glassdiff.pipeline import Pipeline
from glassdiff.schedulers import make_scheduler

from sd_tiny import build_sd

SAMPLERS = ("ddim", "euler", "euler_a", "dpmpp_2m", "lms")


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return build_sd(str(tmp_path_factory.mktemp("sd") / "epsilon"))


@pytest.fixture(scope="module")
def picture():
    rng = np.random.default_rng(0)
    base = np.zeros((16, 16, 3), np.uint8) + np.array([40, 90, 220], np.uint8)
    base[4:12, 4:12] = (220, 40, 40)
    return Image.fromarray(np.clip(base + rng.integers(0, 20, base.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def half_mask():
    mask = np.zeros((16, 16), np.uint8)
    mask[:, 8:] = 255
    return Image.fromarray(mask)


def reference(folder, kind, sampler, **kwargs):
    import diffusers

    cls = {"img2img": diffusers.StableDiffusionImg2ImgPipeline, "inpaint": diffusers.StableDiffusionInpaintPipeline}
    pipe = cls[kind].from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(sampler, pipe.scheduler.config)
    return np.asarray(pipe(**kwargs, generator=torch.Generator().manual_seed(3)).images[0], dtype=int)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_image_to_image_draws_diffusers_pixels(sd_dir, picture, sampler):
    ours = Pipeline.load(sd_dir)("a red cat", seed=3, steps=6, sampler=sampler, guidance=5.0, layout=0,
                                 init_image=picture, strength=0.6).image
    theirs = reference(sd_dir, "img2img", sampler, prompt="a red cat", image=picture, strength=0.6,
                       num_inference_steps=6, guidance_scale=5.0)
    assert np.abs(np.asarray(ours, dtype=int) - theirs).max() <= 1


@pytest.mark.parametrize("sampler, strength", [("ddim", 0.8), ("euler", 0.8), ("euler_a", 0.8), ("dpmpp_2m", 0.8),
                                               ("lms", 0.8), ("dpmpp_2m", 1.0), ("euler_a", 1.0)])
def test_inpainting_draws_diffusers_pixels(sd_dir, picture, half_mask, sampler, strength):
    ours = Pipeline.load(sd_dir)("a red cat", seed=3, steps=6, sampler=sampler, guidance=5.0, layout=0,
                                 init_image=picture, strength=strength, mask=half_mask).image
    theirs = reference(sd_dir, "inpaint", sampler, prompt="a red cat", image=picture, mask_image=half_mask,
                       strength=strength, num_inference_steps=6, guidance_scale=5.0, height=16, width=16)
    assert np.abs(np.asarray(ours, dtype=int) - theirs).max() <= 1


def test_strength_one_is_text_to_image_and_strength_zero_the_round_trip(tiny_pipe, picture):
    plain = tiny_pipe("a red circle", seed=5, steps=4, layout=0).image
    full = tiny_pipe("a red circle", seed=5, steps=4, layout=0, init_image=picture, strength=1.0).image
    assert np.array_equal(np.asarray(plain), np.asarray(full))
    kept = tiny_pipe("a red circle", seed=5, steps=4, init_image=picture, strength=0.0)
    pixels = torch.from_numpy(np.asarray(picture, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    round_trip = tiny_pipe.decode_latents(encode(tiny_pipe.vae, pixels))[0].numpy()  # glassdiff's models: the mean
    assert np.array_equal(np.asarray(kept.image), round_trip) and kept.trace is None


def test_outside_the_mask_the_latent_is_the_pictures(tiny_pipe, picture, half_mask):
    made = tiny_pipe("a red circle", seed=5, steps=6, init_image=picture, strength=0.9, mask=half_mask)
    kept = tiny_pipe("a red circle", seed=5, steps=4, init_image=picture, strength=0.0)
    assert torch.equal(made.latents[..., :4], kept.latents[..., :4])  # the mask's black half, on the latent grid
    assert not torch.allclose(made.latents[..., 4:], kept.latents[..., 4:])


@pytest.fixture(scope="module")
def default_pipe():
    return Pipeline.default()


def render_of(spec: dict):
    import random

    from glassdiff.world import render, scene_from_spec

    return render(scene_from_spec(spec, random.Random(0)))


def test_outside_the_mask_the_pixels_stay_the_round_trip(default_pipe):
    picture = render_of({"include": [{"class": "circle", "count": 1, "color": "red", "cell": "left"}],
                         "background": "sky"})
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    made = default_pipe("a blue star on the right", seed=1, init_image=picture, strength=0.9,
                        mask=Image.fromarray(mask))
    kept = default_pipe("a blue star on the right", seed=1, init_image=picture, strength=0.0)
    made, kept, original = (np.asarray(im, int) for im in (made.image, kept.image, picture))
    round_trip_error = np.abs(kept - original)[:, :24].max()
    assert np.abs(made - kept)[:, :24].max() <= max(round_trip_error, 2)  # away from the decoder's reach


def test_the_command_line_redraws_a_picture_started_image_from_its_parameters(tiny_model_dir, picture, half_mask,
                                                                             tmp_path, monkeypatch):
    from glassdiff.cli import main

    monkeypatch.chdir(tmp_path)
    picture.save("in.png")
    half_mask.resize((8, 8)).save("mask.png")  # another size: resized, with a notice
    args = ["--model", tiny_model_dir, "--steps", "4", "-q"]
    assert main(["generate", "a red cat", "--init-image", "in.png", "--strength", "0.7", "--mask", "mask.png",
                 "-o", "out.png", *args]) == 0
    text = Image.open("out.png").info["parameters"]
    assert "Denoising strength: 0.7, Init image: in.png, Init image hash: " in text and "Mask: mask.png" in text
    assert main(["generate", "--from-png", "out.png", "-o", "again.png", *args]) == 0
    assert np.array_equal(np.asarray(Image.open("out.png")), np.asarray(Image.open("again.png")))


@pytest.mark.parametrize("extra, message", [(["--init-image", "nope.png"], "cannot read it as an image"),
                                            (["--strength", "0.5"], "go with --init-image"),
                                            (["--init-image", "in.png", "--strength", "1.5"], "outside [0, 1]"),
                                            (["--init-image", "in.png", "--width", "17"], "multiple of")])
def test_bad_pictures_and_strengths_are_one_line_and_exit_2(tiny_model_dir, picture, tmp_path, monkeypatch, capsys,
                                                           extra, message):
    from glassdiff.cli import main

    monkeypatch.chdir(tmp_path)
    picture.save("in.png")
    assert main(["generate", "a red cat", "--model", tiny_model_dir, "-o", "out.png", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "out.png").exists()


# ---------------- the forward process, shown (explain --forward, and every image-to-image report) ----------------

def test_explain_forward_shows_the_picture_dissolving_and_where_the_run_starts(tiny_model_dir, picture, tmp_path,
                                                                             monkeypatch):
    from glassdiff.cli import main
    from glassdiff.explain.forward_view import COLUMNS

    monkeypatch.chdir(tmp_path)
    picture.save("in.png")
    assert main(["explain", "--forward", "in.png", "--strength", "0.5", "--steps", "10", "--sampler", "ddim",
                 "--model", tiny_model_dir, "-o", "forward.html"]) == 0
    page = open("forward.html").read()
    assert 'id="forward"' in page and 'id="steps"' not in page  # the forward process alone: no model run
    columns = re.findall(r"t = (\d+)<br>signal ([\d.]+) &middot; noise ([\d.]+)", page)
    assert len(columns) == COLUMNS + 1 and columns[0][0] == "0" and columns[-1][1] == "0.00"
    assert all(abs(float(s) ** 2 + float(n) ** 2 - 1) < 0.02 for _, s, n in columns)  # shares of a unit variance
    assert "skips the first 5 of 10 steps" in page


@pytest.mark.parametrize("sampler", ["ddim", "euler", "dpmpp_2m"])
def test_the_forward_views_start_is_the_runs_first_timestep(tiny_pipe, picture, sampler):
    from glassdiff.explain.forward_view import start_timestep

    result = tiny_pipe("a red cat", steps=10, sampler=sampler, init_image=picture, strength=0.45, trace=True)
    scheduler = make_scheduler(sampler, tiny_pipe.scheduler_config)
    assert start_timestep(scheduler, 10, 0.45) == round(result.trace[0].timestep)
    assert len(result.trace) == int(10 * 0.45)  # the last 4 of 10 steps


def test_an_image_to_image_report_begins_with_the_forward_process(tiny_pipe, picture, half_mask):
    from glassdiff.explain.report import build_report

    picture_inputs = {"init_image": picture, "strength": 0.7, "mask": half_mask}
    cfg = SamplingConfig(steps=6, guidance=4.0, seed=1, sampler="euler")
    page, result = build_report(tiny_pipe, "a red cat", cfg, picture=picture_inputs)
    assert page.index('id="forward"') < page.index('id="text"') < page.index('id="steps"')
    assert "Inpainting:" in page and "the picture, noised (section 0)" in page and "Denoising strength: 0.7" in page
    assert len(result.trace) == 4  # 0.7 of 6 steps
    plain = tiny_pipe("a red cat", cfg, **picture_inputs)
    assert np.array_equal(np.asarray(plain.image), np.asarray(result.image))  # the report draws generate's image


@pytest.mark.parametrize("argv, message", [
    (["explain", "--forward", "in.png", "a cat"], "without a prompt"),
    (["explain", "--forward", "nope.png"], "--forward nope.png: cannot read it"),
    (["explain", "a cat", "--init-image", "in.png", "--strength", "0"], "no step runs"),
    (["explain"], "give a PROMPT")])
def test_explain_with_pictures_refuses_bad_input_in_one_line(tiny_model_dir, picture, tmp_path, monkeypatch, capsys,
                                                            argv, message):
    from glassdiff.cli import main

    monkeypatch.chdir(tmp_path)
    picture.save("in.png")
    assert main([*argv, "--model", tiny_model_dir, "-o", "r.html"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "r.html").exists()


def test_redrawing_an_image_the_server_drew_from_a_picture_asks_for_the_picture(tiny_model_dir, picture, tmp_path,
                                                                              monkeypatch, capsys):
    from PIL import PngImagePlugin

    from glassdiff.cli import main

    monkeypatch.chdir(tmp_path)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red cat\nSteps: 4, Sampler: ddim, CFG scale: 4.0, Seed: 1, Size: 16x16, "
                                "Denoising strength: 0.7, Init image hash: 0123456789")
    picture.save("served.png", pnginfo=info)
    assert main(["generate", "--from-png", "served.png", "--model", tiny_model_dir, "-o", "again.png", "-q"]) == 2
    err = capsys.readouterr().err
    assert "give that picture as --init-image" in err and not (tmp_path / "again.png").exists()
    picture.save("in.png")
    assert main(["generate", "--from-png", "served.png", "--init-image", "in.png", "--model", tiny_model_dir,
                 "-o", "again.png", "-q"]) == 0
    assert "Denoising strength: 0.7" in Image.open("again.png").info["parameters"]


@pytest.fixture(scope="module")
def two_unet_dir(tiny_pipe, tmp_path_factory):
    """The tiny model with a second, different UNet for image-to-image, saved and loaded back."""
    import copy

    from glassdiff.config import unet_preset
    from glassdiff.denoiser import build_unet

    torch.manual_seed(1)
    pipe = copy.copy(tiny_pipe)
    pipe.img2img_unet = build_unet(unet_preset("tiny", tiny_pipe.text_encoder.dim))
    folder = str(tmp_path_factory.mktemp("model") / "two")
    pipe.save(folder)
    return folder


def test_a_folders_image_to_image_unet_runs_below_strength_one_only(tiny_pipe, two_unet_dir, picture):
    loaded = Pipeline.load(two_unet_dir)
    second = Pipeline(loaded.img2img_unet, loaded.vae, loaded.text_encoder, loaded.scheduler_config)
    args = dict(seed=5, steps=4, layout=0, init_image=picture)
    pixels = {name: np.asarray(pipe("a red circle", strength=strength, **args).image)
              for name, pipe, strength in [("loaded 1", loaded, 1.0), ("first 1", tiny_pipe, 1.0),
                                           ("loaded 0.6", loaded, 0.6), ("second 0.6", second, 0.6),
                                           ("first 0.6", tiny_pipe, 0.6)]}
    assert np.array_equal(pixels["loaded 1"], pixels["first 1"])  # text-to-image: the folder's first UNet
    assert np.array_equal(pixels["loaded 0.6"], pixels["second 0.6"])
    assert not np.array_equal(pixels["loaded 0.6"], pixels["first 0.6"])
    assert Pipeline.load(two_unet_dir).info()["unet"]["img2img"] and not tiny_pipe.info()["unet"]["img2img"]


def test_the_fast_path_runs_the_image_to_image_unet_from_its_own_export(two_unet_dir, picture, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("GLASSDIFF_CACHE", str(tmp_path / "cache"))
    fast, reference = Pipeline.load(two_unet_dir), Pipeline.load(two_unet_dir)
    fast.engine, reference.engine = "onnx", "torch"
    for strength in (1.0, 0.6):
        ours, theirs = (np.asarray(p("a red circle", seed=5, steps=4, layout=0, init_image=picture,
                                     strength=strength).image, int) for p in (fast, reference))
        assert np.abs(ours - theirs).max() <= 1
    assert len(os.listdir(tmp_path / "cache" / "onnx")) == 2  # one export per UNet
