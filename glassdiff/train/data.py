"""Training data: the shapes world drawn on the fly, or a folder of captioned images.

A folder holds images with either a `.txt` caption beside each or a
`metadata.jsonl` of {"file_name", "text"} (the layout diffusers' training
scripts read). Images are resized and centre-cropped to the model's size.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import warnings

import numpy as np
import torch
from PIL import Image

from ..config import BadInput
from ..world import HELDOUT_COLOR_SHAPE, render_array, sample_spec, scene_from_spec
from ..world.captions import NAMED_CELL_SHARE, NAMED_COLOR_SHARE, caption
from ..world.scene import recolored

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def shapes_examples(n: int, seed: int, size: int, scenes_per_caption: int = 1,
                    p_color: float = NAMED_COLOR_SHARE, p_cell: float = NAMED_CELL_SHARE, chunks: int = 1,
                    tags: dict[str, float] | None = None):
    """(captions, images uint8 (n*k, size, size, 3)) of training scenes, deterministic in (seed, chunks).

    chunks > 1 draws the set as that many independently seeded parts, built in parallel (a process per core);
    chunks 1 is one random stream, as the shipped recipe's stages drew it. tags: the task mix (TRAIN_TAGS).
    """
    if chunks <= 1:
        return _draw_examples(n, seed, size, scenes_per_caption, p_color, p_cell, tags)
    sizes = [n // chunks + (i < n % chunks) for i in range(chunks)]
    jobs = [(k, f"{seed}:{i}", size, scenes_per_caption, p_color, p_cell, tags) for i, k in enumerate(sizes)]
    with multiprocessing.get_context("fork").Pool(min(chunks, os.cpu_count() or 1)) as pool:
        parts = pool.starmap(_draw_examples, jobs)
    return [c for captions, _ in parts for c in captions], np.concatenate([images for _, images in parts])


def _draw_examples(n: int, seed, size: int, scenes_per_caption: int, p_color: float, p_cell: float, tags=None):
    rng = random.Random(seed)
    captions, images = [], []
    for _ in range(n):
        spec = sample_spec(rng, p_color=p_color, p_cell=p_cell, tags=tags)
        captions.append(spec["prompt"])
        for _k in range(scenes_per_caption):
            images.append(render_array(scene_from_spec(spec, rng, banned_pairs=HELDOUT_COLOR_SHAPE), size))
    return captions, np.stack(images)


# recoloured pairs name one kind of object (one, or copies of one): recolouring two kinds asks the model to bind two
# colours to two objects, which it does poorly alone (docs/training-log.md, "Recolouring")
RECOLOR_TASKS = {"single_object": 3, "counting": 2}


def recolor_examples(n: int, seed, size: int, p_cell: float = NAMED_CELL_SHARE):
    """(captions, images, sources): n scenes drawn twice, the same shapes in the same places, the second time in
    other colours (one object's or every object's); the caption states the second scene, every colour named, and
    the source is the first. Image-to-image starts from a picture and a prompt that may ask for other colours:
    these pairs teach the denoiser to follow the prompt's colours from a noised picture (denoiser.v_loss)."""
    rng = random.Random(seed)
    captions, images, sources = [], [], []
    for _ in range(n):
        spec = sample_spec(rng, p_color=1.0, p_cell=p_cell, tags=RECOLOR_TASKS)
        scene = scene_from_spec(spec, rng, banned_pairs=HELDOUT_COLOR_SHAPE)
        target_spec, target_scene = recolored(spec, scene, rng, banned_pairs=HELDOUT_COLOR_SHAPE)
        captions.append(caption(target_spec, rng))
        images.append(render_array(target_scene, size))
        sources.append(render_array(scene, size))
    return captions, np.stack(images), np.stack(sources)


def center_crop_resize(image: Image.Image, size: int) -> np.ndarray:
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.convert("RGB").crop((left, top, left + side, top + side))
    return np.asarray(image.resize((size, size), Image.BICUBIC))


def _captions_of(folder: str) -> dict[str, str]:
    meta = os.path.join(folder, "metadata.jsonl")
    if os.path.exists(meta):
        out = {}
        with open(meta) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    out[row["file_name"]] = str(row["text"])
                except (ValueError, KeyError) as err:
                    raise BadInput(f"{meta} line {n}: expected JSON with file_name and text ({err})") from err
        return out
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.lower().endswith(IMAGE_EXTS):
            txt = os.path.join(folder, os.path.splitext(name)[0] + ".txt")
            if os.path.exists(txt):
                with open(txt) as f:
                    out[name] = f.read().strip()
    return out


def folder_examples(folder: str, size: int) -> tuple[list[str], np.ndarray, list[str]]:
    """(captions, images, skipped file names) from a folder; corrupt images are skipped with a warning."""
    if not os.path.isdir(folder):
        raise BadInput(f"data folder {folder} does not exist; give a folder of images with captions")
    captions = _captions_of(folder)
    images_present = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTS)]
    if not images_present:
        raise BadInput(f"data folder {folder} holds no images ({', '.join(IMAGE_EXTS)})")
    if not captions:
        raise BadInput(f"images in {folder} have no captions: add a .txt beside each image or a metadata.jsonl")
    texts, arrays, skipped = [], [], []
    for name, text in sorted(captions.items()):
        try:
            with Image.open(os.path.join(folder, name)) as image:
                arrays.append(center_crop_resize(image, size))
            texts.append(text)
        except Exception as err:  # noqa: BLE001 - any unreadable image is skipped and counted
            warnings.warn(f"skipping {name}: {err}", stacklevel=2)
            skipped.append(name)
    if not arrays:
        raise BadInput(f"no readable images in {folder} ({len(skipped)} skipped)")
    return texts, np.stack(arrays), skipped
