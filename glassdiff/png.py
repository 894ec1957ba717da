"""PNG files with A1111's "parameters" text chunk: writing them and reading them back."""

from __future__ import annotations

import os
import re

from PIL import Image, PngImagePlugin

from .config import BadInput
from .io import atomic_path

_KEYS = {"Steps": ("steps", int), "Sampler": ("sampler", str), "CFG scale": ("guidance", float),
         "Seed": ("seed", int), "Layout": ("layout", float)}


def save_png(image: Image.Image, path: str, parameters: str):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    try:
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG", pnginfo=info)
    except OSError as err:
        raise BadInput(f"cannot write {path}: {err.strerror or err}; choose another path") from err


def output_paths(path: str, batch: int) -> list[str]:
    """out.png for one image; out-0.png .. out-{K-1}.png for a batch."""
    if batch == 1:
        return [path]
    stem, ext = os.path.splitext(path)
    return [f"{stem}-{k}{ext or '.png'}" for k in range(batch)]


def params_from_png(path: str) -> tuple[str, dict]:
    """(prompt, sampling params) from a PNG's "parameters" chunk, as written by glassdiff or A1111."""
    try:
        with Image.open(path) as image:
            text = image.info.get("parameters")
    except OSError as err:
        raise BadInput(f"cannot read {path} as a PNG: {err}") from err
    if not text:
        raise BadInput(f"{path} has no 'parameters' text chunk; was it written by glassdiff generate?")
    lines = text.strip().split("\n")
    settings_line = lines[-1]
    negative = ""
    prompt_lines = []
    for line in lines[:-1]:
        if line.startswith("Negative prompt:"):
            negative = line[len("Negative prompt:"):].strip()
        else:
            prompt_lines.append(line)
    fields = dict(re.findall(r"\s*([^:,]+):\s*([^,]+)", settings_line))
    params = {"negative": negative, "batch": 1, "layout": 0.0}  # without a Layout field, no layout was drawn
    try:
        for key, (name, kind) in _KEYS.items():
            if key in fields:
                params[name] = kind(fields[key].strip())
        if "Size" in fields:
            width, height = fields["Size"].strip().split("x")
            params["width"], params["height"] = int(width), int(height)
    except ValueError as err:
        raise BadInput(f"{path}: unreadable parameters line {settings_line!r} ({err})") from err
    return "\n".join(prompt_lines), params
