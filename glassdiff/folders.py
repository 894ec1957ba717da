"""Model folders: what a folder's model_index.json says, checked before anything heavy is imported.

A folder is diffusers' layout (model_index.json, unet/, vae/, scheduler/, text_encoder/ ...): glassdiff's own,
with the MiniLM text encoder named in a note, or a Stable Diffusion 1.x/2.x folder with CLIP's.
"""

from __future__ import annotations

import json
import os

from .config import BadInput

PIPELINES = ("GlassdiffPipeline", "StableDiffusionPipeline")
TEXT_ENCODERS = {("glassdiff", "minilm"): "minilm", ("transformers", "CLIPTextModel"): "clip"}
TRAINING_FILE = "training.json"  # what glassdiff's training wrote of the weights: {"steps": denoiser steps taken}


def read_index(folder: str) -> dict:
    """The folder's model_index.json, refused with one line when glassdiff cannot load what it names."""
    if not os.path.isdir(folder):
        raise BadInput(f"model folder {folder} does not exist; give a folder written by `glassdiff train`, "
                       f"Pipeline.save or diffusers' save_pretrained")
    path = os.path.join(folder, "model_index.json")
    try:
        with open(path) as f:
            index = json.load(f)
        if not isinstance(index, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        raise BadInput(f"{path} is missing or unreadable ({first_line(err)}); is {folder} a model folder?") from err
    pipeline = index.get("_class_name", "GlassdiffPipeline")
    if pipeline not in PIPELINES:
        raise BadInput(f"{folder} holds a {pipeline}; glassdiff loads its own folders and Stable Diffusion "
                       f"1.x/2.x folders ({', '.join(PIPELINES)})")
    text_encoder_kind(index, folder)
    return index


def text_encoder_kind(index: dict, folder: str) -> str:
    """'minilm' or 'clip'; a CLIP folder must have its tokenizer beside the text encoder."""
    named = tuple(index.get("text_encoder") or ("glassdiff", "minilm"))
    if named not in TEXT_ENCODERS:
        raise BadInput(f"{folder}: text encoder {' '.join(map(str, named))} is not one glassdiff runs "
                       f"(CLIPTextModel or glassdiff's MiniLM)")
    kind = TEXT_ENCODERS[named]
    if kind == "clip" and not any(os.path.isfile(os.path.join(folder, "tokenizer", name))
                                  for name in ("tokenizer.json", "vocab.json")):
        raise BadInput(f"{folder} has a CLIP text encoder but no tokenizer (tokenizer/tokenizer.json or vocab.json); "
                       f"copy the tokenizer folder that came with the model beside text_encoder/")
    return kind


def first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def read_training(folder: str) -> dict:
    """A model folder's training record ({} when it has none); an unreadable one is one line."""
    path = os.path.join(folder, TRAINING_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise BadInput(f"{path}: cannot read the training record ({first_line(err)}); fix or delete it") from err
    if not isinstance(record, dict) or not isinstance(record.get("steps", 0), int):
        raise BadInput(f"{path}: the training record should be {{\"steps\": N}}; fix or delete it")
    return record


SAMPLING_KEYS = ("sampler", "steps", "guidance", "layout")


def model_sampling(path: str) -> dict:
    """The sampling a model folder asks for in place of the defaults (a distilled student: {"sampler": "lcm",
    "steps": 4, "guidance": 1.0, "layout": 1.0}, from its training record); {} for any other model or a single file."""
    if not os.path.isdir(path):
        return {}
    sampling = read_training(path).get("sampling", {})
    if not isinstance(sampling, dict) or set(sampling) - set(SAMPLING_KEYS):
        raise BadInput(f"{os.path.join(path, TRAINING_FILE)}: \"sampling\" may name only {', '.join(SAMPLING_KEYS)}; "
                       f"fix or delete it")
    return sampling
