"""Which words does the denoiser listen to? A word-swap probe on noised real latents.

Scenes of the shapes world are encoded, noised to several levels and denoised
once with their true caption, with its shape words swapped for other shapes,
with its colour words swapped for other colours, and with the empty prompt.
The error of the predicted clean latent on the objects' cells says how much
each kind of word helps: a model that ignores shape words predicts as well
with the wrong ones. A minute's check, where the benchmark takes ten.

With --cells it asks the same of position words instead: single objects in a
named cell, captioned with their cell, with another cell, and with none. With
--relations, of relation words: two objects, one left of (right of, above,
below) the other, captioned with the relation, with its opposite, and with
none ("a red star and a blue heart").

    python -m glassdiff.train.probe [MODEL] [--cells | --relations] [--scenes 96] [--json probe.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys

import numpy as np
import torch

from ..denoiser import Denoiser
from ..evaluate.detect import FOREGROUND_DISTANCE
from ..algebra import to_x0_and_eps
from ..schedulers import make_scheduler
from ..world import render_array, sample_spec, scene_from_spec
from ..world.captions import caption
from ..world.vocab import BACKGROUNDS, CELLS, COLORS, RELATIONS, SHAPES
from .data import to_tensor

TIMESTEPS = (200, 400, 600, 800, 950)
VARIANTS = ("true", "shape swapped", "colour swapped", "empty")
CELL_VARIANTS = ("true", "cell swapped", "no cell", "empty")
RELATION_VARIANTS = ("true", "relation flipped", "no relation", "empty")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def swapped(spec: dict, key: str, choices, rng: random.Random) -> dict:
    """The spec with every entry's `key` (class, color or cell) replaced by another of `choices`."""
    entries = [dict(e) for e in spec["include"]]
    for entry in entries:
        if entry.get(key):
            entry[key] = rng.choice([c for c in choices if c != entry[key]])
    return {**spec, "include": entries}


def probe_scenes(n: int, seed: int, size: int):
    """(captions per variant, images uint8 (n, size, size, 3), backgrounds) of scenes that name a colour."""
    return _scene_set(_word_variants, n, seed, size)


def cell_probe_scenes(n: int, seed: int, size: int):
    """As probe_scenes, for CELL_VARIANTS: one object of a named colour in a named cell."""
    return _scene_set(_cell_variants, n, seed, size)


def relation_probe_scenes(n: int, seed: int, size: int):
    """As probe_scenes, for RELATION_VARIANTS: two objects of different shapes and colours in a relation."""
    return _scene_set(_relation_variants, n, seed, size)


def _scene_set(draw, n: int, seed: int, size: int):
    """n scenes from draw(rng) -> (scene, {variant: caption}), each with the empty prompt as a last variant."""
    rng = random.Random(seed)
    captions, images, backgrounds = {}, [], []
    for _ in range(n):
        scene, texts = draw(rng)
        for name, text in {**texts, "empty": ""}.items():
            captions.setdefault(name, []).append(text)
        images.append(render_array(scene, size))
        backgrounds.append(BACKGROUNDS[scene.background])
    return captions, np.stack(images), np.array(backgrounds)


def _word_variants(rng: random.Random):
    while True:
        spec = sample_spec(rng)
        if any(e.get("color") for e in spec["include"]):
            break
    scene = scene_from_spec(spec, rng)
    variants = {"true": spec, "shape swapped": swapped(spec, "class", SHAPES, rng),
                "colour swapped": swapped(spec, "color", list(COLORS), rng)}
    phrasing = rng.random()  # the same phrasing for every variant: only the swapped words differ
    return scene, {name: caption(variant, random.Random(phrasing)) for name, variant in variants.items()}


def _cell_variants(rng: random.Random):
    entry = {"class": rng.choice(SHAPES), "count": 1, "color": rng.choice(list(COLORS)), "cell": rng.choice(CELLS)}
    spec = {"include": [entry]}
    scene = scene_from_spec(spec, rng)
    unplaced = {"include": [{k: v for k, v in entry.items() if k != "cell"}]}
    moved = swapped(spec, "cell", CELLS, rng)
    return scene, {"true": caption(spec), "cell swapped": caption(moved), "no cell": caption(unplaced)}


def _relation_variants(rng: random.Random):
    (a, b), (color_a, color_b) = rng.sample(SHAPES, 2), rng.sample(list(COLORS), 2)
    relation = rng.choice(RELATIONS)
    first, second = {"class": a, "count": 1, "color": color_a}, {"class": b, "count": 1, "color": color_b}
    spec = {"include": [first, {**second, "position": [relation, 0]}]}
    scene = scene_from_spec(spec, rng)
    flipped = {"include": [first, {**second, "position": [OPPOSITE[relation], 0]}]}
    return scene, {"true": caption(spec), "relation flipped": caption(flipped),
                   "no relation": caption({"include": [first, second]})}


SCENES = {"words": probe_scenes, "cells": cell_probe_scenes, "relations": relation_probe_scenes}


def object_cells(images: np.ndarray, backgrounds: np.ndarray, side: int) -> torch.Tensor:
    """(n, 1, side, side) 1 where most of a latent cell's pixels belong to an object."""
    far = np.abs(images.astype(np.int16) - backgrounds[:, None, None, :]).max(axis=-1) > FOREGROUND_DISTANCE
    share = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(far).float()[:, None], side)
    return (share > 0.5).float()


@torch.no_grad()
def probe(pipe, scenes: int = 96, seed: int = 0, timesteps=TIMESTEPS, kind: str = "words") -> dict:
    """{t: {variant: mean squared error of the predicted clean latent on object cells}}; kind: a key of SCENES."""
    captions, images, backgrounds = SCENES[kind](scenes, seed, pipe.vae.config.sample_size)
    x0 = pipe.vae.encode(to_tensor(images)).latent_dist.mean * pipe.vae.config.scaling_factor
    on_objects = object_cells(images, backgrounds, x0.shape[-1])
    contexts = {name: pipe.text_encoder(texts).context for name, texts in captions.items()}
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    scheduler = make_scheduler("ddpm", pipe.scheduler_config)
    errors = {}
    for t in timesteps:
        alpha_bar = float(scheduler.alphas_cumprod[t])
        x_t = alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * noise
        errors[t] = {}
        for name, context in contexts.items():
            out = Denoiser(pipe.unet)(x_t, torch.full((len(x0),), t), context)
            x0_pred = to_x0_and_eps(out, x_t, alpha_bar, scheduler.config.prediction_type)[0]
            errors[t][name] = float(((x0_pred - x0).pow(2) * on_objects).sum() / (on_objects.sum() * x0.shape[1]))
    return errors


def table(errors: dict) -> str:
    """The errors, and how much worse each wrong caption makes them than the true one."""
    variants = list(next(iter(errors.values())))
    wrong = [v for v in variants if v not in ("true", "empty")]
    lines = ["t     " + "".join(f"{v:>18}" for v in variants) + "".join(f"{'vs ' + v:>22}" for v in wrong)]
    for t, row in errors.items():
        lines.append(f"{t:<6}" + "".join(f"{row[v]:18.4f}" for v in variants)
                     + "".join(f"{100 * (row[v] / row['true'] - 1):21.1f}%" for v in wrong))
    return "\n".join(lines)


def main(argv=None) -> int:
    from ..options import guarded
    from ..pipeline import Pipeline

    parser = argparse.ArgumentParser(prog="python -m glassdiff.train.probe", description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", help="model folder (default: the embedded model)")
    words = parser.add_mutually_exclusive_group()
    words.add_argument("--cells", action="store_true", help="probe position words (a cell) instead")
    words.add_argument("--relations", action="store_true", help="probe relation words (left of, above) instead")
    parser.add_argument("--scenes", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the errors here")
    args = parser.parse_args(argv)

    def run():
        pipe = Pipeline.load(args.model) if args.model else Pipeline.default()
        kind = "cells" if args.cells else "relations" if args.relations else "words"
        errors = probe(pipe, args.scenes, args.seed, kind=kind)
        print("error of the predicted clean latent on object cells (lower is better):")
        print(table(errors))
        if args.json:
            from ..io import atomic_path

            with atomic_path(args.json) as tmp, open(tmp, "w") as f:
                json.dump(errors, f, indent=1)

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main())
