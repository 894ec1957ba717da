"""The fast path (engine.py): ONNX Runtime's UNet against PyTorch's, the reference, on the same weights."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from glassdiff.config import SamplingConfig
from glassdiff.denoiser import Denoiser
from glassdiff.sampling import TrajectoryRecorder


def on_engine(engine, tiny_model_dir, tmp_path, monkeypatch):
    """The tiny model on `engine`, converting into a cache of its own."""
    from glassdiff.pipeline import Pipeline

    monkeypatch.setenv("GLASSDIFF_CACHE", str(tmp_path / "cache"))
    pipe = Pipeline.load(tiny_model_dir)
    pipe.engine = engine
    return pipe


@pytest.fixture()
def fast(tiny_model_dir, tmp_path, monkeypatch):
    return on_engine("onnx", tiny_model_dir, tmp_path, monkeypatch)


@pytest.fixture()
def reference(tiny_model_dir):
    from glassdiff.pipeline import Pipeline

    pipe = Pipeline.load(tiny_model_dir)
    pipe.engine = "torch"
    return pipe


@pytest.mark.parametrize("batch, side, tokens", [(2, 8, 16), (5, 16, 9), (1, 4, 30)])
def test_the_onnx_unet_computes_what_pytorchs_does_at_any_batch_size_and_length(fast, batch, side, tokens):
    from glassdiff.engine import OnnxDenoiser

    denoise = fast.denoiser()
    assert isinstance(denoise, OnnxDenoiser)
    x = torch.randn(batch, fast.unet.config.out_channels, side, side, generator=torch.Generator().manual_seed(batch))
    t = torch.tensor([999, 500, 3, 250, 700][:batch])
    context = torch.randn(batch, tokens, fast.text_encoder.dim, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = Denoiser(fast.unet)(x, t, context)
    torch.testing.assert_close(denoise(x, t, context), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("settings", [dict(sampler="dpmpp_2m"), dict(sampler="euler_a", batch=3),
                                      dict(sampler="ddim", guidance=0.0), dict(sampler="lms", width=32, height=16)])
@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_images_on_the_fast_path_are_the_references_within_one_level(engine, tiny_model_dir, tmp_path, monkeypatch,
                                                                      reference, settings):
    fast = on_engine(engine, tiny_model_dir, tmp_path, monkeypatch)
    cfg = SamplingConfig(steps=6, seed=4, **settings)
    for prompt in ("a red star left of a blue heart", "three circles"):  # planned: regions batch their own rows
        ours, theirs = fast(prompt, cfg), reference(prompt, cfg)
        for a, b in zip(ours.images, theirs.images):
            assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1


@pytest.mark.parametrize("engine", ["onnx", "openvino"])
def test_step_records_on_the_fast_path_hold_the_fast_unets_outputs(engine, tiny_model_dir, tmp_path, monkeypatch,
                                                                    reference):
    fast = on_engine(engine, tiny_model_dir, tmp_path, monkeypatch)
    records = {}
    for name, pipe in (("fast", fast), ("reference", reference)):
        recorder = TrajectoryRecorder()
        pipe("a blue square", steps=5, seed=2, observers=(recorder,))
        records[name] = recorder.records
    for ours, theirs in zip(records["fast"], records["reference"]):
        for key in ("eps_cond", "eps_uncond", "eps", "x0_pred", "x_next"):
            torch.testing.assert_close(getattr(ours, key), getattr(theirs, key), atol=1e-4, rtol=1e-3)
        guided = ours.eps_uncond + 4.0 * (ours.eps_cond - ours.eps_uncond)  # the record is self-consistent
        torch.testing.assert_close(ours.eps, guided, atol=1e-5, rtol=1e-5)


def test_the_export_is_cached_once_per_model_and_read_back(fast, tiny_model_dir):
    from glassdiff.engine import cached_path
    from glassdiff.pipeline import Pipeline

    fast("a star", steps=2)
    path = cached_path("onnx", fast.model_hash)
    made = os.stat(path).st_mtime_ns
    again = Pipeline.load(tiny_model_dir)
    again.engine = "onnx"
    again("a star", steps=2)
    assert os.stat(path).st_mtime_ns == made
    assert [name for name in os.listdir(os.path.dirname(path)) if name.startswith(".tmp")] == []


@pytest.mark.parametrize("engine, converter, name", [("onnx", "export_unet", "ONNX Runtime"),
                                                     ("openvino", "export_openvino", "OpenVINO")])
def test_a_failed_conversion_falls_back_to_pytorch_with_a_notice(tiny_model_dir, tmp_path, reference, monkeypatch,
                                                                 engine, converter, name):
    import glassdiff.engine

    def broken(*args, **kwargs):
        raise RuntimeError("no converter here")

    monkeypatch.setattr(glassdiff.engine, converter, broken)
    pipe = on_engine(engine, tiny_model_dir, tmp_path, monkeypatch)
    with pytest.warns(Warning, match=f"{name} UNet is not available.*no converter here"):
        result = pipe("a star", steps=3, seed=1)
    assert result.latents.equal(reference("a star", steps=3, seed=1).latents)


def test_the_explainer_runs_the_reference_and_says_so(fast):
    from glassdiff.explain.report import build_report

    page, _ = build_report(fast, "a star", SamplingConfig(steps=4), sweep_steps=4)
    assert "This report ran PyTorch's UNet, the reference path" in page


def test_the_command_line_chooses_the_engine_and_refuses_an_unknown_one(tiny_model_dir, tmp_path, monkeypatch,
                                                                        capsys):
    from glassdiff.cli import main

    monkeypatch.setenv("GLASSDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    common = ["generate", "a red star", "--model", tiny_model_dir, "--steps", "4", "-q"]
    assert main([*common, "-o", "fast.png", "--engine", "onnx"]) == 0
    assert main([*common, "-o", "reference.png", "--engine", "torch"]) == 0
    fast_pixels, reference_pixels = (np.asarray(Image.open(name), dtype=int) for name in ("fast.png", "reference.png"))
    assert np.abs(fast_pixels - reference_pixels).max() <= 1
    assert os.listdir(tmp_path / "cache" / "onnx")
    monkeypatch.delenv("GLASSDIFF_ENGINE", raising=False)
    assert main([*common, "-o", "auto.png"]) == 0  # one call: auto takes ONNX Runtime, which compiles no shapes
    assert sorted(os.listdir(tmp_path / "cache")) == ["onnx"]
    assert main([*common, "-o", "x.png", "--engine", "tensorrt"]) == 2
    monkeypatch.setenv("GLASSDIFF_ENGINE", "fastest")
    assert main([*common, "-o", "x.png"]) == 2
    err = capsys.readouterr().err
    assert "unknown engine 'fastest'" in err and not (tmp_path / "x.png").exists()


def test_stable_diffusion_models_run_on_pytorch(monkeypatch):
    from glassdiff.config import BadInput
    from glassdiff.engine import chosen_engine

    assert chosen_engine("auto", own_model=False) == "torch"
    monkeypatch.delenv("GLASSDIFF_ENGINE", raising=False)
    assert chosen_engine("auto", own_model=True) == "openvino"  # the fastest a step
    assert chosen_engine("auto", own_model=True, one_shot=True) == "onnx"  # no compiling for each shape
    monkeypatch.setenv("GLASSDIFF_ENGINE", "onnx")  # a preference: a Stable Diffusion model passes over it
    assert chosen_engine("auto", own_model=False) == "torch" and chosen_engine("auto", own_model=True) == "onnx"
    with pytest.raises(BadInput, match="runs glassdiff's own models"):
        chosen_engine("onnx", own_model=False)


# ---------- OpenVINO: any model, Stable Diffusion's included ----------

@pytest.fixture()
def on_openvino(tiny_model_dir, tmp_path, monkeypatch):
    return on_engine("openvino", tiny_model_dir, tmp_path, monkeypatch)


@pytest.mark.parametrize("batch, side, tokens", [(2, 8, 16), (3, 4, 30)])
@pytest.mark.parametrize("per_shape", [True, False])
def test_the_openvino_unet_computes_what_pytorchs_does_at_any_shape(on_openvino, batch, side, tokens, per_shape,
                                                                     monkeypatch):
    import glassdiff.engine
    from glassdiff.engine import OpenVinoDenoiser

    if not per_shape:  # compiled once for any shape, as a UNet as large as SD's is
        monkeypatch.setattr(glassdiff.engine, "PER_SHAPE_BYTES", 0)
    denoise = on_openvino.denoiser()
    assert isinstance(denoise, OpenVinoDenoiser) and denoise.per_shape == per_shape
    x = torch.randn(batch, on_openvino.unet.config.out_channels, side, side, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([999, 40, 600][:batch])
    context = torch.randn(batch, tokens, on_openvino.text_encoder.dim, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = Denoiser(on_openvino.unet)(x, t, context)
    first = denoise(x, t, context)
    denoise(x.flip(0), t, context)  # the request's next call must not change what the first returned
    torch.testing.assert_close(first, expected, atol=1e-4, rtol=1e-4)
    assert len(denoise.requests) == 1  # one compiled for this shape (or for any), used again


def test_images_on_openvino_are_the_references_within_one_level(on_openvino, reference):
    cfg = SamplingConfig(steps=6, seed=2, sampler="euler_a", batch=2)
    for prompt in ("a red star left of a blue heart", "a green circle"):
        for a, b in zip(on_openvino(prompt, cfg).images, reference(prompt, cfg).images):
            assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from sd_tiny import build_sd

    return build_sd(str(tmp_path_factory.mktemp("sd") / "v"), v_prediction=True)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One conversion cache for the sampler tests: the tiny model is converted once."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("sampler", ("ddpm", "ddim", "euler", "euler_a", "dpmpp_2m", "unipc", "lms"))
def test_a_stable_diffusion_model_on_openvino_draws_pytorchs_pixels_with_every_sampler(tiny_sd, sampler, shared_cache,
                                                                                       monkeypatch):
    from glassdiff.pipeline import Pipeline

    monkeypatch.setenv("GLASSDIFF_CACHE", str(shared_cache))
    pipe = Pipeline.load(tiny_sd)
    cfg = SamplingConfig(steps=5, seed=7, sampler=sampler, guidance=5.0, negative="blurry", layout=0.0)
    theirs = pipe("a red cat on a mat", cfg).images
    pipe.engine = "openvino"
    assert pipe.engine_in_use() == "openvino"
    for a, b in zip(pipe("a red cat on a mat", cfg).images, theirs):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1


def test_the_command_line_runs_a_stable_diffusion_model_on_openvino(tiny_sd, tmp_path, monkeypatch, capsys):
    from glassdiff.cli import main

    monkeypatch.setenv("GLASSDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    common = ["generate", "a dog", "--model", tiny_sd, "--steps", "3", "-q", "--width", "16", "--height", "16"]
    assert main([*common, "-o", "fast.png", "--engine", "openvino"]) == 0
    assert main([*common, "-o", "reference.png", "--engine", "torch"]) == 0
    fast_pixels, reference_pixels = (np.asarray(Image.open(name), dtype=int) for name in ("fast.png", "reference.png"))
    assert np.abs(fast_pixels - reference_pixels).max() <= 1
    cached = sorted(os.listdir(tmp_path / "cache" / "openvino"))
    assert [name.rsplit(".", 1)[1] for name in cached] == ["bin", "xml"]  # nothing half-written left beside them


def test_an_engine_that_is_not_installed_is_one_line(monkeypatch):
    import glassdiff.engine
    from glassdiff.config import BadInput

    assert glassdiff.engine.chosen_engine("openvino", own_model=False) == "openvino"
    monkeypatch.setattr(glassdiff.engine, "installed", lambda engine: engine == "torch")
    with pytest.raises(BadInput, match="--engine openvino needs openvino: pip install openvino"):
        glassdiff.engine.chosen_engine("openvino", own_model=True)
    assert glassdiff.engine.chosen_engine("auto", own_model=True) == "torch"
    monkeypatch.setattr(glassdiff.engine, "installed", lambda engine: engine in ("torch", "onnx"))
    monkeypatch.delenv("GLASSDIFF_ENGINE", raising=False)
    assert glassdiff.engine.chosen_engine("auto", own_model=True) == "onnx"  # OpenVINO missing: the next fastest


def test_sd_flops_are_counted_from_shapes_and_grow_with_the_latent():
    from glassdiff.bench import sd_step_flops

    small, large = sd_step_flops(256), sd_step_flops(512)
    assert 0.3e12 < small < 0.4e12  # convolutions grow 4x with the area, self-attention faster
    assert 4.0 < large / small < 5.0
