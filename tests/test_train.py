"""Training: resume after kill -9, caching, the folder dataset, two-process DDP."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from glassdiff.config import BadInput
from glassdiff.world.vocab import COLORS, SHAPES
from glassdiff.train.data import folder_examples
from glassdiff.train.denoiser import DenoiserTrainConfig, train_denoiser

TINY = dict(vae="none", preset="tiny", size=16, batch=8, captions=24, scenes_per_caption=1, checkpoint_every=2,
            sample_every=10_000, seed=3)


def final_unet(out):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(os.path.join(out, "model"), subfolder="unet").state_dict()


def test_resume_after_kill_ends_where_an_uninterrupted_run_ends(tmp_path, one_thread):
    options = {**TINY, "checkpoint_every": 10}
    whole = train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "whole"), steps=60, **options))
    out = str(tmp_path / "killed")
    cmd = [sys.executable, "-m", "glassdiff.train", "denoiser", "--out", out, "--steps", "60"] + [
        f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    ckpt = os.path.join(out, "checkpoint.pt")
    deadline = time.time() + 600
    while not os.path.exists(ckpt) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    assert os.path.exists(ckpt), (tmp_path / "killed.log").read_text()[-2000:]
    step = torch.load(ckpt, weights_only=False)["step"]
    assert 0 < step < 60  # killed part-way
    resumed = train_denoiser(DenoiserTrainConfig(out=out, steps=60, resume=True, **options))
    assert resumed["weights_digest"] == whole["weights_digest"]


def test_stop_after_ends_on_the_schedule_of_steps_and_resumes_to_the_whole_run(tmp_path, one_thread):
    whole = train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "whole"), steps=6, **TINY))
    out = str(tmp_path / "stopped")
    stopped = train_denoiser(DenoiserTrainConfig(out=out, steps=6, stop_after=3, **TINY))
    assert stopped["steps"] == 3 and torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)["step"] == 3
    assert stopped["weights_digest"] != whole["weights_digest"]
    resumed = train_denoiser(DenoiserTrainConfig(out=out, steps=6, resume=True, **TINY))
    assert resumed["weights_digest"] == whole["weights_digest"]
    with pytest.raises(BadInput, match="--stop-after"):
        train_denoiser(DenoiserTrainConfig(out=out, steps=6, stop_after=-1, **TINY))


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    out = str(tmp_path / "run")
    train_denoiser(DenoiserTrainConfig(out=out, steps=2, **TINY))
    with pytest.raises(BadInput, match="another config"):
        train_denoiser(DenoiserTrainConfig(out=out, steps=4, resume=True, **{**TINY, "batch": 4}))


@pytest.mark.parametrize("stage", ["autoencoder", "denoiser"])
def test_an_unknown_preset_is_one_line_and_exit_2(stage, capsys):
    from glassdiff.train.__main__ import main

    assert main([stage, "--preset", "huge", "--out", "/nonexistent/run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glassdiff: --preset huge: no ") and "shapes64" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, first_words", [([], "glassdiff: the following arguments are required"),
                                                 (["-x", "a", "b"], "glassdiff: unrecognized arguments: -x"),
                                                 (["/nonexistent/model", "/tmp/x"], "glassdiff: model folder")])
def test_ship_refuses_bad_arguments_in_one_line_with_exit_2(args, first_words, capsys):
    from glassdiff.train.ship import main

    try:
        code = main(args)
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(first_words) and err.count("\n") == 1


def test_ship_help_is_a_usage_block(capsys):
    from glassdiff.train.ship import main

    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith("usage: python -m glassdiff.train.ship")


def test_cache_is_built_once_and_rebuilt_when_its_inputs_change(tmp_path, monkeypatch):
    import glassdiff.train.denoiser as denoiser

    calls = []
    real = denoiser.build_cache
    monkeypatch.setattr(denoiser, "build_cache", lambda *a: calls.append(1) or real(*a))
    out = str(tmp_path / "run")
    train_denoiser(DenoiserTrainConfig(out=out, steps=1, **TINY))
    cache = torch.load(os.path.join(out, "cache.pt"), weights_only=False)
    assert cache["latents"].shape == (24, 8, 8, 8) and cache["context"].shape == (24, 20, 384)
    assert cache["context"].dtype == torch.float16
    train_denoiser(DenoiserTrainConfig(out=out, steps=1, **TINY))
    assert len(calls) == 1
    train_denoiser(DenoiserTrainConfig(out=out, steps=1, **{**TINY, "captions": 12}))
    assert len(calls) == 2
    train_denoiser(DenoiserTrainConfig(out=out, steps=1, **{**TINY, "captions": 12, "caption_colors": 0.5}))
    assert len(calls) == 3
    train_denoiser(DenoiserTrainConfig(out=out, steps=1, **{**TINY, "captions": 12, "caption_colors": 0.5,
                                                             "caption_cells": 1.0}))
    assert len(calls) == 4
    train_denoiser(DenoiserTrainConfig(out=out, steps=1, **{**TINY, "captions": 12, "caption_colors": 0.5,
                                                             "caption_cells": 1.0, "data_chunks": 2}))
    assert len(calls) == 5
    train_denoiser(DenoiserTrainConfig(out=out, steps=1, **{**TINY, "captions": 12, "caption_colors": 0.5,
                                                             "caption_cells": 1.0, "data_chunks": 2,
                                                             "caption_tasks": "counting=5"}))
    assert len(calls) == 6


def test_shapes_data_in_chunks_is_deterministic_and_one_chunk_is_the_single_stream():
    import numpy as np

    from glassdiff.train.data import _draw_examples, shapes_examples
    from glassdiff.world.captions import NAMED_CELL_SHARE, NAMED_COLOR_SHARE

    captions, images = shapes_examples(30, 5, 16, 2, chunks=3)
    again_captions, again_images = shapes_examples(30, 5, 16, 2, chunks=3)
    assert captions == again_captions and np.array_equal(images, again_images)
    assert len(captions) == 30 and images.shape == (60, 16, 16, 3)
    first_part = _draw_examples(10, "5:0", 16, 2, NAMED_COLOR_SHARE, NAMED_CELL_SHARE)
    assert captions[:10] == first_part[0] and np.array_equal(images[:20], first_part[1])
    single = shapes_examples(30, 5, 16, 2)
    assert single[0] != captions  # the parts are seeded apart from the single stream
    assert single[0] == _draw_examples(30, 5, 16, 2, NAMED_COLOR_SHARE, NAMED_CELL_SHARE)[0]


def make_folder(path, layout="txt"):
    path.mkdir()
    rows = []
    for i, color in enumerate(["red", "blue", "green"]):
        Image.new("RGB", (40, 30), color).save(path / f"{i}.png")
        if layout == "txt":
            (path / f"{i}.txt").write_text(f"a {color} picture\n")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": f"a {color} picture"}))
    if layout == "jsonl":
        (path / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("layout", ["txt", "jsonl"])
def test_folder_dataset_reads_captions_and_crops(tmp_path, layout):
    folder = make_folder(tmp_path / "data", layout)
    captions, images, skipped = folder_examples(str(folder), 16)
    assert captions == ["a red picture", "a blue picture", "a green picture"]
    assert images.shape == (3, 16, 16, 3) and skipped == []
    assert tuple(images[1, 8, 8]) == (0, 0, 255)


def test_folder_dataset_skips_a_corrupt_image_with_a_warning(tmp_path):
    folder = make_folder(tmp_path / "data")
    (folder / "1.png").write_bytes(b"broken")
    with pytest.warns(UserWarning, match="skipping 1.png"):
        captions, images, skipped = folder_examples(str(folder), 16)
    assert skipped == ["1.png"] and len(images) == 2


def test_folder_dataset_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        folder_examples(str(tmp_path / "nowhere"), 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no images"):
        folder_examples(str(tmp_path / "empty"), 16)
    bare = tmp_path / "bare"
    bare.mkdir()
    Image.new("RGB", (8, 8)).save(bare / "a.png")
    with pytest.raises(BadInput, match="no captions"):
        folder_examples(str(bare), 16)


def test_train_on_a_folder(tmp_path):
    folder = make_folder(tmp_path / "data")
    result = train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "run"), steps=2, data=str(folder),
                                                **{**TINY, "batch": 2}))
    assert result["images"] == 3


@pytest.mark.slow
def test_two_process_ddp_ranks_end_identical_and_match_one_process(tmp_path):
    out = str(tmp_path / "ddp")
    args = ["--out", out, "--steps", "4"] + [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29517", "-m", "glassdiff.train", "denoiser", *args],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in results) == [0, 1] and all(r["world_size"] == 2 for r in results)
    assert results[0]["weights_digest"] == results[1]["weights_digest"]
    single = train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "one"), steps=4, **TINY))
    ddp_weights, one_weights = final_unet(out), final_unet(str(tmp_path / "one"))
    for key in one_weights:
        torch.testing.assert_close(ddp_weights[key], one_weights[key], atol=1e-5, rtol=1e-4)
    assert single["world_size"] == 1


def test_init_continues_a_model_folder_in_its_own_layout(tmp_path):
    from diffusers import UNet2DConditionModel

    from glassdiff.train.denoiser import _initial_unet, weights_digest

    first = str(tmp_path / "first")
    train_denoiser(DenoiserTrainConfig(out=first, steps=2, heads=2, **TINY))  # the preset alone would give 1 head
    init = os.path.join(first, "model")
    again = train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "again"), steps=0, init=init, **TINY))
    assert again["weights_digest"] == weights_digest(UNet2DConditionModel.from_pretrained(init, subfolder="unet"))
    continued = _initial_unet(DenoiserTrainConfig(init=init, **TINY), text_dim=384, latent_channels=8)
    assert continued.config.attention_head_dim == 2


def test_a_continued_run_draws_the_batches_after_the_steps_its_init_took():
    from glassdiff.train.denoiser import step_batch

    cache = {"latents": torch.zeros(40, 2, 4, 4)}
    fresh, continued = DenoiserTrainConfig(**TINY), DenoiserTrainConfig(step_offset=7, **TINY)
    for a, b in zip(step_batch(fresh, cache, 7 + 2, 5), step_batch(continued, cache, 2, 5)):
        assert torch.equal(a, b)
    assert not torch.equal(step_batch(fresh, cache, 2, 5)[2], step_batch(continued, cache, 2, 5)[2])


def test_a_model_folder_records_its_steps_and_a_continued_run_starts_after_them(tmp_path):
    from glassdiff.folders import read_training

    first = str(tmp_path / "first")
    train_denoiser(DenoiserTrainConfig(out=first, steps=2, **TINY))
    assert read_training(os.path.join(first, "model")) == {"steps": 2}
    init = os.path.join(first, "model")
    digests = {name: train_denoiser(DenoiserTrainConfig(out=str(tmp_path / name), steps=3, init=init, **offset,
                                                        **TINY))["weights_digest"]
               for name, offset in (("recorded", {}), ("after_two", {"step_offset": 2}), ("again", {"step_offset": 0}))}
    assert digests["recorded"] == digests["after_two"] != digests["again"]
    assert read_training(str(tmp_path / "recorded" / "model")) == {"steps": 5}  # every stage counted


def test_autoencoder_trains_and_its_decoder_fine_tunes_alone(tmp_path):
    from diffusers import AutoencoderKL

    from glassdiff.train.autoencoder import AutoencoderTrainConfig, train_autoencoder
    from glassdiff.train.common import lr_at

    tiny = dict(preset="tiny", size=16, crop=8, batch=4, examples=16, checkpoint_every=2, seed=1)
    first = train_autoencoder(AutoencoderTrainConfig(out=str(tmp_path / "ae"), steps=3, **tiny))
    base = os.path.join(tmp_path, "ae", "vae")
    tuned = train_autoencoder(AutoencoderTrainConfig(out=str(tmp_path / "dec"), steps=3, init=base, decoder_only=True,
                                                     lr=1e-2, warmup=1, decay_to=0.1, data_chunks=2, **tiny))
    assert tuned["scaling_factor"] == first["scaling_factor"]  # same encoder, same latents
    last = torch.load(tmp_path / "dec" / "checkpoint.pt", weights_only=False)["optimizer"]["param_groups"][0]["lr"]
    assert last == pytest.approx(lr_at(2, 1e-2, 1, 3, 0.1)) and last < 1e-2  # the cosine, not a constant rate
    before = AutoencoderKL.from_pretrained(base).state_dict()
    after = AutoencoderKL.from_pretrained(os.path.join(tmp_path, "dec", "vae")).state_dict()
    frozen = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(v, after[k]) for k, v in before.items() if k.startswith("decoder."))
    with pytest.raises(BadInput, match="--init"):
        train_autoencoder(AutoencoderTrainConfig(out=str(tmp_path / "bad"), steps=1, decoder_only=True, **tiny))


@pytest.mark.parametrize("preset", ["shapes64", "small", "tiny"])
def test_unet_preset_attention_heads_have_the_intended_width(preset):
    # diffusers reads `attention_head_dim` as a head count; the preset must ask for heads of HEAD_DIM channels
    from glassdiff.config import HEAD_DIM, unet_preset
    from glassdiff.denoiser import build_unet

    unet = build_unet(unet_preset(preset))
    cross = [m for name, m in unet.named_modules() if name.endswith("attn2")]
    assert cross
    for attn in cross:
        width = attn.to_q.out_features
        assert width // attn.heads == min(HEAD_DIM, width)


def test_probe_swaps_only_the_words_it_names():
    from glassdiff.train.probe import VARIANTS, probe_scenes
    from glassdiff.world.vocab import plural

    shape_words = set(SHAPES) | {plural(s) for s in SHAPES}
    captions, images, _backgrounds = probe_scenes(12, seed=1, size=16)
    assert images.shape == (12, 16, 16, 3)
    for true, shape, colour in zip(captions["true"], captions["shape swapped"], captions["colour swapped"]):
        for other, words in ((shape, shape_words), (colour, set(COLORS))):
            assert len(true.split()) == len(other.split())  # the same sentence ...
            changed = {w for pair in zip(true.split(), other.split()) if pair[0] != pair[1] for w in pair}
            assert changed & words and changed <= words | {"a", "an"}  # ... with only those words (and articles) new
    assert captions["empty"] == [""] * 12 and set(captions) == set(VARIANTS)


def test_cell_probe_moves_or_drops_only_the_cell_phrase():
    from glassdiff.train.probe import CELL_VARIANTS, cell_probe_scenes
    from glassdiff.world.captions import CELL_PHRASES

    captions, images, _backgrounds = cell_probe_scenes(12, seed=1, size=16)
    assert images.shape == (12, 16, 16, 3) and set(captions) == set(CELL_VARIANTS)
    for true, moved, unplaced in zip(captions["true"], captions["cell swapped"], captions["no cell"]):
        phrase = next(p for p in CELL_PHRASES.values() if true.endswith(p))
        assert unplaced == true[:-len(phrase) - 1]
        assert moved != true and moved.startswith(unplaced + " ") and moved[len(unplaced) + 1:] in CELL_PHRASES.values()


def test_relation_probe_flips_or_drops_only_the_relation_and_its_scenes_hold_it():
    from glassdiff.evaluate.detect import detect
    from glassdiff.evaluate.score import judge
    from glassdiff.train.probe import OPPOSITE, RELATION_VARIANTS, relation_probe_scenes

    captions, images, _backgrounds = relation_probe_scenes(12, seed=1, size=64)
    assert images.shape == (12, 64, 64, 3) and set(captions) == set(RELATION_VARIANTS)
    for true, flipped, unrelated, image in zip(captions["true"], captions["relation flipped"],
                                               captions["no relation"], images):
        relation = next(r for r in OPPOSITE if f" {r} " in f" {true} ")
        assert flipped == true.replace(f" {relation} ", f" {OPPOSITE[relation]} ")
        second, first = true.split(f" {relation} ")
        assert unrelated == f"{first} and {second}"
        spec = {"tag": "position", "include": [_entry(first), {**_entry(second), "position": [relation, 0]}]}
        assert judge(spec, detect(Image.fromarray(image))).passed, true


def _entry(phrase: str) -> dict:
    """'a red star' -> the spec entry it names."""
    _article, color, shape = phrase.split()
    return {"class": shape, "count": 1, "color": color}


def test_learning_rate_warms_up_then_stays_or_decays_by_a_cosine():
    from glassdiff.train.common import lr_at

    assert lr_at(0, 1e-3, 10) == pytest.approx(1e-4)
    assert lr_at(500, 1e-3, 10, total=1000) == pytest.approx(1e-3)  # constant unless asked to decay
    assert lr_at(10, 1e-3, 10, total=1010, decay_to=0.1) == pytest.approx(1e-3)
    assert lr_at(510, 1e-3, 10, total=1010, decay_to=0.1) == pytest.approx(0.55e-3)  # half-way: the mean
    assert lr_at(1010, 1e-3, 10, total=1010, decay_to=0.1) == pytest.approx(1e-4)
    assert lr_at(600, 1e-3, 10, total=1010, decay_to=0.1, decay_from=610) == pytest.approx(1e-3)  # not yet
    assert lr_at(810, 1e-3, 10, total=1010, decay_to=0.1, decay_from=610) == pytest.approx(0.55e-3)


def test_a_resumed_runs_log_keeps_one_row_a_step_the_later_one(tmp_path):
    from glassdiff.train.plots import plot_losses, read_log

    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": loss}) + "\n"
                           for s, loss in [(1, 0.5), (2, 0.4), (3, 0.3), (2, 0.2), (3, 0.1), (4, 0.05)]))
    assert [(r["step"], r["loss"]) for r in read_log(str(log))] == [(1, 0.5), (2, 0.2), (3, 0.1), (4, 0.05)]
    plot_losses(str(log), str(tmp_path / "loss.png"))
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_coordinates_widen_an_init_unet_and_the_model_generates(tmp_path):
    from glassdiff.pipeline import Pipeline

    first = str(tmp_path / "first")
    train_denoiser(DenoiserTrainConfig(out=first, steps=1, **TINY))
    out = str(tmp_path / "coords")
    train_denoiser(DenoiserTrainConfig(out=out, steps=2, init=os.path.join(first, "model"), coordinates=True, **TINY))
    pipe = Pipeline.load(os.path.join(out, "model"))
    assert pipe.unet.config.in_channels == pipe.unet.config.out_channels + 2
    assert pipe.unet.conv_in.weight[:, -2:].abs().sum() > 0  # two steps taught the new planes something
    assert pipe("a red circle in the top left", seed=0, steps=2).images[0].size == (16, 16)


# what makes the 3-hour CPU recipe a miniature: later flags win over the Makefile's
MINIATURE = {"autoencoder": ["--steps", "2", "--examples", "16", "--batch", "4"],
             "denoiser": ["--steps", "3", "--captions", "8", "--batch", "4", "--warmup", "1",
                          "--checkpoint-every", "1000",
                          "--sample-every", "1000"]}


def recipe_commands(target: str, run: str) -> list[list[str]]:
    """The commands `make TARGET CPU_RUN=run` runs, each as its words, continuation lines joined."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    printed = subprocess.run(["make", "-s", "-n", "-C", root, target, f"CPU_RUN={run}"], capture_output=True,
                             text=True, check=True).stdout.replace("\\\n", " ")
    return [line.split() for line in printed.splitlines() if "glassdiff.train" in line or "glassdiff train" in line]


def test_the_cpu_recipe_runs_in_miniature_and_ships_a_small_unet_with_its_fine_tuned_decoder(tmp_path):
    from safetensors.torch import load_file

    from glassdiff.pipeline import Pipeline
    from glassdiff.train.__main__ import main as train_main
    from glassdiff.train.ship import ship

    run = str(tmp_path / "cpu")
    commands = recipe_commands("cpu-model", run)
    assert [words[2] if words[1] == "train" else words[-3:] for words in commands] == [
        "autoencoder", "autoencoder", "denoiser", [f"{run}/denoiser/model", f"{run}/model", f"{run}/ae_dec/vae"]]
    for words in commands[:-1]:
        assert "--resume" in words  # a killed recipe, run again, goes on where it stopped
        assert train_main(words[2:] + MINIATURE[words[2]]) == 0
    ship(*commands[-1][-3:])
    pipe = Pipeline.load(f"{run}/model")
    assert pipe.unet.config.block_out_channels == [48, 96, 160] and pipe.unet.config.in_channels == 10
    decoder = {k: v for k, v in load_file(f"{run}/ae_dec/vae/diffusion_pytorch_model.safetensors").items()
               if k.startswith("decoder.")}
    assert all(torch.equal(v.half().float(), pipe.vae.state_dict()[k]) for k, v in decoder.items())
    assert pipe("two red circles", seed=0, steps=3).images[0].size == (64, 64)


def test_a_recoloured_pair_keeps_shapes_and_places_and_its_caption_states_the_new_colours():
    import random

    from glassdiff.evaluate.detect import detect
    from glassdiff.train.data import recolor_examples
    from glassdiff.world import scene_from_spec
    from glassdiff.world.scene import recolored

    rng = random.Random(5)
    spec = {"include": [{"class": "star", "count": 2, "color": "green"}, {"class": "circle", "count": 1,
                                                                           "color": "pink"}]}
    for _ in range(20):
        scene = scene_from_spec(spec, rng)
        new_spec, new_scene = recolored(spec, scene, rng)
        assert [(o.shape, o.cx, o.cy, o.span) for o in new_scene.objects] == \
            [(o.shape, o.cx, o.cy, o.span) for o in scene.objects]
        assert [e["color"] for e in new_spec["include"]] != ["green", "pink"]
        stars = {o.color for o in new_scene.objects if o.shape == "star"}
        assert stars == {new_spec["include"][0]["color"]}  # the copies of one entry change together
    captions, images, sources = recolor_examples(8, 0, 64)
    for text, image, source in zip(captions, images, sources):
        seen = detect(image).objects
        assert {o.color for o in seen} <= {c for c in COLORS if c in text}, text
        assert sorted(o.shape for o in seen) == sorted(o.shape for o in detect(source).objects)
        assert {o.color for o in seen} != {o.color for o in detect(source).objects}


def test_a_recoloured_pair_is_noised_from_its_first_scene_towards_its_captions():
    from glassdiff.train.denoiser import RECOLOR_MIN_T, _recolor_starts

    x0 = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 2, 2, 2).clone()
    cache = {"source_of": torch.tensor([-1, -1, 0, 1]), "sources": torch.full((2, 2, 2, 2), -7.0)}
    idx, t = torch.tensor([0, 2, 3, 1]), torch.tensor([0, 0, 500, 999])
    drop = torch.tensor([False, False, True, False])
    x_start, x_goal, moved = _recolor_starts(cache, idx, x0, t, drop, 1000)
    assert x_start[:, 0, 0, 0].tolist() == [0, -7, -7, 3]  # pairs start from their first scene
    assert x_goal[:, 0, 0, 0].tolist() == [0, 1, -7, 3]  # towards the caption's scene; dropped: the picture itself
    assert moved.tolist() == [0, int(RECOLOR_MIN_T * 1000), 650, 999]
    start, goal, same = _recolor_starts({"latents": x0}, idx, x0, t, drop, 1000)
    assert start is x0 and goal is x0 and same is t


def test_trainable_cross_attention_moves_only_the_cross_attention_weights(tmp_path):
    first = str(tmp_path / "first")
    train_denoiser(DenoiserTrainConfig(out=first, steps=1, **TINY))
    init = os.path.join(first, "model")
    before = final_unet(first)
    tuned = str(tmp_path / "tuned")
    train_denoiser(DenoiserTrainConfig(out=tuned, steps=3, init=init, trainable="cross-attention", lr=1e-2,
                                       warmup=1, ema_decay=0.5, **TINY))
    after = final_unet(tuned)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(".attn2." in k for k in moved)
    assert any(k.endswith("attn2.to_k.weight") for k in moved)
    with pytest.raises(BadInput, match="--trainable"):
        DenoiserTrainConfig(trainable="decoder", **TINY)


def test_ship_installs_a_second_unet_for_image_to_image_in_fp16(tmp_path):
    from glassdiff.pipeline import IMG2IMG_UNET, Pipeline
    from glassdiff.train.ship import ship

    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    train_denoiser(DenoiserTrainConfig(out=first, steps=1, **TINY))
    train_denoiser(DenoiserTrainConfig(out=second, steps=2, **{**TINY, "seed": 4}))
    target = str(tmp_path / "shipped")
    ship(os.path.join(first, "model"), target, img2img=os.path.join(second, "model"))
    shipped = Pipeline.load(target)
    assert os.path.isdir(os.path.join(target, IMG2IMG_UNET))
    for unet, run in ((shipped.unet, first), (shipped.img2img_unet, second)):
        trained = final_unet(run)
        assert all(torch.equal(v.half().float(), unet.state_dict()[k]) for k, v in trained.items())
