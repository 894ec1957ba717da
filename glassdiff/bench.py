"""Benchmarks that print a ratio against a baseline measured in the same run.

1. end-to-end generation: diffusers' StableDiffusionPipeline on the same UNet,
   VAE and scheduler (fed our text embeddings, whose cost is added to its
   time) against glassdiff (its fast path, the engine `glassdiff generate`
   picks, and its reference path: PyTorch's UNet), same seed and steps,
   interleaved, median of N: one prompt, and 16 prompts in one call; then the
   fast paths' one-off costs;
2. peak memory of one generation in a fresh process, ours against diffusers';
3. the explainer: building a report against the generation alone (same
   prompt, seed and steps), interleaved, median of N, and the report's size;
4. layout planning: a two-object prompt and a counting prompt, each with its
   default layout against the same prompt with --layout 0, interleaved, median of N;
5. start-up: `glassdiff --help`, a bad-input error and `glassdiff info`, launch to exit, beside
   `python -c pass` and `python -c "import torch"`, interleaved, median of N;
6. the server: /sdapi/v1/txt2img against the same generation in-process, and the time to the page's first
   preview, interleaved, median of N.
`glassdiff bench --sd` measures SD 1.5's architecture instead (random weights, built locally).
The first compares the same work: glassdiff with --layout 0, as diffusers has no
layout (the benchmark's prompt names two copies and an object, so it is planned).
Timings on a shared machine are noisy: only the ratio of one run means much.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from .config import SamplingConfig

PROMPT = "two blue squares above a red circle"
LAYOUT_PROMPTS = ("a star left of a heart", "four circles")  # planned: two regions, four
STEPS = SamplingConfig().steps  # the default


def _pipeline():
    from .pipeline import WEIGHTS_DIR, Pipeline

    if os.path.exists(os.path.join(WEIGHTS_DIR, "model_index.json")):
        return Pipeline.default(), "embedded default model"
    from .autoencoder import build_autoencoder
    from .config import autoencoder_preset, scheduler_preset, unet_preset
    from .denoiser import build_unet
    from .text import TextEncoder

    torch.manual_seed(0)
    text = TextEncoder()
    return Pipeline(build_unet(unet_preset("shapes64", text.dim)), build_autoencoder(autoencoder_preset()), text,
                    scheduler_preset()), "random weights, default preset"


def _reference(pipe, sampler: str, copy_weights: bool = True):
    """diffusers as a user runs it: the same weights, in PyTorch's default (NCHW) layout.

    copy_weights=False converts pipe's own modules instead (for a process that measures diffusers alone).
    """
    import copy

    from diffusers import StableDiffusionPipeline

    from .schedulers import make_scheduler

    unet, vae = ((copy.deepcopy(m) if copy_weights else m).to(memory_format=torch.contiguous_format)
                 for m in (pipe.unet, pipe.vae))
    if unet.config.in_channels != unet.config.out_channels:
        unet = _WithCoordinates(unet)
    reference = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet,
                                        scheduler=make_scheduler(sampler, pipe.scheduler_config),
                                        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    reference.set_progress_bar_config(disable=True)
    return reference


class _WithCoordinates(torch.nn.Module):
    """A coordinate-taking UNet as diffusers' pipeline calls it: bare latents in, coordinate planes appended."""

    def __init__(self, unet):
        from diffusers.configuration_utils import FrozenDict

        super().__init__()
        self.unet = unet
        self.config = FrozenDict({**unet.config, "in_channels": unet.config.out_channels})
        self.dtype, self.device = unet.dtype, unet.device

    def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
        from .denoiser import unet_input

        sample = unet_input(sample, self.unet.config.in_channels)
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, **kwargs)


BATCH_PROMPTS = ("a red star", "two blue squares", "a green heart above a yellow circle", "three triangles",
                 "a purple cross on the left", "a small orange circle", "a white square below a black star",
                 "four hearts", "a large blue triangle", "a pink circle right of a gray square", "two red crosses",
                 "a brown star in the top left", "a yellow heart", "a green square left of a red circle",
                 "three blue stars", "a black circle at the bottom")  # 16 prompts, as eval and the server batch them


def time_generation(repeats: int = 7, steps: int = STEPS, guidance: float = 4.0, sampler: str = "dpmpp_2m",
                    prompts: tuple[str, ...] = (PROMPT,)) -> dict:
    """glassdiff's fast path and its reference path (PyTorch's UNet) against diffusers' pipeline, same weights, one
    call for all `prompts`; images per second."""
    pipe, what = _pipeline()
    reference_engine, one_shot = copy.copy(pipe), copy.copy(pipe)
    reference_engine.engine = "torch"
    one_shot.one_shot = True  # the engine `glassdiff generate` runs (engine.chosen_engine)
    diffusers_pipe = _reference(pipe, sampler)
    size = pipe.native_size
    cfg = SamplingConfig(seed=0, steps=steps, guidance=guidance, sampler=sampler, layout=0.0)

    def theirs():
        with torch.no_grad():
            encoded = pipe.text_encoder(list(prompts) + [""])
            diffusers_pipe(prompt_embeds=encoded.context[:-1],
                           negative_prompt_embeds=encoded.context[-1:].expand(len(prompts), -1, -1),
                           num_inference_steps=steps, guidance_scale=guidance, height=size, width=size,
                           generator=[torch.Generator().manual_seed(0) for _ in prompts], output_type="pil")

    medians = _interleaved({"glassdiff": lambda: pipe(list(prompts), cfg),
                            "reference": lambda: reference_engine(list(prompts), cfg),
                            "one_shot": lambda: one_shot(list(prompts), cfg), "diffusers": theirs}, repeats)
    return {"name": f"generation, {len(prompts)} prompt(s) in one call", "model": what, "size": size, "steps": steps,
            "sampler": sampler, "threads": torch.get_num_threads(), "engine": _engine(pipe),
            "one_shot_engine": _engine(one_shot), "one_shot_s": medians["one_shot"],
            "glassdiff_s": medians["glassdiff"], "reference_s": medians["reference"],
            "diffusers_s": medians["diffusers"], "images_per_s": len(prompts) / medians["glassdiff"],
            "ratio": medians["diffusers"] / medians["glassdiff"],
            "ratio_means": "diffusers time / glassdiff time (>1: glassdiff faster)",
            "engine_ratio": medians["reference"] / medians["glassdiff"]}


def _engine(pipe) -> str:
    from .denoiser import Denoiser

    return "torch" if isinstance(pipe.denoiser(), Denoiser) else pipe.engine_in_use()


def time_export() -> dict:
    """The fast paths' one-off costs: exporting the UNet to ONNX (into a fresh cache), the file it leaves, and the
    time to load it in a new session; the same for OpenVINO, whose load is compiling for one shape (a guided
    step's at the native size) and its first step."""
    from .engine import OnnxDenoiser, OpenVinoDenoiser, cached_path, export_openvino, export_unet

    pipe, what = _pipeline()
    context = (pipe.text_encoder.max_length, pipe.text_encoder.dim)
    example = (torch.randn(2, pipe.unet.config.out_channels, pipe.unet.config.sample_size,
                           pipe.unet.config.sample_size), torch.full((2,), 500.0), torch.randn(2, *context))
    costs = {}
    for engine, export, runner in (("onnx", export_unet, OnnxDenoiser), ("openvino", export_openvino,
                                                                           OpenVinoDenoiser)):
        with tempfile.TemporaryDirectory() as cache:
            path = os.path.join(cache, os.path.basename(cached_path(engine, pipe.model_hash)))
            t0 = time.perf_counter()
            export(pipe.unet, path, pipe.unet.config.sample_size, context)
            export_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            denoise = runner(path, pipe.unet.config.in_channels)
            if engine == "openvino":
                denoise(*example)
            costs[engine] = {"export_s": export_s, "load_s": time.perf_counter() - t0,
                             "cache_mb": sum(os.path.getsize(os.path.join(cache, n)) for n in os.listdir(cache))
                             / 2**20}
    return {"name": "fast paths, one-off cost", "model": what, "engines": costs}


_MEMORY_CHILD = """
import resource, sys, torch
from glassdiff.bench import _pipeline, _reference, PROMPT, STEPS
pipe, _ = _pipeline()
if sys.argv[1] == "glassdiff":
    pipe(PROMPT, seed=0, layout=0.0)
else:
    ref = _reference(pipe, "dpmpp_2m", copy_weights=False)
    with torch.no_grad():
        enc = pipe.text_encoder([PROMPT, ""])
        ref(prompt_embeds=enc.context[:1], negative_prompt_embeds=enc.context[1:], num_inference_steps=STEPS,
            guidance_scale=4.0, height=pipe.native_size, width=pipe.native_size,
            generator=torch.Generator().manual_seed(0))
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def peak_memory() -> dict:
    """Peak resident memory (MB) of a fresh process that loads the model and makes one image (its VmHWM: getrusage's
    ru_maxrss would count the parent's size at the fork)."""
    peaks = {}
    for name in ("glassdiff", "diffusers"):
        out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, name], capture_output=True, text=True, check=True)
        peaks[name] = int(out.stdout.strip().splitlines()[-1]) / 1024
    return {"name": "peak memory, one image (fresh process)", "glassdiff_mb": peaks["glassdiff"],
            "diffusers_mb": peaks["diffusers"], "ratio": peaks["diffusers"] / peaks["glassdiff"],
            "ratio_means": "diffusers peak / glassdiff peak (>1: glassdiff smaller)"}


def time_report(repeats: int = 5, steps: int = 20) -> dict:
    from .explain.report import build_report

    pipe, what = _pipeline()
    prompt, cfg = "a red star in the top left", SamplingConfig(steps=steps, guidance=4.0, sampler="dpmpp_2m", seed=0)
    pages = []

    def report():
        pages.append(build_report(pipe, prompt, cfg)[0])

    medians = _interleaved({"generation": lambda: pipe(prompt, cfg), "report": report}, repeats)
    generation_s, report_s = medians["generation"], medians["report"]
    return {"name": "explainer report against the generation alone", "model": what, "steps": steps,
            "generation_s": generation_s, "report_s": report_s, "ratio": report_s / generation_s,
            "report_mb": len(pages[-1].encode()) / 1e6, "ratio_means": "report time / generation time (target < 2)"}


def time_layout(prompt: str, repeats: int = 7) -> dict:
    """What planning a prompt costs: a canvas per region, each with its own empty-prompt row, for the first steps."""
    pipe, what = _pipeline()
    medians = _interleaved({"layout": lambda: pipe(prompt, seed=0),
                            "plain": lambda: pipe(prompt, seed=0, layout=0.0)}, repeats)
    return {"name": "layout planning against none, one image", "model": what, "prompt": prompt,
            "layout_steps": SamplingConfig().layout_steps, "steps": STEPS, "layout_s": medians["layout"],
            "plain_s": medians["plain"], "ratio": medians["layout"] / medians["plain"],
            "ratio_means": "time with the default layout / time with --layout 0"}


# ---------------- the full-size Stable Diffusion 1.5 architecture, random weights ----------------

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                 layers_per_block=2, cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD15_VAE = dict(in_channels=3, out_channels=3, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                latent_channels=4, sample_size=512, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4)
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)


def sd15_random_file() -> str:
    """SD 1.5's architecture with random weights, as an fp16 single file in the original layout (built once, 2 GB,
    in glassdiff's cache): what a user's downloaded checkpoint looks like, read by the same loader."""
    from .checkpoints import cache_dir, clip_tokenizer, write_single_file

    path = os.path.join(cache_dir(), "bench", "sd15-random-fp16.safetensors")
    if os.path.exists(path):
        return path
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .checkpoints import SCHEDULER
    from .pipeline import Pipeline
    from .text import TextEncoder

    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.manual_seed(0)
    text = TextEncoder.from_parts(CLIPTextModel(CLIPTextConfig(**SD15_TEXT)), clip_tokenizer(), "clip", 77)
    pipe = Pipeline(UNet2DConditionModel(**SD15_UNET), AutoencoderKL(**SD15_VAE), text, SCHEDULER)
    write_single_file(pipe, path, half=True)
    return path


def time_sd_steps(path: str, size: int, steps: int = 4, repeats: int = 2) -> dict:
    """Seconds per guided step at `size`, between the first and the last step's end (the text encoder, the first
    step's warm-up and the decoder left out): glassdiff's loop on PyTorch's UNet and on OpenVINO's against
    diffusers' on a copy of the same weights."""
    from .pipeline import Pipeline

    pipe = Pipeline.load(path)
    fast = copy.copy(pipe)
    fast.engine = "openvino"
    engine = _engine(fast)  # converted here, once, where the cache does not hold it yet
    reference = _reference(pipe, "dpmpp_2m")  # a copy in diffusers' own layout; ours keeps its own
    ends: dict[str, list[list[float]]] = {"glassdiff": [], "openvino": [], "diffusers": []}

    def ours(who, runner):
        def run():
            ends[who].append([])
            runner(PROMPT, seed=0, steps=steps, width=size, height=size, layout=0.0,
                   observers=(lambda record: ends[who][-1].append(time.perf_counter()),))
        return run

    def theirs():
        ends["diffusers"].append([])

        def on_step(pipeline, i, t, kwargs):
            ends["diffusers"][-1].append(time.perf_counter())
            return kwargs
        with torch.no_grad():
            encoded = pipe.text_encoder([PROMPT, ""])
            reference(prompt_embeds=encoded.context[:1], negative_prompt_embeds=encoded.context[1:],
                      num_inference_steps=steps, guidance_scale=4.0, height=size, width=size,
                      generator=torch.Generator().manual_seed(0), output_type="latent", callback_on_step_end=on_step)

    _interleaved({"glassdiff": ours("glassdiff", pipe), "openvino": ours("openvino", fast), "diffusers": theirs},
                 repeats, warm=False)
    per_step = {who: statistics.median((run[-1] - run[0]) / (len(run) - 1) for run in runs)
                for who, runs in ends.items()}
    return {"name": f"SD 1.5 architecture (random weights), {size}x{size}, seconds per guided step",
            "size": size, "threads": torch.get_num_threads(), "glassdiff_s": per_step["glassdiff"],
            "openvino_s": per_step["openvino"], "engine": engine, "diffusers_s": per_step["diffusers"],
            "ratio": per_step["diffusers"] / per_step["glassdiff"],
            "openvino_ratio": per_step["diffusers"] / per_step["openvino"],
            "ratio_means": "diffusers time / glassdiff time (>1: glassdiff faster)"}


def sd_step_flops(size: int) -> float:
    """Floating-point operations of one guided step of SD 1.5's UNet at `size` (a batch of 2), counted by PyTorch's
    FlopCounterMode on a model on the meta device (shapes only: nothing is computed)."""
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
        latent = torch.empty(2, unet.config.in_channels, size // 8, size // 8)
        with FlopCounterMode(display=False) as counter:
            unet(latent, torch.tensor([500, 500]), encoder_hidden_states=torch.empty(2, 77, 768))
    return float(counter.get_total_flops())


def matmul_peak(side: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a large fp32 matrix product on this process's threads: the CPU's FP32 peak as PyTorch reaches it."""
    a, b = torch.randn(side, side), torch.randn(side, side)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * side**3 * repeats / (time.perf_counter() - t0)


def flop_shares(step_results: list[dict]) -> dict:
    """Each contestant's FLOP/s per guided step as a share of the matmul peak, from counted FLOPs."""
    peak = matmul_peak()
    rows = {}
    for r in step_results:
        flops = sd_step_flops(r["size"])
        rows[r["size"]] = {who: flops / r[f"{who}_s"] / peak for who in ("glassdiff", "openvino", "diffusers")}
        rows[r["size"]]["tflop_per_step"] = flops / 1e12
    return {"name": "SD 1.5 architecture, share of this CPU's FP32 peak (counted FLOPs / step time / matmul peak)",
            "peak_gflops": peak / 1e9, "threads": torch.get_num_threads(), "by_size": rows}


def time_openvino_conversion(path: str) -> dict:
    """OpenVINO's one-off cost on SD 1.5's UNet: the conversion, the files it caches, and compiling them in a new
    process's time; the converted files then stay in the cache for the runs that follow."""
    from .engine import OpenVinoDenoiser, cached_path, export_openvino
    from .pipeline import Pipeline

    pipe = Pipeline.load(path)
    cached = cached_path("openvino", pipe.model_hash)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.dirname(cached))) as scratch:
        xml = os.path.join(scratch, os.path.basename(cached))
        t0 = time.perf_counter()
        export_openvino(pipe.unet, xml, pipe.unet.config.sample_size, (pipe.text_encoder.max_length,
                                                                       pipe.text_encoder.dim))
        convert_s = time.perf_counter() - t0
        size_gb = sum(os.path.getsize(os.path.join(scratch, name)) for name in os.listdir(scratch)) / 2**30
        t0 = time.perf_counter()
        OpenVinoDenoiser(xml, pipe.unet.config.in_channels)
        compile_s = time.perf_counter() - t0
        if not os.path.exists(cached):
            os.makedirs(os.path.dirname(cached), exist_ok=True)
            os.replace(xml.removesuffix(".xml") + ".bin", cached.removesuffix(".xml") + ".bin")
            os.replace(xml, cached)
    return {"name": "SD 1.5 architecture on OpenVINO, one-off cost", "convert_s": convert_s, "compile_s": compile_s,
            "cache_gb": size_gb}


_SD_MEMORY_CHILD = """
import resource, sys, torch
from glassdiff.bench import _reference, PROMPT
from glassdiff.pipeline import Pipeline
pipe = Pipeline.load(sys.argv[1])
size = int(sys.argv[3])
if sys.argv[2] in ("glassdiff", "openvino"):
    pipe.engine = "torch" if sys.argv[2] == "glassdiff" else "openvino"
    pipe(PROMPT, seed=0, steps=2, width=size, height=size, layout=0.0)
else:
    ref = _reference(pipe, "dpmpp_2m", copy_weights=False)
    with torch.no_grad():
        enc = pipe.text_encoder([PROMPT, ""])
        ref(prompt_embeds=enc.context[:1], negative_prompt_embeds=enc.context[1:], num_inference_steps=2,
            guidance_scale=4.0, height=size, width=size, generator=torch.Generator().manual_seed(0))
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def sd_peak_memory(path: str, size: int, engines: tuple[str, ...] = ("glassdiff", "diffusers")) -> dict:
    """Peak resident memory (GB) of a fresh process that loads the fp16 file and draws one image at `size`
    (engines: glassdiff on PyTorch, "openvino": glassdiff on OpenVINO, from its cache, "diffusers")."""
    peaks = {}
    for name in engines:
        out = subprocess.run([sys.executable, "-c", _SD_MEMORY_CHILD, path, name, str(size)], capture_output=True,
                             text=True, check=True)
        peaks[name] = int(out.stdout.strip().splitlines()[-1]) / 2**20
    return {"name": f"SD 1.5 architecture, peak memory at {size}x{size} (fresh process, fp16 file)",
            "glassdiff_gb": peaks["glassdiff"], "diffusers_gb": peaks["diffusers"],
            "openvino_gb": peaks.get("openvino"),
            "ratio": peaks["diffusers"] / peaks["glassdiff"], "target": "glassdiff <= 6 GB",
            "ratio_means": "diffusers peak / glassdiff peak (>1: glassdiff smaller)"}


def run_sd_benchmarks(json_out: str | None = None) -> list[dict]:
    path = sd15_random_file()
    results = [time_openvino_conversion(path), sd_peak_memory(path, 256),
               sd_peak_memory(path, 512, engines=("glassdiff", "openvino", "diffusers")), time_sd_steps(path, 256),
               time_sd_steps(path, 512)]
    results.append(flop_shares(results[-2:]))
    for r in results:
        if "peak_gflops" in r:
            print(f"{r['name']}: peak {r['peak_gflops']:.0f} GFLOP/s on {r['threads']} threads; " + "; ".join(
                f"{size}x{size} ({row['tflop_per_step']:.2f} TFLOP a step): glassdiff {row['glassdiff']:.0%} "
                f"(PyTorch), {row['openvino']:.0%} (OpenVINO), diffusers {row['diffusers']:.0%}"
                for size, row in r["by_size"].items()))
        elif "convert_s" in r:
            print(f"{r['name']}: conversion {r['convert_s']:.0f} s, {r['cache_gb']:.1f} GB in the cache, "
                  f"compiled in a new process in {r['compile_s']:.1f} s")
        elif "glassdiff_s" in r:
            print(f"{r['name']} ({r['threads']} threads): glassdiff {r['glassdiff_s']:.2f} s (PyTorch), "
                  f"{r['openvino_s']:.2f} s ({r['engine']}), diffusers {r['diffusers_s']:.2f} s, ratio "
                  f"{r['ratio']:.3f} (PyTorch), {r['openvino_ratio']:.3f} ({r['engine']})")
        else:
            on_openvino = f", on OpenVINO {r['openvino_gb']:.2f} GB" if r["openvino_gb"] else ""
            print(f"{r['name']}: glassdiff {r['glassdiff_gb']:.2f} GB{on_openvino}, diffusers "
                  f"{r['diffusers_gb']:.2f} GB, ratio {r['ratio']:.3f}")
    _write_json(results, json_out)
    return results


def run_student_benchmarks(student_path: str, json_out: str | None = None, repeats: int = 7) -> list[dict]:
    """One image from a distilled student at 1, 2 and 4 steps (its own sampler and guidance) against its teacher, the
    default model, at the default sampling; the same prompt and seed, the runs taking turns."""
    from .models import resolve
    from .pipeline import Pipeline

    teacher, _ = _pipeline()
    student = Pipeline.load(resolve(student_path))
    runs = {f"teacher, {STEPS} steps": lambda: teacher(PROMPT, seed=0)}
    for steps in (1, 2, 4):
        runs[f"student, {steps} step{'s' if steps > 1 else ''}"] = functools.partial(student, PROMPT, seed=0,
                                                                                    steps=steps)
    medians = _interleaved(runs, repeats)
    base = medians[f"teacher, {STEPS} steps"]
    results = [{"name": f"one image, {name}", "seconds": seconds, "share_of_teacher": seconds / base,
                "engine": _engine(student if name.startswith("student") else teacher)}
               for name, seconds in medians.items()]
    for r in results:
        print(f"{r['name']} ({r['engine']}): {r['seconds'] * 1000:.0f} ms, {r['share_of_teacher']:.3f} of the "
              f"teacher's time")
    _write_json(results, json_out)
    return results


def time_server(repeats: int = 5) -> dict:
    """glassdiff serve on a loopback port: /sdapi/v1/txt2img against the same generation in-process (PNG encoding
    included on both sides), and the time from a request to the first preview of the page's stream."""
    import socket

    import httpx

    from .pipeline import Pipeline
    from .server import png_bytes

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as outputs:
        server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "glassdiff"), "serve", "--port",
                                   str(port), "--outputs", outputs],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(url + "/healthz")
            pipe, body = Pipeline.default(), {"prompt": PROMPT, "seed": 0, "steps": STEPS, "cfg_scale": 4.0,
                                              "sampler_name": "DPM++ 2M", "width": 64, "height": 64}
            with httpx.Client(timeout=120) as client:
                def served():
                    assert client.post(url + "/sdapi/v1/txt2img", json=body).status_code == 200

                def first_preview():
                    with client.stream("POST", url + "/glassdiff/generate", json={"prompt": PROMPT}) as response:
                        for line in response.iter_lines():
                            if line.startswith("event: step"):
                                return

                def local():
                    result = pipe(PROMPT, seed=0, steps=STEPS, guidance=4.0)
                    png_bytes(result.image, result.infotexts[0])

                medians = _interleaved({"server": served, "in-process": local, "first preview": first_preview},
                                       repeats)
        finally:
            server.terminate()
            server.wait(timeout=60)
    return {"name": "glassdiff serve: txt2img over HTTP against the same generation in-process", "server_s":
            medians["server"], "in_process_s": medians["in-process"], "first_preview_s": medians["first preview"],
            "ratio": medians["server"] / medians["in-process"],
            "ratio_means": "time through /sdapi/v1/txt2img / time in-process (target <= 1.10)"}


def _wait_for(url: str, seconds: float = 120):
    import httpx

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {seconds:.0f} s")


def _startup_commands() -> dict[str, list[str]]:
    glassdiff = os.path.join(os.path.dirname(sys.executable), "glassdiff")
    return {"python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "glassdiff --help": [glassdiff, "--help"],
            "glassdiff generate '' (bad input)": [glassdiff, "generate", ""],
            "glassdiff info (loads the model)": [glassdiff, "info"]}


def time_startup(repeats: int = 5) -> dict:
    """Seconds from launch to exit of commands that do little, beside the interpreter's and torch's own start."""
    def launch(argv):
        return lambda: subprocess.run(argv, capture_output=True, check=False)

    medians = _interleaved({name: launch(argv) for name, argv in _startup_commands().items()}, repeats)
    return {"name": "start-up, launch to exit", "seconds": medians, "repeats": repeats,
            "ratio": medians["glassdiff --help"] / medians["python -c 'import torch'"],
            "ratio_means": "glassdiff --help / python -c 'import torch' (<1: help answers before torch could load)"}


def _interleaved(runs: dict, repeats: int, warm: bool = True) -> dict[str, float]:
    """Median seconds of each run, after one warm-up each, the runs taking turns (so noise hits them alike)."""
    for fn in runs.values() if warm else ():
        fn()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def run_benchmarks(json_out: str | None = None, quick: bool = False) -> list[dict]:
    results = [time_generation(repeats=3 if quick else 7),
               time_generation(repeats=2 if quick else 3, prompts=BATCH_PROMPTS), time_export(),
               peak_memory(), time_report(repeats=3 if quick else 5),
               *(time_layout(prompt, repeats=3 if quick else 7) for prompt in LAYOUT_PROMPTS),
               time_startup(repeats=3 if quick else 5), time_server(repeats=3 if quick else 7)]
    for r in results:
        if "server_s" in r:
            print(f"{r['name']}: server {r['server_s'] * 1000:.0f} ms, in-process {r['in_process_s'] * 1000:.0f} ms, "
                  f"ratio {r['ratio']:.3f}; first preview after {r['first_preview_s'] * 1000:.0f} ms")
        elif "seconds" in r:
            print(f"{r['name']} (median of {r['repeats']}): " +
                  ", ".join(f"{name} {seconds:.2f} s" for name, seconds in r["seconds"].items()) +
                  f"; ratio --help / import torch {r['ratio']:.3f}")
        elif "layout_s" in r:
            print(f"{r['name']} ({r['prompt']!r}, {r['layout_steps']} of {r['steps']} steps in regions): "
                  f"layout {r['layout_s'] * 1000:.0f} ms, none {r['plain_s'] * 1000:.0f} ms, ratio {r['ratio']:.2f}")
        elif "report_s" in r:
            print(f"{r['name']} ({r['steps']} steps): generation {r['generation_s'] * 1000:.0f} ms, "
                  f"report {r['report_s'] * 1000:.0f} ms, ratio {r['ratio']:.2f}, {r['report_mb']:.2f} MB")
        elif "engines" in r:
            print(f"{r['name']}: " + "; ".join(
                f"{engine}: export {c['export_s']:.1f} s, {c['cache_mb']:.0f} MB in the cache, loaded in a new "
                f"process in {c['load_s']:.2f} s" for engine, c in r["engines"].items()) +
                " (OpenVINO's load: compiling for one shape, and a first step; each new shape compiles again)")
        elif "glassdiff_s" in r:
            print(f"{r['name']} ({r['model']}, {r['size']}px, {r['steps']} {r['sampler']} steps, "
                  f"{r['threads']} threads, engine {r['engine']}): glassdiff {r['glassdiff_s'] * 1000:.0f} ms "
                  f"({r['images_per_s']:.2f} images/s), reference path {r['reference_s'] * 1000:.0f} ms, "
                  f"diffusers {r['diffusers_s'] * 1000:.0f} ms, ratio {r['ratio']:.3f} "
                  f"(reference / fast {r['engine_ratio']:.2f}); {r['one_shot_engine']} (glassdiff generate's) "
                  f"{r['one_shot_s'] * 1000:.0f} ms, ratio {r['diffusers_s'] / r['one_shot_s']:.3f}")
        else:
            print(f"{r['name']}: glassdiff {r['glassdiff_mb']:.0f} MB, diffusers {r['diffusers_mb']:.0f} MB, "
                  f"ratio {r['ratio']:.3f}")
    _write_json(results, json_out)
    return results


def _write_json(results: list[dict], json_out: str | None):
    if json_out:
        from .io import atomic_path

        with atomic_path(json_out) as tmp:
            with open(tmp, "w") as f:
                json.dump(results, f, indent=2)
