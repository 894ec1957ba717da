"""Stable Diffusion folders written by diffusers: glassdiff draws diffusers' pixels, and saves them to reload."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
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
    pairs = ((ours.unet, theirs.unet), (ours.vae, theirs.vae), (ours.text_encoder.model, theirs.text_encoder.model))
    for a, b in pairs:
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


def test_a_ckpt_is_read_through_weights_only_with_a_note(sd_file, tmp_path, capsys):
    from safetensors.torch import load_file

    from glassdiff.cli import main

    folder, path, prediction = sd_file
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(path), "global_step": 10}, ckpt)
    code = main(["generate", "a cat", "-q", "--steps", "2", "--width", "16", "--height", "16", "--prediction",
                 prediction, "--model", str(ckpt), "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 0 and "is a pickle; read with torch.load(weights_only=True)" in err
    a = np.asarray(Image.open(tmp_path / "x.png"))
    b = np.asarray(Pipeline.load(path, prediction=prediction)("a cat", steps=2, width=16, height=16).image)
    assert np.array_equal(a, b)


class NotATensor:
    pass


def fake_checkpoint(path, keys):
    from safetensors.torch import save_file

    save_file({key: torch.zeros(2, 2) for key in keys}, str(path))
    return str(path)


def test_files_that_are_no_sd_checkpoint_are_named(sd_file, tmp_path, capsys):
    from glassdiff.cli import main

    unet = "model.diffusion_model.input_blocks.0.0.weight"
    cases = {
        "lora": (["lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"], "a LoRA"),
        "text": (["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"],
                 "a text encoder alone"),
        "vae": (["first_stage_model.encoder.down.0.block.0.conv1.weight"], "an autoencoder (VAE) alone"),
        "sdxl": ([unet, "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"],
                 "an SDXL checkpoint (not supported yet)"),
        "sd3": (["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"], "a Stable Diffusion 3 checkpoint"),
        "flux": (["double_blocks.0.img_attn.qkv.weight"], "a Flux checkpoint"),
        "unet": ([unet], "a UNet without its autoencoder"),
        "other": (["weight"], "no Stable Diffusion checkpoint"),
    }
    paths = {name: (fake_checkpoint(tmp_path / f"{name}.safetensors", keys), message)
             for name, (keys, message) in cases.items()}
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(open(sd_file[1], "rb").read()[:5000])
    paths["truncated"] = (str(truncated), "may be truncated")
    pickled = tmp_path / "object.ckpt"
    torch.save({"state_dict": NotATensor()}, pickled)
    paths["object"] = (str(pickled), "cannot be read as a checkpoint of tensors")
    for name, (path, message) in paths.items():
        code = main(["generate", "a cat", "-q", "--model", path, "-o", str(tmp_path / "x.png")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.strip().splitlines()[-1].startswith("glassdiff: "), (name, err)
        assert "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_sizes_must_be_multiples_of_the_autoencoders_factor(sd_dir, tmp_path, capsys):
    from glassdiff.cli import main

    code = main(["generate", "a cat", "-q", "--model", sd_dir, "--width", "17", "-o", str(tmp_path / "x.png")])
    assert code == 2 and "--width 17 is not a positive multiple of 2; try 16" in capsys.readouterr().err


def test_models_are_listed_and_chosen_by_name(sd_dir, sd_file, tmp_path, capsys, monkeypatch):
    import os
    import shutil

    from glassdiff.cli import main

    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(sd_dir, models / "my-folder")
    shutil.copy(sd_file[1], models / "my-file.safetensors")
    (models / "notes.txt").write_text("not a model")
    monkeypatch.setenv("GLASSDIFF_MODELS", str(models))
    assert main(["models", "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert set(listed) == {"default", "default-fast", "my-folder", "my-file"}  # the embedded two, then the folder
    assert listed["default"]["kind"] == "glassdiff" and listed["default"]["native"] == 64
    assert listed["my-folder"]["kind"] == ("sd2" if "v_prediction" in sd_dir else "sd1")
    assert listed["my-file"]["kind"] == ("sd2" if sd_file[2] == "v_prediction" else "sd1")
    total = sum(p.numel() for m in (Pipeline.load(sd_dir).unet, Pipeline.load(sd_dir).vae) for p in m.parameters())
    assert listed["my-folder"]["params"] >= total
    assert listed["my-file"]["bytes"] == os.path.getsize(sd_file[1])
    out = tmp_path / "by-name.png"
    assert main(["generate", "a cat", "-q", "--steps", "2", "--model", "my-folder", "-o", str(out)]) == 0
    direct = Pipeline.load(sd_dir)("a cat", steps=2).image
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(direct))
    assert main(["generate", "a cat", "-q", "--model", "nothing-here", "-o", str(out)]) == 2
    assert "no model 'nothing-here'" in capsys.readouterr().err


def test_explain_reports_on_a_stable_diffusion_model(sd_dir, tmp_path, capsys):
    from glassdiff.cli import main

    pipe = Pipeline.load(sd_dir)
    plain = pipe("a red cat", seed=2, steps=3, layout=0)
    watched = pipe("a red cat", seed=2, steps=3, layout=0, attention=True)
    assert torch.equal(plain.latents, watched.latents)  # recording attention changes nothing
    words = [word for word, _ in watched.attention.word_maps()]
    assert words == ["a", "red", "cat"]  # CLIP's 77 tokens, the padding left out ("!" for SD 2.x)
    report = tmp_path / "report.html"
    assert main(["explain", "a red cat", "--model", sd_dir, "--steps", "4", "-o", str(report)]) == 0
    page = report.read_text()
    assert 'id="words"' in page and "77 vectors" in page and report.stat().st_size < 5e6
