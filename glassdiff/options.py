"""What the command lines share: the sampling options, output paths, and running a command with one-line errors.

Light on purpose: importing this (and building a parser) imports no torch, so `--help` and bad input answer at
once. Exit codes: 0 success, 2 bad input (one line saying what and how to fix it), 130 interrupted, 1 anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import warnings

from .config import ENGINES, MAX_GUIDANCE, MAX_SEED, SAMPLERS, BadInput, Notice, SamplingConfig, notice, random_seed

SAMPLING_FIELDS = ("steps", "guidance", "seed", "sampler", "negative", "layout", "width", "height", "batch")


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (exit 2) instead of the usage block and the error."""

    def error(self, message):
        print(f"glassdiff: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def guarded(fn) -> int:
    """Run fn; a BadInput becomes one line on stderr and exit code 2, Ctrl-C one line and 130."""
    with warnings.catch_warnings():
        warnings.showwarning = functools.partial(_show_notice, warnings.showwarning)
        try:
            fn()
            return 0
        except BadInput as err:
            print(f"glassdiff: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("glassdiff: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `glassdiff info --json | head -1`: the reader left; nothing to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except Exception as err:  # noqa: BLE001 - the last line of defence
            if os.environ.get("GLASSDIFF_DEBUG"):
                raise
            print(f"glassdiff: error: {type(err).__name__}: {err} (set GLASSDIFF_DEBUG=1 for the traceback)",
                  file=sys.stderr)
            return 1


def _show_notice(show_other, message, category, filename, lineno, file=None, line=None):
    """Notices as one line; other warnings as Python shows them."""
    if issubclass(category, Notice):
        print(f"glassdiff: note: {message}", file=sys.stderr)
    else:
        show_other(message, category, filename, lineno, file, line)


def writable_output(path: str) -> str:
    """Refuse an output path that cannot be written, before any work is done. `-` is standard output; a symbolic
    link is followed (its target is written); a device or pipe is written in place."""
    from .io import STDOUT, is_stream

    if not path:
        raise BadInput("the output path is empty; give a file name such as out.png, or - for standard output")
    if path == STDOUT:
        return path
    if is_stream(path):
        if not os.access(path, os.W_OK):
            raise BadInput(f"cannot write {path}: not writable; choose another path")
        return path
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise BadInput(f"output {path} is a folder; give a file name such as {os.path.join(path, 'out.png')}")
    if not os.path.isdir(folder):
        raise BadInput(f"cannot write {path}: folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK):
        raise BadInput(f"cannot write {path}: folder {folder} is not writable; choose another path")
    return path


def distinct_outputs(paths: list[str]) -> list[str]:
    """Refuse two outputs that land on the same file (`-o a.png --trajectory a.png`, or through a link)."""
    from .io import destination

    seen = {}
    for path in paths:
        target = destination(path)
        if target in seen:
            raise BadInput(f"{seen[target]} and {path} would be written to the same file; give each its own name")
        seen[target] = path
    return paths


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def add_sampling_args(p: argparse.ArgumentParser):
    """The sampling options; each left out is None, so that --from-png knows which ones the user gave."""
    default = SamplingConfig()
    p.add_argument("--steps", type=int, help=f"denoising steps, 1-1000 (default {default.steps})")
    p.add_argument("--guidance", type=float,
                   help=f"classifier-free guidance scale, 0-{MAX_GUIDANCE:g} (default {default.guidance:g})")
    p.add_argument("--seed", type=_seed, help=f"0 to 2**64-1 ({MAX_SEED}), or -1 for a random one "
                                              f"(default {default.seed})")
    p.add_argument("--sampler", help=f"{', '.join(SAMPLERS)}, or A1111's names such as 'Euler a' "
                                     f"(default {default.sampler})")
    p.add_argument("--negative", help="negative prompt (the unconditional side of guidance)")
    add_layout_arg(p)
    add_model_args(p)
    p.add_argument("--width", type=int, default=None, help="pixels, a multiple of the autoencoder's factor")
    p.add_argument("--height", type=int, default=None)


def add_layout_arg(p: argparse.ArgumentParser):
    p.add_argument("--layout", type=float, default=None,
                   help="share of the steps that draw each object of a two-object prompt, or each copy of a "
                        "counted one, in a part of the canvas of its own (\"a star left of a heart\": the star's "
                        "prompt on the left half; \"three stars\": one star per part; \"a star\": a medium star in "
                        "the centre of the whole canvas); 1: every step, the seed picking a background and colours "
                        f"the prompt leaves free; 0 turns it off (default {SamplingConfig().layout}, or what the model "
                        "folder asks for: a distilled student's 1)")


def given_sampling(args) -> dict:
    """The sampling options the user gave (those left out are None)."""
    return {name: value for name in SAMPLING_FIELDS if (value := getattr(args, name, None)) is not None}


def sampling_config(params: dict) -> SamplingConfig:
    """A validated SamplingConfig from options; seed -1 becomes a random seed (recorded in the image)."""
    params = dict(params)
    if params.get("seed") == -1:
        params["seed"] = random_seed()
    return SamplingConfig(**params)


def add_model_args(p: argparse.ArgumentParser):
    from .checkpoints import PREDICTIONS

    p.add_argument("--model", default=None,
                   help="a model folder, a single-file SD 1.x/2.x checkpoint (.safetensors, .ckpt), or the name of "
                        "one in the models folder (glassdiff models); default: the embedded model")
    p.add_argument("--models", default=None, help="the models folder (default: $GLASSDIFF_MODELS or "
                                                  "~/.local/share/glassdiff/models)")
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="what runs the UNet: onnx (ONNX Runtime, glassdiff's own models), openvino (OpenVINO, any "
                        "model: the fastest a step, compiled for each new shape of a small UNet; for Stable "
                        "Diffusion's at more memory), torch (PyTorch, the reference) or auto (glassdiff's own "
                        "models: openvino, onnx for generate's single call; else torch; $GLASSDIFF_ENGINE)")
    p.add_argument("--prediction", choices=PREDICTIONS, default=None,
                   help="what a single file's UNet predicts, where its weights cannot say (an SD 2.x file is read "
                        "as v_prediction at 768x768 unless told epsilon)")


def model_path(args) -> str:
    """The --model value as a path, checked before torch is imported (a wrong one is a one-line error at once)."""
    from .checkpoints import is_single_file
    from .folders import read_index
    from .models import resolve

    path = resolve(getattr(args, "model", None), getattr(args, "models", None))
    if not is_single_file(path):
        read_index(path)
    return path


def load_pipeline(args):
    from .pipeline import Pipeline

    pipe = Pipeline.load(model_path(args), prediction=getattr(args, "prediction", None))
    pipe.engine = getattr(args, "engine", "auto")
    return pipe


def add_eval_args(p: argparse.ArgumentParser):
    add_model_args(p)
    p.add_argument("--prompts", default=None,
                   help="a GenEval metadata .jsonl, or 'seen' / 'heldout' (default: both shipped sets)")
    p.add_argument("--images-per-prompt", type=int, default=4)
    p.add_argument("--images", default=None, help="judge this GenEval-layout folder instead of generating")
    p.add_argument("--save-images", default=None, help="also write the generated images in GenEval's layout")
    p.add_argument("--json", default=None)
    p.add_argument("--sheet", default=None, help="contact sheet of passes and failures (PNG)")
    default = SamplingConfig()
    # left out: the model's own (a distilled student's), else the defaults
    p.add_argument("--steps", type=int, default=None, help=f"default {default.steps}")
    p.add_argument("--guidance", type=float, default=None, help=f"default {default.guidance:g}")
    p.add_argument("--sampler", default=None, help=f"default {default.sampler}")
    p.add_argument("--seed", type=_seed, default=default.seed)
    add_layout_arg(p)
    p.add_argument("--validate", type=int, default=500, help="fresh renders to validate the detector on")


# ---------------- a picture to start from (generate, explain) ----------------

def add_picture_args(p: argparse.ArgumentParser):
    p.add_argument("--init-image", default=None,
                   help="start from this picture (image-to-image): encoded, noised to --strength, redrawn")
    p.add_argument("--strength", type=float, default=None,
                   help="with --init-image: how much to redraw, 0 (keep the picture) to 1 (ignore it; default 0.6)")
    p.add_argument("--mask", default=None, help="with --init-image: redraw only where this mask is white (inpainting)")


@dataclasses.dataclass(frozen=True)
class Picture:
    """Image-to-image: the picture to start from, how much to redraw, and where (white = redraw), read once."""
    path: str
    strength: float
    mask_path: str | None
    image: object  # PIL images
    mask: object | None


def read_picture_args(path: str | None, strength: float | None, mask: str | None,
                      what: str = "--init-image") -> Picture | None:
    """The picture, strength (default 0.6) and mask the options name, each file read once; one line if wrong."""
    if path is None:
        if strength is not None or mask is not None:
            raise BadInput("--strength and --mask go with --init-image (the picture to start from)")
        return None
    strength = 0.6 if strength is None else strength
    if not 0 <= strength <= 1:
        raise BadInput(f"--strength {strength} is outside [0, 1]: 0 keeps the picture, 1 ignores it")
    from .forward import read_picture

    picture = read_picture(path, what)
    mask_image = read_picture(mask, "--mask") if mask is not None else None
    if mask_image is not None and mask_image.size != picture.size:
        notice(f"--mask {mask} is {mask_image.size[0]}x{mask_image.size[1]}, the picture "
               f"{picture.size[0]}x{picture.size[1]}: the mask is resized to the image")
    return Picture(path, strength, mask, picture, mask_image)


def asked_sampling(args, picture: Picture | None = None) -> SamplingConfig:
    """The sampling options given, over what the model folder asks for (a distilled student's sampler, steps and
    guidance), over the defaults; a picture's size unless --width or --height say otherwise."""
    from .folders import model_sampling

    try:
        asked = model_sampling(model_path(args))
    except BadInput:  # a wrong --model is one line where the model is loaded, after the outputs are checked
        asked = {}
    return sampling_config({**asked, **picture_size(picture, given_sampling(args))})


def picture_size(picture: Picture | None, given: dict) -> dict:
    """The picture's size is the image's, unless --width or --height say otherwise (then the picture is resized)."""
    if picture is None or {"width", "height"} & given.keys():
        return given
    width, height = picture.image.size
    return {**given, "width": width, "height": height}


def picture_inputs(picture: Picture | None) -> dict:
    """Pipeline arguments for a picture-started image."""
    if picture is None:
        return {}
    return {"init_image": picture.image, "strength": picture.strength, "mask": picture.mask}
