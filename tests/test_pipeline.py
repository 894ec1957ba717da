"""The pipeline on a tiny random model: determinism, observers, save/load, parity with diffusers."""

import numpy as np
import pytest
import torch

from glassdiff.config import COORDINATE_CHANNELS, BadInput
from glassdiff.pipeline import Pipeline
from glassdiff.sampling import TrajectoryRecorder


def pixels(result):
    return np.stack([np.asarray(im) for im in result.images])


def test_same_seed_same_image_with_or_without_observers(tiny_pipe):
    seen = []
    plain = tiny_pipe("a red circle", seed=3, steps=4)
    watched = tiny_pipe("a red circle", seed=3, steps=4, observers=(seen.append,), trace=True)
    assert np.array_equal(pixels(plain), pixels(watched))
    assert torch.equal(plain.latents, watched.latents)
    assert len(seen) == 4 and len(watched.trace) == 4
    other = tiny_pipe("a red circle", seed=4, steps=4)
    assert not torch.equal(plain.latents, other.latents)


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "euler_a", "lms"])
def test_an_observer_that_scribbles_on_its_records_changes_nothing(tiny_pipe, sampler):
    def scribble(record):
        for tensor in (record.x_t, record.eps_cond, record.eps_uncond, record.eps, record.x0_pred, record.x_next):
            tensor.fill_(7.0)

    plain = tiny_pipe("a red circle", seed=3, steps=4, sampler=sampler)
    scribbled = tiny_pipe("a red circle", seed=3, steps=4, sampler=sampler, observers=(scribble,))
    assert np.array_equal(pixels(plain), pixels(scribbled))


def test_batch_images_equal_single_runs_of_their_seeds(tiny_pipe):
    batch = tiny_pipe("two blue squares", seed=10, batch=3, steps=3, sampler="euler_a")
    single = tiny_pipe("two blue squares", seed=11, steps=3, sampler="euler_a")
    # oneDNN picks its convolution kernels by batch size: equal up to float rounding, not bit for bit
    torch.testing.assert_close(batch.latents[1:2], single.latents, atol=2e-4, rtol=1e-4)
    assert batch.seeds == [10, 11, 12]


def test_infotext_follows_a1111_layout(tiny_pipe):
    result = tiny_pipe("a star", seed=2, steps=3, negative="blurry")
    lines = result.infotexts[0].split("\n")
    assert lines[0] == "a star"
    assert lines[1] == "Negative prompt: blurry"
    assert lines[2].startswith("Steps: 3, Sampler: dpmpp_2m, CFG scale: 4.0, Seed: 2, Size: 16x16, Layout: 0.33, "
                               "Model hash: ")


def test_save_load_round_trip_is_exact(tiny_pipe, tiny_model_dir):
    loaded = Pipeline.load(tiny_model_dir)
    for a, b in ((tiny_pipe.unet, loaded.unet), (tiny_pipe.vae, loaded.vae)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert loaded.model_hash == tiny_pipe.model_hash
    assert np.array_equal(pixels(tiny_pipe("a heart", steps=3)), pixels(loaded("a heart", steps=3)))


def test_diffusers_reads_our_subfolders(tiny_pipe, tiny_model_dir):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(tiny_model_dir, subfolder="vae")
    scheduler = DDPMScheduler.from_pretrained(tiny_model_dir, subfolder="scheduler")
    assert scheduler.config.prediction_type == "v_prediction"
    for ours, theirs in ((tiny_pipe.unet, unet), (tiny_pipe.vae, vae)):
        assert all(torch.equal(ours.state_dict()[k], v) for k, v in theirs.state_dict().items())


@pytest.fixture(scope="module")
def coordinate_pipe(tiny_pipe):
    """tiny_pipe's UNet taking the x and y planes too, with weights on them that change its output."""
    from glassdiff.denoiser import add_coordinate_inputs

    unet = add_coordinate_inputs(tiny_pipe.unet)
    with torch.no_grad():
        planes_weight = unet.conv_in.weight[:, -2:]
        planes_weight.copy_(torch.randn(planes_weight.shape, generator=torch.Generator().manual_seed(0)))
    return Pipeline(unet.eval(), tiny_pipe.vae, tiny_pipe.text_encoder, tiny_pipe.scheduler_config)


@pytest.mark.parametrize("sampler,coordinates", [("ddim", False), ("euler", False), ("dpmpp_2m", False),
                                                 ("dpmpp_2m", True)])
def test_matches_diffusers_stable_diffusion_pipeline(tiny_pipe, coordinate_pipe, sampler, coordinates):
    """diffusers as the benchmark runs it (bench._reference): same weights, same image."""
    from glassdiff.bench import _reference

    pipe = coordinate_pipe if coordinates else tiny_pipe
    prompt, seed, steps, guidance = "a green triangle in the top left", 7, 6, 3.0
    ours = pipe(prompt, seed=seed, steps=steps, guidance=guidance, sampler=sampler)
    encoded = pipe.text_encoder([prompt, ""])
    theirs = _reference(pipe, sampler)(prompt_embeds=encoded.context[:1], negative_prompt_embeds=encoded.context[1:],
                                       num_inference_steps=steps, guidance_scale=guidance, height=16, width=16,
                                       generator=torch.Generator().manual_seed(seed), output_type="np").images
    ours_01 = pixels(ours).astype(np.float64) / 255
    # ours is rounded to 8 bits; compare unrounded pixels through our own decode too
    ours_float = ((pipe.vae.decode(ours.latents / pipe.vae.config.scaling_factor).sample / 2 + 0.5)
                  .clamp(0, 1).permute(0, 2, 3, 1).detach().numpy())
    assert np.abs(ours_float - theirs).max() < 1e-4
    assert np.abs(ours_01 - theirs).max() <= 0.5 / 255 + 1e-4


def test_trace_records_every_step_with_shapes(tiny_pipe):
    recorder = TrajectoryRecorder()
    result = tiny_pipe("a cross", steps=5, observers=(recorder,))
    assert [r.index for r in recorder.records] == list(range(5))
    last = recorder.records[-1]
    assert last.x_t.shape == last.x0_pred.shape == last.eps_cond.shape == (1, 8, 8, 8)
    assert torch.equal(last.x_next, result.latents)
    assert recorder.records[0].sigma > recorder.records[-1].sigma


def test_several_prompts_in_one_batch_match_single_runs(tiny_pipe):
    both = tiny_pipe(["a red circle", "two blue squares"], seed=1, batch=2, steps=3)
    alone = tiny_pipe("two blue squares", seed=1, batch=2, steps=3)
    assert len(both.images) == 4
    torch.testing.assert_close(both.latents[2:], alone.latents, atol=1e-5, rtol=1e-5)
    assert both.infotexts[2].startswith("two blue squares\n")


def test_guidance_sweep_in_one_loop_matches_runs_at_each_scale(tiny_pipe):
    scales = [0.0, 1.0, 7.5]
    swept = tiny_pipe(["a heart"] * 3, seed=4, steps=3, scales=scales)
    for k, s in enumerate(scales):
        alone = tiny_pipe("a heart", seed=4, steps=3, guidance=s)
        torch.testing.assert_close(swept.latents[k:k + 1], alone.latents, atol=1e-5, rtol=1e-5)
        assert f"CFG scale: {s}," in swept.infotexts[k]
    with pytest.raises(BadInput, match="one per image"):
        tiny_pipe("a heart", steps=2, scales=[1.0, 2.0])


def test_attention_recording_leaves_the_image_unchanged(tiny_pipe):
    plain = tiny_pipe("a red star in the top left", seed=2, steps=4)
    recorded = tiny_pipe("a red star in the top left", seed=2, steps=4, attention=True)
    assert torch.equal(plain.latents, recorded.latents)
    maps = recorded.attention
    assert len(maps.per_step) == 4
    words = [w for w, _ in maps.word_maps()]
    assert words == ["a", "red", "star", "in", "the", "top", "left"]
    for _, m in maps.word_maps():
        assert m.shape == (8, 8) and float(m.max()) == pytest.approx(1.0)
    # processors restored
    assert all(type(p).__name__ != "_RecordingProcessor" for p in tiny_pipe.unet.attn_processors.values())


def test_coordinate_planes_run_left_to_right_and_top_to_bottom():
    from glassdiff.denoiser import unet_input

    latents = torch.zeros(2, 4, 3, 5)
    planes = unet_input(latents, 6)[:, 4:]
    assert planes.shape == (2, 2, 3, 5)
    assert torch.equal(planes[0, 0, 1], torch.linspace(-1, 1, 5))  # x along a row
    assert torch.equal(planes[0, 1, :, 2], torch.linspace(-1, 1, 3))  # y down a column
    assert unet_input(latents, 4) is latents
    with pytest.raises(ValueError, match="input channels"):
        unet_input(latents, 9)  # an inpainting UNet's layout: not ours


def test_adding_coordinate_inputs_keeps_what_the_unet_computes(tiny_pipe, coordinate_pipe):
    from glassdiff.denoiser import Denoiser, add_coordinate_inputs

    x, t = torch.randn(2, tiny_pipe.unet.config.out_channels, 8, 8), torch.tensor([10, 900])
    context = tiny_pipe.text_encoder(["a red circle", "a blue star"]).context
    with torch.no_grad():
        before = Denoiser(tiny_pipe.unet)(x, t, context)
        widened = add_coordinate_inputs(tiny_pipe.unet).eval()
        assert widened.config.in_channels == tiny_pipe.unet.config.in_channels + COORDINATE_CHANNELS
        # the widened conv_in may get another oneDNN kernel: equal up to float rounding
        torch.testing.assert_close(Denoiser(widened)(x, t, context), before, rtol=0, atol=1e-5)
        assert not torch.allclose(Denoiser(coordinate_pipe.unet)(x, t, context), before)


def test_the_sampling_config_flows_into_the_pipeline_and_names_override_it(tiny_pipe):
    import dataclasses

    from glassdiff.config import SamplingConfig

    cfg = SamplingConfig(steps=4, guidance=3.0, seed=7, sampler="euler", layout=0.0)
    by_object = tiny_pipe("a red star", cfg)
    assert by_object.config == cfg
    assert by_object.latents.equal(tiny_pipe("a red star", **dataclasses.asdict(cfg)).latents)
    fewer = tiny_pipe("a red star", cfg, steps=3)
    assert fewer.config == dataclasses.replace(cfg, steps=3) and not fewer.latents.equal(by_object.latents)
