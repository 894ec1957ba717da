"""Frozen configuration: sampling parameters (validated) and model presets."""

from __future__ import annotations

import dataclasses
import math
import unicodedata

SAMPLERS = ("ddpm", "ddim", "euler", "euler_a", "dpmpp_2m", "unipc", "lms", "lcm")  # lcm: for distilled students
# A1111's names for the same samplers (what its PNGs record and its API takes); "DPM++ 2M Karras" is older A1111's
# name for DPM++ 2M with the Karras schedule type
A1111_SAMPLERS = {"DDPM": "ddpm", "DDIM": "ddim", "Euler": "euler", "Euler a": "euler_a", "DPM++ 2M": "dpmpp_2m",
                  "UniPC": "unipc", "LMS": "lms", "LCM": "lcm"}
MAX_STEPS = 1000
MAX_SEED = 2**64 - 1  # seeds are 64-bit, as diffusers' and A1111's users write them; -1 draws one at random
MAX_GUIDANCE = 30.0  # A1111's CFG range; 0 ignores the prompt, 1 is the prompt alone
# Share of the steps drawn with the whole prompt before a layout's regions (at least one). At the default 15
# steps, one: the benchmark's color_attr prompts (400 images) score 0.863 so, 0.815 with regions from the
# first step (their canvases chose backgrounds apart), 0.590 from the third (the places are decided by then).
LAYOUT_START_SHARE = 1 / 15
MAX_PIXELS = 1024 * 1024  # beyond this a CPU run is out of memory or out of patience


ENGINES = ("auto", "onnx", "openvino", "torch")  # what runs the UNet (engine.py)


class BadInput(ValueError):
    """A user's mistake: the message says what was wrong and how to fix it (exit code 2)."""


class Notice(UserWarning):
    """Something the user should know that is no error (a truncated prompt, a setting that cannot be honoured);
    the command line prints it as one line."""


def notice(message: str):
    """Tell the user something that is no error (the command line prints it as one line)."""
    import warnings

    warnings.warn(Notice(message), stacklevel=2)


class BadType(BadInput, TypeError):
    """A value of the wrong type (a TypeError too, for Python callers)."""


def sampler_name(name) -> str:
    """glassdiff's name of a sampler given by its own name or A1111's ("Euler a" -> "euler_a")."""
    if not isinstance(name, str):
        raise BadType(f"sampler must be a name such as {SAMPLERS[0]!r}, got {type(name).__name__}")
    if name in SAMPLERS:
        return name
    by_a1111 = {key.lower(): value for key, value in A1111_SAMPLERS.items()}
    if name.strip().lower() in by_a1111:
        return by_a1111[name.strip().lower()]
    raise BadInput(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)} "
                   f"(or A1111's names: {', '.join(A1111_SAMPLERS)})")


def random_seed() -> int:
    """A seed for --seed -1: 32 bits, as A1111 draws them (short enough to read aloud)."""
    import random

    return random.randrange(2**32)


def _check_type(name: str, value, kind: type, what: str):
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if not ok and kind is float:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        raise BadType(f"--{name} must be {what}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    steps: int = 15  # dpmpp_2m: 15 steps keep one 64x64 image under a second on 2 cores
    guidance: float = 4.0
    sampler: str = "dpmpp_2m"
    seed: int = 0
    width: int | None = None  # None: the model's native size
    height: int | None = None
    batch: int = 1
    negative: str = ""
    layout: float = 0.33  # share of the steps a planned prompt is drawn region by region (layout.py); 0: never

    def __post_init__(self):
        for name, kind, what in (("steps", int, "a whole number"), ("guidance", float, "a number"),
                                 ("seed", int, "a whole number"), ("batch", int, "a whole number"),
                                 ("layout", float, "a number"), ("negative", str, "a string")):
            _check_type(name, getattr(self, name), kind, what)
        for name in ("width", "height"):
            if getattr(self, name) is not None:
                _check_type(name, getattr(self, name), int, "a whole number of pixels")
                if getattr(self, name) < 1:
                    raise BadInput(f"--{name} must be a positive number of pixels, got {getattr(self, name)}")
        object.__setattr__(self, "sampler", sampler_name(self.sampler))
        if not 1 <= self.steps <= MAX_STEPS:
            raise BadInput(f"--steps must be between 1 and {MAX_STEPS}, got {self.steps}")
        if not math.isfinite(self.guidance):
            raise BadInput(f"--guidance must be a finite number, got {self.guidance}")
        if not 0 <= self.guidance <= MAX_GUIDANCE:
            raise BadInput(f"--guidance must be between 0 and {MAX_GUIDANCE:g}, got {self.guidance:g} "
                           "(0 ignores the prompt, 1 is the prompt alone, 3-8 is usual)")
        if self.batch < 1:
            raise BadInput(f"--batch must be at least 1, got {self.batch}")
        if not 0.0 <= self.layout <= 1.0:
            raise BadInput(f"--layout must be a share of the steps between 0 and 1, got {self.layout}")
        if not 0 <= self.seed <= MAX_SEED:
            raise BadInput(f"--seed must be between 0 and 2**64-1 ({MAX_SEED}), or -1 for a random one; "
                           f"got {self.seed}")
        if self.seed + self.batch - 1 > MAX_SEED:
            raise BadInput(f"--batch {self.batch} from --seed {self.seed} runs past the largest seed, {MAX_SEED}; "
                           f"start at {MAX_SEED - self.batch + 1} or lower")
        check_prompt(self.negative, "negative prompt", empty_ok=True)

    @property
    def layout_start(self) -> int:
        """The steps before a layout's regions: the whole prompt settles the background (sampling.Regions). None at
        layout 1, every step region by region; the planner then names a background (layout.plan)."""
        if self.layout >= 1:
            return 0
        return max(1, round(self.steps * LAYOUT_START_SHARE))

    @property
    def layout_steps(self) -> int:
        """The steps drawn region by region, from layout_start on."""
        return min(round(self.steps * self.layout), self.steps - self.layout_start)

    def size_for(self, native: int, factor: int, smallest: int = 0) -> tuple[int, int]:
        """(height, width) in pixels, checked against the autoencoder's factor and the smallest size the model's
        UNet can halve at every level."""
        height = native if self.height is None else self.height
        width = native if self.width is None else self.width
        for name, value in (("--height", height), ("--width", width)):
            if value < factor or value % factor:
                nearest = max(factor, value // factor * factor)
                raise BadInput(f"{name} {value} is not a positive multiple of {factor}; try {nearest}")
            if value < smallest:
                raise BadInput(f"{name} {value} is below the smallest size this model draws, {smallest}")
        if height * width > MAX_PIXELS:
            raise BadInput(f"{width}x{height} is too large for CPU memory; keep width*height at most {MAX_PIXELS}")
        return height, width


def check_prompt(prompt, what: str = "prompt", empty_ok: bool = False) -> str:
    """A prompt is a string of printable text (newlines and tabs allowed), not blank unless empty_ok."""
    if not isinstance(prompt, str):
        raise BadType(f"{what} must be a string, got {type(prompt).__name__}")
    if not empty_ok and not prompt.strip():
        raise BadInput(f"the {what} is empty; describe the image, e.g. \"a red star on the left\"")
    bad = next((ch for ch in prompt if unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t"), None)
    if bad is not None:
        raise BadInput(f"the {what} holds the control character U+{ord(bad):04X}; remove it")
    return prompt


def _preset(presets: dict, name: str, what: str) -> dict:
    if name not in presets:
        raise BadInput(f"--preset {name}: no {what} preset of that name; choose one of {', '.join(presets)}")
    return presets[name]


def autoencoder_preset(name: str = "shapes64") -> dict:
    """diffusers AutoencoderKL config; 'shapes64' maps 64x64x3 to 16x16x8 (4 channels learned too slowly here)."""
    presets = {
        "shapes64": dict(block_out_channels=(16, 32, 64), layers_per_block=1, latent_channels=8,
                         norm_num_groups=8, sample_size=64, mid_block_add_attention=False),
        "tiny": dict(block_out_channels=(8, 8), layers_per_block=1, latent_channels=8,
                     norm_num_groups=4, sample_size=16, mid_block_add_attention=False),
    }
    cfg = dict(_preset(presets, name, "autoencoder"))
    n = len(cfg["block_out_channels"])
    cfg.update(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
               up_block_types=("UpDecoderBlock2D",) * n)
    return cfg


HEAD_DIM = 32
COORDINATE_CHANNELS = 2  # the x and y planes a coordinate-taking UNet reads beside the latent (denoiser.unet_input)


def unet_preset(name: str = "shapes64", cross_attention_dim: int = 384, latent_channels: int = 8,
                heads: int = 0, coordinates: bool = False) -> dict:
    """diffusers UNet2DConditionModel config; `heads` > 0 fixes the number of attention heads per block instead.

    coordinates: the UNet also takes the COORDINATE_CHANNELS planes of denoiser.unet_input."""
    presets = {
        "shapes64": dict(sample_size=16, block_out_channels=(64, 128, 192), layers_per_block=1, norm_num_groups=32),
        # the 3-hour CPU recipe's UNet: two thirds of shapes64's parameters, a training step in about 70% of its time
        "small": dict(sample_size=16, block_out_channels=(48, 96, 160), layers_per_block=1, norm_num_groups=16),
        "tiny": dict(sample_size=8, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4),
    }
    cfg = dict(_preset(presets, name, "UNet"))
    n = len(cfg["block_out_channels"])
    # diffusers reads `attention_head_dim` as the number of heads (a legacy naming it keeps for old configs):
    # ask for heads of HEAD_DIM channels. 32 "head dims" here meant 32 heads of 4-6 channels, which weakened
    # cross-attention and cost 30% more time per training step.
    cfg["attention_head_dim"] = heads if heads > 0 else tuple(max(1, c // HEAD_DIM) for c in cfg["block_out_channels"])
    # cross-attention below the top level: self-attention over 16x16 tokens costs more than it gives here
    cfg.update(in_channels=latent_channels + (COORDINATE_CHANNELS if coordinates else 0), out_channels=latent_channels,
               cross_attention_dim=cross_attention_dim,
               down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
               up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",))
    return cfg


def scheduler_preset() -> dict:
    """The noise schedule the default model is trained on (and every sampler reads)."""
    return dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                prediction_type="v_prediction", clip_sample=False, steps_offset=1)
