"""Benchmarks that print a ratio against a baseline measured in the same run.

1. end-to-end generation: diffusers' StableDiffusionPipeline on the same UNet,
   VAE and scheduler (fed our text embeddings, whose cost is added to its
   time) against glassdiff, same seed and steps, interleaved, median of N;
2. peak memory of one generation in a fresh process, ours against diffusers';
3. the explainer: building a report against the generation alone (same
   prompt, seed and steps), interleaved, median of N, and the report's size;
4. layout planning: a two-object prompt and a counting prompt, each with its
   default layout against the same prompt with --layout 0, interleaved, median of N;
5. start-up: `glassdiff --help`, a bad-input error and `glassdiff info`, launch to exit, beside
   `python -c pass` and `python -c "import torch"`, interleaved, median of N.
The first compares the same work: glassdiff with --layout 0, as diffusers has no
layout (the benchmark's prompt names two copies and an object, so it is planned).
Timings on a shared machine are noisy: only the ratio of one run means much.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
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


def time_generation(repeats: int = 7, steps: int = STEPS, guidance: float = 4.0, sampler: str = "dpmpp_2m") -> dict:
    pipe, what = _pipeline()
    reference = _reference(pipe, sampler)
    size = pipe.native_size

    def ours():
        pipe(PROMPT, seed=0, steps=steps, guidance=guidance, sampler=sampler, layout=0.0)

    def theirs():
        with torch.no_grad():
            encoded = pipe.text_encoder([PROMPT, ""])
            reference(prompt_embeds=encoded.context[:1], negative_prompt_embeds=encoded.context[1:],
                      num_inference_steps=steps, guidance_scale=guidance, height=size, width=size,
                      generator=torch.Generator().manual_seed(0), output_type="pil")

    medians = _interleaved({"glassdiff": ours, "diffusers": theirs}, repeats)
    ours_s, theirs_s = medians["glassdiff"], medians["diffusers"]
    return {"name": "generation time, one image", "model": what, "size": size, "steps": steps, "sampler": sampler,
            "threads": torch.get_num_threads(), "glassdiff_s": ours_s, "diffusers_s": theirs_s,
            "ratio": theirs_s / ours_s, "ratio_means": "diffusers time / glassdiff time (>1: glassdiff faster)"}


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
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory() -> dict:
    """Peak resident memory (MB) of a fresh process that loads the model and makes one image."""
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
    prompt, params = "a red star in the top left", dict(steps=steps, guidance=4.0, sampler="dpmpp_2m", seed=0)
    pages = []

    def report():
        pages.append(build_report(pipe, prompt, params)[0])

    medians = _interleaved({"generation": lambda: pipe(prompt, **params), "report": report}, repeats)
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


def _interleaved(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each run, after one warm-up each, the runs taking turns (so noise hits them alike)."""
    for fn in runs.values():
        fn()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def run_benchmarks(json_out: str | None = None, quick: bool = False) -> list[dict]:
    results = [time_generation(repeats=3 if quick else 7), peak_memory(), time_report(repeats=3 if quick else 5),
               *(time_layout(prompt, repeats=3 if quick else 7) for prompt in LAYOUT_PROMPTS),
               time_startup(repeats=3 if quick else 5)]
    for r in results:
        if "seconds" in r:
            print(f"{r['name']} (median of {r['repeats']}): " +
                  ", ".join(f"{name} {seconds:.2f} s" for name, seconds in r["seconds"].items()) +
                  f"; ratio --help / import torch {r['ratio']:.3f}")
        elif "layout_s" in r:
            print(f"{r['name']} ({r['prompt']!r}, {r['layout_steps']} of {r['steps']} steps in regions): "
                  f"layout {r['layout_s'] * 1000:.0f} ms, none {r['plain_s'] * 1000:.0f} ms, ratio {r['ratio']:.2f}")
        elif "report_s" in r:
            print(f"{r['name']} ({r['steps']} steps): generation {r['generation_s'] * 1000:.0f} ms, "
                  f"report {r['report_s'] * 1000:.0f} ms, ratio {r['ratio']:.2f}, {r['report_mb']:.2f} MB")
        elif "glassdiff_s" in r:
            print(f"{r['name']} ({r['model']}, {r['size']}px, {r['steps']} {r['sampler']} steps, "
                  f"{r['threads']} threads): glassdiff {r['glassdiff_s'] * 1000:.0f} ms, "
                  f"diffusers {r['diffusers_s'] * 1000:.0f} ms, ratio {r['ratio']:.3f}")
        else:
            print(f"{r['name']}: glassdiff {r['glassdiff_mb']:.0f} MB, diffusers {r['diffusers_mb']:.0f} MB, "
                  f"ratio {r['ratio']:.3f}")
    if json_out:
        from .io import atomic_path

        with atomic_path(json_out) as tmp:
            with open(tmp, "w") as f:
                json.dump(results, f, indent=2)
    return results
