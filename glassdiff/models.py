"""The models folder: the models a user keeps, listed and chosen by name, without loading them.

A model there is a folder (glassdiff's or diffusers' layout) or a single-file SD checkpoint; its name is the folder's
or the file's name without its extension. `default` is the embedded model, `default-fast` its distilled student
(weights/fast: 4 steps, one UNet pass each). The folder is $GLASSDIFF_MODELS, or
~/.local/share/glassdiff/models. Reading what a model is takes only its configs and safetensors headers: no torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct

from .config import BadInput
from .folders import read_index, text_encoder_kind

DEFAULT = "default"
FAST = "default-fast"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    path: str
    kind: str  # glassdiff, sd1, sd2
    prediction: str  # epsilon, v_prediction, or "?" where only the user can say
    native: int  # pixels a side
    params: int
    bytes: int


def models_dir(given: str | None = None) -> str:
    return given or os.environ.get("GLASSDIFF_MODELS") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share"), "glassdiff",
        "models")


def embedded_dir() -> str:
    return os.path.join(os.path.dirname(__file__), "weights")


def embedded() -> dict[str, str]:
    """The models glassdiff ships, by name: the default model, and its distilled student where it is installed."""
    student = os.path.join(embedded_dir(), "fast")
    return {DEFAULT: embedded_dir(), **({FAST: student} if os.path.isfile(os.path.join(student, "model_index.json"))
                                       else {})}


def list_models(folder: str | None = None) -> list[ModelEntry]:
    """The embedded model, then every model in the folder that can be read, by name."""
    from .checkpoints import SUFFIXES

    entries = [describe(name, path) for name, path in embedded().items()]
    folder = models_dir(folder)
    if not os.path.isdir(folder):
        return entries
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        is_model = os.path.isfile(os.path.join(path, "model_index.json")) or name.lower().endswith(SUFFIXES)
        if is_model and not name.startswith("."):
            try:
                entries.append(describe(os.path.splitext(name)[0] if os.path.isfile(path) else name, path))
            except BadInput:
                continue  # `glassdiff models` lists what loads; --model NAME says why one does not
    return entries


def resolve(model: str | None, folder: str | None = None) -> str:
    """A --model value -> a path: `default` or nothing for the embedded model, `default-fast` for its student, an
    existing path as it is, else a name in the models folder."""
    model, shipped = model or DEFAULT, embedded()
    if model in shipped:
        return shipped[model]
    if os.path.exists(model):
        return model
    if os.sep in model or model.lower().endswith((".safetensors", ".ckpt", ".pt", ".pth")):
        raise BadInput(f"model {model} does not exist; give a model folder, a .safetensors or .ckpt file, or a name "
                       f"that `glassdiff models` lists")
    folder = models_dir(folder)
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if model in (name, os.path.splitext(name)[0]):
                return os.path.join(folder, name)
    raise BadInput(f"no model {model!r}: it is not a path, and {folder} has no model of that name "
                   f"(glassdiff models lists them)")


def describe(name: str, path: str) -> ModelEntry:
    if os.path.isfile(path):
        return _describe_file(name, path)
    index = read_index(path)
    unet = _json(os.path.join(path, "unet", "config.json"))
    vae = _json(os.path.join(path, "vae", "config.json"))
    scheduler = _json(os.path.join(path, "scheduler", "scheduler_config.json"))
    if text_encoder_kind(index, path) == "minilm":
        kind = "glassdiff"
    else:
        kind = "sd2" if unet.get("use_linear_projection") else "sd1"
    native = unet.get("sample_size", 64) * 2 ** (len(vae.get("block_out_channels", (0,) * 4)) - 1)
    files = _files(path)
    return ModelEntry(name, path, kind, scheduler.get("prediction_type", "epsilon"), native,
                      sum(_parameters(header_of(f)[0]) for f in files if f.endswith(".safetensors")),
                      sum(os.path.getsize(f) for f in files))


def _describe_file(name: str, path: str) -> ModelEntry:
    from .checkpoints import kind_of

    if not path.lower().endswith(".safetensors"):  # a pickle is not opened to be listed
        return ModelEntry(name, path, "sd?", "?", 0, 0, os.path.getsize(path))
    header = header_of(path)[0]
    kind = kind_of(dict.fromkeys(header), path)
    prediction = "epsilon" if kind == "sd1" else "v_prediction"
    return ModelEntry(name, path, kind, prediction, 512 if kind == "sd1" else 768, _parameters(header),
                      os.path.getsize(path))


def header_of(path: str) -> tuple[dict, int]:
    """A safetensors file's table of tensors (name -> dtype, shape, data offsets) and where their data starts, read
    without loading them."""
    try:
        with open(path, "rb") as f:
            length = struct.unpack("<Q", f.read(8))[0]
            if length > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(f.read(length))
        if not isinstance(header, dict):
            raise ValueError("its header is no table")
    except (OSError, ValueError, struct.error) as err:
        raise BadInput(f"{path} cannot be read as safetensors ({err}); it may be truncated") from err
    header.pop("__metadata__", None)
    return header, 8 + length


def _parameters(header: dict) -> int:
    total = 0
    for entry in header.values():
        count = 1
        for size in entry.get("shape", ()):
            count *= size
        total += count
    return total


def _json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise BadInput(f"{path} is missing or unreadable; the model folder is incomplete") from err


def _files(folder: str):
    return [os.path.join(root, f) for root, _, files in os.walk(folder) for f in files]
