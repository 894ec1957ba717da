"""`python -m glassdiff.train.ship RUN/model glassdiff/weights`: install a trained pipeline as the embedded model.

Weights are stored in fp16 (half the size) and load back as fp32; `check` measures
what that costs on real generations (max pixel difference over a few prompts).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from ..pipeline import Pipeline

CHECK_PROMPTS = ("a red circle", "two blue squares", "a yellow star left of a purple heart")


def ship(source: str, target: str) -> int:
    """Copy source -> target in fp16, keep target's MODEL_CARD.md; return the max pixel change fp32 -> fp16."""
    pipe = Pipeline.load(source)
    card = os.path.join(target, "MODEL_CARD.md")
    kept = open(card).read() if os.path.exists(card) else None
    pipe.unet.half()
    pipe.vae.half()
    pipe.save(target)
    if kept is not None:
        with open(card, "w") as f:
            f.write(kept)
    log = os.path.join(os.path.dirname(os.path.normpath(source)), "log.jsonl")
    if os.path.exists(log):
        from .plots import plot_losses

        plot_losses(log, os.path.join(target, "loss.png"))
    return check(source, target)


def check(a: str, b: str) -> int:
    first, second = Pipeline.load(a), Pipeline.load(b)
    worst = 0
    for prompt in CHECK_PROMPTS:
        x = np.asarray(first(prompt, seed=0).image, dtype=int)
        y = np.asarray(second(prompt, seed=0).image, dtype=int)
        worst = max(worst, int(np.abs(x - y).max()))
    return worst


if __name__ == "__main__":
    print(f"max pixel difference fp32 -> fp16 weights: {ship(sys.argv[1], sys.argv[2])} (of 255)")
