"""`python -m glassdiff.train.ship RUN/model glassdiff/weights [VAE] [--img2img RUN2/model]`: install a trained
pipeline as the embedded model.

VAE, when given, is an autoencoder folder that replaces the pipeline's (a decoder fine-tuned with
`glassdiff train autoencoder --decoder-only`: same encoder, so the same latents). --img2img names a pipeline whose
UNet is shipped beside the first as the model's image-to-image UNet (pipeline.IMG2IMG_UNET).

Weights are stored in fp16 (half the size) and load back as fp32; `ship` measures
what that costs on real generations (max pixel difference over a few prompts).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from ..folders import model_sampling, read_training
from ..pipeline import Pipeline

CHECK_PROMPTS = ("a red circle", "two blue squares", "a yellow star left of a purple heart")


def _reference(folder: str) -> Pipeline:
    """The model on PyTorch's UNet, the reference path (engine.py): sheets and checks of a model being made."""
    pipe = Pipeline.load(folder)
    pipe.engine = "torch"
    return pipe


def ship(source: str, target: str, vae: str | None = None, img2img: str | None = None) -> int:
    """Copy source -> target in fp16, keep target's MODEL_CARD.md; return the max pixel change fp32 -> fp16."""
    pipe = _reference(source)
    if img2img:
        pipe.img2img_unet = _reference(img2img).unet.half()
    if vae:
        import torch
        from diffusers import AutoencoderKL

        pipe.vae = AutoencoderKL.from_pretrained(vae, torch_dtype=torch.float32).eval()
    reference = check_images(pipe)  # fp32, before the weights are halved
    pipe.unet.half()
    pipe.vae.half()
    record = read_training(source)
    pipe.save(target, training=record, keep=kept_entries(target))  # with the steps the weights took
    log = os.path.join(os.path.dirname(os.path.normpath(source)), "log.jsonl")  # RUN/log.jsonl
    if os.path.exists(log):
        from .distill import LOSS_LABEL
        from .plots import plot_losses

        plot_losses(log, os.path.join(target, "loss.png"),
                    **({"ylabel": LOSS_LABEL} if "distilled_from" in record else {}))
    shipped = check_images(_reference(target))
    return max(int(np.abs(x - y).max()) for x, y in zip(reference, shipped))


def kept_entries(target: str) -> tuple[str, ...]:
    """What shipping over a model folder keeps: its card, and the models shipped inside it (weights/fast, the
    default model's distilled student)."""
    if not os.path.isdir(target):
        return ()
    return tuple(name for name in sorted(os.listdir(target)) if name == "MODEL_CARD.md"
                 or os.path.isfile(os.path.join(target, name, "model_index.json")))


def spread_prompts(n: int, keep=lambda spec: True) -> list[str]:
    """n benchmark prompts the filter keeps, half seen and half held out, evenly spread over each file."""
    from ..evaluate.prompts import load_prompts

    prompts = []
    for name in ("seen", "heldout"):
        rows = [spec["prompt"] for spec in load_prompts(name) if keep(spec)]
        prompts += rows[:: max(1, len(rows) // (n // 2))][: n // 2]
    return prompts


def contact_sheet(model: str, out_png: str, n: int = 64, chunk: int = 16, **sampling):
    """n generations (seed 0; the model's own sampling, or `sampling`'s) for benchmark prompts spread over every
    task, seen and held out, labelled."""
    from ..io import atomic_path
    from .plots import labelled_grid

    prompts = spread_prompts(n)
    pipe = _reference(model)
    images = [im for i in range(0, len(prompts), chunk)
              for im in pipe(prompts[i:i + chunk], seed=0, **sampling).images]
    with atomic_path(out_png) as tmp:
        labelled_grid(images, prompts, columns=8).save(tmp, format="PNG")


def layout_sheet(model: str, out_png: str, two_objects: int = 16, counting: int = 8):
    """Two-object and counting benchmark prompts (seed 0), each drawn by the model alone (--layout 0) and with
    its layout, in rows of 8."""
    from ..config import SamplingConfig
    from ..io import atomic_path
    from .plots import labelled_grid

    prompts = (spread_prompts(two_objects, lambda spec: len(spec["include"]) == 2)
               + spread_prompts(counting, lambda spec: spec.get("tag") == "counting"))
    pipe = _reference(model)
    images, labels = [], []
    for row in range(0, len(prompts), 8):  # a row alone, then the same prompts with their layout
        for layout in (0.0, pipe.sampling.get("layout", SamplingConfig().layout)):
            images += pipe(prompts[row:row + 8], seed=0, layout=layout).images
            labels += [f"{'layout' if layout else 'alone'}: {p}" for p in prompts[row:row + 8]]
    with atomic_path(out_png) as tmp:
        labelled_grid(images, labels, columns=8).save(tmp, format="PNG")


def check_images(pipe) -> list[np.ndarray]:
    return [np.asarray(pipe(prompt, seed=0).image, dtype=int) for prompt in CHECK_PROMPTS]


def main(argv: list[str] | None = None) -> int:
    from ..options import Parser, guarded

    parser = Parser(prog="python -m glassdiff.train.ship", description="Install a trained pipeline folder in fp16, "
                    "with its contact sheet and layout sheet.")
    parser.add_argument("source", help="the trained pipeline folder (RUN/model)")
    parser.add_argument("target", help="where to install it (glassdiff/weights for the default model)")
    parser.add_argument("vae", nargs="?", help="a fine-tuned decoder's autoencoder folder to ship with it")
    parser.add_argument("--img2img", help="a trained pipeline folder whose UNet runs image-to-image")
    args = parser.parse_args(argv)
    return guarded(lambda: install(args.source, args.target, args.vae, args.img2img))


def install(source: str, target: str, vae: str | None = None, img2img: str | None = None):
    print(f"max pixel difference fp32 -> fp16 weights: {ship(source, target, vae, img2img)} (of 255)")
    contact_sheet(target, os.path.join(target, "samples.png"))
    if model_sampling(target):  # a distilled student: its own steps, and one
        contact_sheet(target, os.path.join(target, "samples_1step.png"), steps=1)
    layout_sheet(target, os.path.join(target, "layout.png"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
