"""Write reference image folders in GenEval's layout, to check the judge itself.

`python -m glassdiff.evaluate.groundtruth OUTDIR [--per-prompt K] [--model DIR]` writes
OUTDIR/truth-{seen,heldout} (renders drawn from each prompt's facts) and
OUTDIR/noise-{seen,heldout} (uniform noise); judge them with
`glassdiff eval --images OUTDIR/truth-seen`. With --model (a model folder, or
"default"), also OUTDIR/autoencoded-{seen,heldout}: the same renders encoded
and decoded by that model's autoencoder, the ceiling its decoder sets on
generations of such scenes (a layout plan's neater scenes can beat it);
--sheet PATH then draws what the decoder loses: each render the judge passes
beside its round trip that fails, with the reason.
"""

from __future__ import annotations

import argparse
import random

import numpy as np
from PIL import Image

from ..world import render, scene_from_spec
from .cli import write_geneval_folder
from .prompts import load_prompts


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m glassdiff.evaluate.groundtruth")
    parser.add_argument("outdir")
    parser.add_argument("--per-prompt", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="also write the renders through this model's autoencoder")
    parser.add_argument("--sheet", default=None, help="with --model: PNG of renders the round trip breaks")
    args = parser.parse_args(argv)
    if args.sheet:
        _check_sheet(parser, args)
    pipe = _pipeline(args.model) if args.model else None
    rng, noise = random.Random(args.seed), np.random.default_rng(args.seed)
    broken = []
    for name in ("seen", "heldout"):
        specs = load_prompts(name)
        truth = [(s, [render(scene_from_spec(s, rng)) for _ in range(args.per_prompt)], []) for s in specs]
        fuzz = [(s, [Image.fromarray(noise.integers(0, 256, (64, 64, 3), dtype=np.uint8))
                     for _ in range(args.per_prompt)], []) for s in specs]
        write_geneval_folder(f"{args.outdir}/truth-{name}", truth)
        write_geneval_folder(f"{args.outdir}/noise-{name}", fuzz)
        print(f"wrote {args.outdir}/truth-{name} and {args.outdir}/noise-{name} ({len(specs)} prompts)")
        if pipe is not None:
            through = [(s, round_trip(pipe, images), []) for s, images, _ in truth]
            write_geneval_folder(f"{args.outdir}/autoencoded-{name}", through)
            print(f"wrote {args.outdir}/autoencoded-{name}")
            if args.sheet:
                broken += broken_by_round_trip(truth, through)
    if args.sheet and broken:
        losses_sheet(broken, args.sheet)
        print(f"wrote {args.sheet}: {len(broken)} renders pass the judge and fail after the round trip")
    elif args.sheet:
        print(f"every render the judge passes still passes after the round trip: no {args.sheet} written")


def _check_sheet(parser, args):
    """Refuse a sheet without a model, or one that cannot be written, before any work (exit 2)."""
    from ..options import writable_output
    from ..config import BadInput

    if not args.model:
        parser.error("--sheet draws what the autoencoder loses: give the model with --model")
    try:
        writable_output(args.sheet)
    except BadInput as err:
        parser.error(str(err))


def _pipeline(model: str):
    from ..pipeline import Pipeline

    return Pipeline.default() if model == "default" else Pipeline.load(model)


def round_trip(pipe, images: list[Image.Image]) -> list[Image.Image]:
    """Images encoded to latents and decoded again by the pipeline's autoencoder."""
    import torch

    from ..autoencoder import encode
    from ..train.data import to_tensor

    pixels = to_tensor(np.stack([np.asarray(im) for im in images]))
    with torch.inference_mode():
        decoded = pipe.decode_latents(encode(pipe.vae, pixels)).numpy()
    return [Image.fromarray(d) for d in decoded]


def broken_by_round_trip(truth, through) -> list[tuple[dict, Image.Image, Image.Image, str]]:
    """(spec, render, round trip, why it fails) for each render that passes while its round trip does not."""
    from .detect import detect
    from .score import judge

    broken = []
    for (spec, renders, _), (_, decoded, _) in zip(truth, through):
        for render_image, decoded_image in zip(renders, decoded):
            verdict = judge(spec, detect(decoded_image))
            if not verdict.passed and judge(spec, detect(render_image)).passed:
                broken.append((spec, render_image, decoded_image, verdict.reason))
    return broken


def losses_sheet(broken, path: str, pairs: int = 32):
    from ..png import save_png
    from ..train.plots import labelled_grid

    shown = broken[:pairs]
    images = [im for _, render_image, decoded_image, _ in shown for im in (render_image, decoded_image)]
    labels = [label for spec, _, _, why in shown for label in (f"render: {spec['prompt']}", f"decoded: {why}")]
    save_png(labelled_grid(images, labels, columns=8, scale=2, label_height=40), path,
             "glassdiff: renders the judge passes (left) beside their autoencoder round trip that fails (right)")


if __name__ == "__main__":
    main()
