"""Stable Diffusion folders written by diffusers: glassdiff draws diffusers' pixels, and saves them to reload."""

import numpy as np
import pytest
import torch
from sd_tiny import build_sd

from glassdiff.pipeline import Pipeline
from glassdiff.schedulers import make_scheduler

SAMPLERS = ("ddim", "euler", "euler_a", "dpmpp_2m", "lms", "unipc")


@pytest.fixture(scope="module", params=["epsilon", "v_prediction"])
def sd_dir(request, tmp_path_factory):
    return build_sd(str(tmp_path_factory.mktemp("sd") / request.param), v_prediction=request.param == "v_prediction")


def diffusers_image(folder, sampler, prompt, seed, steps, guidance, negative=""):
    from diffusers import StableDiffusionPipeline

    reference = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)
    reference.set_progress_bar_config(disable=True)
    reference.scheduler = make_scheduler(sampler, reference.scheduler.config)
    return np.asarray(reference(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=guidance,
                                height=16, width=16, generator=torch.Generator().manual_seed(seed)).images[0],
                      dtype=int)


def test_the_folder_is_read_as_stable_diffusion(sd_dir):
    pipe = Pipeline.load(sd_dir)
    info = pipe.info()
    assert info["text_encoder"]["kind"] == "clip" and info["text_encoder"]["max_tokens"] == 77
    assert info["prediction_type"] == ("v_prediction" if sd_dir.endswith("v_prediction") else "epsilon")
    assert info["latent"] == [4, 8, 8] and info["image"] == [16, 16, 3]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_images_equal_diffusers_pipeline_on_the_same_folder(sd_dir, sampler):
    pipe = Pipeline.load(sd_dir)
    ours = np.asarray(pipe("a red cat on a mat", seed=3, steps=6, sampler=sampler, guidance=5.0, negative="blurry",
                           layout=0).image, dtype=int)
    theirs = diffusers_image(sd_dir, sampler, "a red cat on a mat", 3, 6, 5.0, negative="blurry")
    assert np.abs(ours - theirs).max() <= 1


def test_a_saved_stable_diffusion_model_reloads_to_the_same_images(sd_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    pipe = Pipeline.load(sd_dir)
    saved = str(tmp_path / "saved")
    pipe.save(saved)
    again = Pipeline.load(saved)
    assert again.text_encoder.kind == "clip"
    first, second = (np.asarray(p("a blue dog", seed=1, steps=4, layout=0).image) for p in (pipe, again))
    assert np.array_equal(first, second)
    assert StableDiffusionPipeline.from_pretrained(saved, safety_checker=None).tokenizer is not None


# ---------------- single files in the original key layout ----------------

@pytest.fixture(scope="module", params=["epsilon", "v_prediction"])
def sd_file(request, tmp_path_factory):
    """A tiny SD folder with CLIP's vocabulary, and the same weights as one .safetensors file in the original layout."""
    from glassdiff.checkpoints import write_single_file

    folder = build_sd(str(tmp_path_factory.mktemp("sdfile") / request.param), clip_vocabulary=True,
                      v_prediction=request.param == "v_prediction")
    path = folder + ".safetensors"
    write_single_file(Pipeline.load(folder), path)
    return folder, path, request.param


def test_the_writer_and_the_reader_round_trip_every_tensor(sd_file):
    folder, path, prediction = sd_file
    ours, theirs = Pipeline.load(folder), Pipeline.load(path, prediction=prediction)
    for a, b in ((ours.unet, theirs.unet), (ours.vae, theirs.vae), (ours.text_encoder.model, theirs.text_encoder.model)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert theirs.unet.config.block_out_channels == ours.unet.config.block_out_channels
    assert theirs.scheduler_config["prediction_type"] == prediction


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_single_file_draws_diffusers_pixels(sd_file, sampler):
    folder, path, prediction = sd_file
    pipe = Pipeline.load(path, prediction=prediction)
    ours = np.asarray(pipe("a red cat on a mat", seed=3, steps=6, sampler=sampler, guidance=5.0, negative="blurry",
                           width=16, height=16, layout=0).image, dtype=int)
    theirs = diffusers_image(folder, sampler, "a red cat on a mat", 3, 6, 5.0, negative="blurry")
    assert np.abs(ours - theirs).max() <= 1
