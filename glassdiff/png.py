"""Image files with A1111's generation parameters, written and read back.

PNG keeps them in a "parameters" text chunk, JPEG and WebP in the EXIF UserComment, as A1111 writes them.
The text is A1111's: the prompt (any number of lines), then "Negative prompt: ..." (any number of lines),
then one settings line of "Key: value" pairs ("Steps: 15, Sampler: DPM++ 2M, CFG scale: 4.0, Seed: 0, ...").
"""

from __future__ import annotations

import dataclasses
import os
import re

from PIL import Image, PngImagePlugin

from .config import A1111_SAMPLERS, BadInput, sampler_name
from .io import atomic_path, is_stream

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
NEGATIVE = "Negative prompt:"
# A1111's pattern for one "Key: value" pair of the settings line (a value may be quoted)
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286
_INFORMATIONAL = {"Version", "Model", "Model hash", "Batch size", "Batch pos", "Schedule type"}
PICTURE_FIELDS = ("Denoising strength", "Init image", "Init image hash", "Mask", "Mask hash")


def image_format(path: str) -> str:
    """The format the output's name asks for (PNG for standard output, a device or a name without extension)."""
    extension = "" if is_stream(path) else os.path.splitext(path)[1].lower()
    if extension and extension not in FORMATS:
        raise BadInput(f"cannot write {path}: glassdiff writes images as {', '.join(FORMATS)}; "
                       f"name the file with one of those")
    return FORMATS.get(extension, "PNG")


def save_png(image: Image.Image, path: str, parameters: str):
    """Write `image` in the format its name asks for, with the parameters in its metadata."""
    kind = image_format(path)
    if kind == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", parameters)
        options = {"pnginfo": info}
    else:
        exif = Image.Exif()
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = b"UNICODE\0" + parameters.encode("utf-16-be")
        options = {"exif": exif.tobytes(), "quality": 95}
    try:
        with atomic_path(path) as tmp:
            image.save(tmp, format=kind, **options)
    except OSError as err:
        raise BadInput(f"cannot write {path}: {err.strerror or err}; choose another path") from err


def output_paths(path: str, batch: int) -> list[str]:
    """out.png for one image; out-0.png .. out-{K-1}.png for a batch."""
    if batch == 1:
        return [path]
    stem, ext = os.path.splitext(path)
    return [f"{stem}-{k}{ext or '.png'}" for k in range(batch)]


@dataclasses.dataclass(frozen=True)
class Parameters:
    """What an image's parameters text says: the prompts, the sampling fields it sets, and facts to check."""

    prompt: str
    params: dict  # SamplingConfig fields the text sets (negative and layout always)
    model_hash: str | None = None
    batch_size: int = 1  # the batch the image was drawn in, and its place there (A1111's Batch size, Batch pos)
    batch_pos: int = 0
    notes: tuple[str, ...] = ()  # what was read but cannot be honoured
    picture: dict = dataclasses.field(default_factory=dict)  # image-to-image: PICTURE_FIELDS it names


def read_parameters_text(path: str) -> str:
    try:
        with Image.open(path) as image:
            text = image.info.get("parameters")
            if text is None and image.format in ("JPEG", "WEBP"):
                text = _user_comment(image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT))
    except OSError as err:
        raise BadInput(f"cannot read {path} as an image: {err}") from err
    if not text:
        raise BadInput(f"{path} has no generation parameters (a PNG 'parameters' chunk or an EXIF UserComment); "
                       f"was it written by glassdiff generate or A1111?")
    return text


def _user_comment(raw) -> str | None:
    if isinstance(raw, str):
        return raw
    if not raw:
        return None
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\0":
        return body.decode("utf-16-le" if body[:1] != b"\0" and body[1:2] == b"\0" else "utf-16-be", "replace")
    return body.decode("utf-8", "replace")


def parse_parameters(text: str, source: str = "the parameters") -> Parameters:
    """A1111's parameters text -> Parameters; a text without a settings line is all prompt."""
    lines = text.rstrip("\n").split("\n")
    settings = dict(_PAIR.findall(lines[-1])) if len(_PAIR.findall(lines[-1])) >= 3 else {}
    if settings:
        lines = lines[:-1]
    prompt_lines, negative_lines = [], None
    for line in lines:
        if negative_lines is None and line.startswith(NEGATIVE):
            negative_lines = [line[len(NEGATIVE) + (line[len(NEGATIVE):].startswith(" ")):]]
        elif negative_lines is not None:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)
    settings = {key.strip(): value.strip().strip('"') for key, value in settings.items()}
    params = {"negative": "\n".join(negative_lines or []), "layout": 0.0}  # no Layout field: no layout was drawn
    notes = [] if settings else [f"{source} has no settings line; drawing with the default settings"]
    try:
        params.update(_settings(settings, notes))
        batch = int(settings.get("Batch size", 1)), int(settings.get("Batch pos", 0))
    except ValueError as err:
        raise BadInput(f"{source}: unreadable settings line {text.splitlines()[-1]!r} ({err})") from err
    picture = {key: settings[key] for key in PICTURE_FIELDS if key in settings}
    return Parameters("\n".join(prompt_lines), params, settings.get("Model hash"), *batch, tuple(notes), picture)


def _settings(settings: dict, notes: list) -> dict:
    params = {}
    for key, name, kind in (("Steps", "steps", int), ("CFG scale", "guidance", float), ("Seed", "seed", int),
                            ("Layout", "layout", float)):
        if key in settings:
            params[name] = kind(settings[key])
    if "Size" in settings:
        width, height = settings["Size"].split("x")
        params["width"], params["height"] = int(width), int(height)
    if "Sampler" in settings:
        sampler = settings["Sampler"]
        if sampler.endswith(" Karras") and sampler[:-len(" Karras")] in A1111_SAMPLERS:
            sampler = sampler[:-len(" Karras")]
            notes.append("the Karras schedule is not implemented; drawing with the model's own schedule")
        params["sampler"] = sampler_name(sampler)
    if settings.get("Schedule type", "Automatic") != "Automatic":
        notes.append(f"schedule type {settings['Schedule type']} is not implemented; "
                     f"drawing with the model's own schedule")
    ignored = sorted(key for key in settings if key not in _INFORMATIONAL and key not in PICTURE_FIELDS and key not in
                     ("Steps", "CFG scale", "Seed", "Layout", "Size", "Sampler"))
    if ignored:
        notes.append(f"ignored settings glassdiff does not implement: {', '.join(ignored)}")
    return params


def params_from_png(path: str) -> Parameters:
    """The parameters an image written by glassdiff or A1111 carries."""
    return parse_parameters(read_parameters_text(path), path)
