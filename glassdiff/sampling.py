"""The loop: from seeded noise to a clean latent, one observable step at a time.

Notation (DDPM / DDIM papers, spelled out):

| name            | symbol                  | meaning                                                   |
|-----------------|-------------------------|-----------------------------------------------------------|
| x_t             | x_t                     | the latent going into a step (the scheduler's own space)  |
| x_in            | x_t / sqrt(sigma^2 + 1) | the variance-preserving latent the model sees             |
| alpha_bar       | alpha-bar_t             | signal share of x_in at timestep t                        |
| sigma           | sqrt((1-a)/a)           | noise level of timestep t (a = alpha_bar)                 |
| eps_cond        | eps_theta(x_t, c)       | noise predicted with the prompt                           |
| eps_uncond      | eps_theta(x_t, empty)   | noise predicted with the empty or negative prompt         |
| eps             | eps_u + s (eps_c - eps_u) | the guided noise (s = guidance_scale)                   |
| x0_pred         | x-hat_0                 | the clean latent the model expects at this step           |
| x_next          | x_{t-1}                 | the latent after the scheduler's step                     |

With Regions (a layout, layout.py), the early steps draw a collage: after a first step of the whole prompt,
each region is denoised on a canvas of its own, cut from its image's latent, with its own prompt; then each
canvas is cut to its region and the pieces pasted into one image (the scheduler's memory of earlier steps
too), which the whole prompt finishes. A step record of the regions' steps shows the pasted canvases.

Observers receive one frozen StepRecord per step. They watch; they never
change the result: a record's tensors are its own (copies where the loop or
the scheduler keeps using a tensor, such as x_next, the next step's x_t).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Callable, Protocol

import torch

from .algebra import to_x0_and_eps
from .schedulers import alpha_bar_at

DenoiseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class StepRecord:
    index: int  # 0 .. steps-1
    steps: int
    timestep: float
    alpha_bar: float
    sigma: float
    x_t: torch.Tensor  # (B, C, h, w) the latent going in
    eps_cond: torch.Tensor | None  # None when guidance is 0 (the prompt is not run)
    eps_uncond: torch.Tensor | None  # None when guidance is 1 (the empty prompt is not run)
    # with per-image scales, the rows of images that did not need a branch are NaN
    eps: torch.Tensor  # guided
    x0_pred: torch.Tensor
    x_next: torch.Tensor
    regional: bool = False  # eps_cond came from the regions' prompts, not the whole prompt


class Observer(Protocol):
    def __call__(self, record: StepRecord) -> None: ...


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator for a seed: x_T is drawn from it, then the stochastic samplers' fresh noise (diffusers' order).

    Seeds below 2**32 seed torch as diffusers does (manual_seed), so they draw diffusers' pixels. torch's CPU
    generator keeps only the low 32 bits of a seed, so a larger seed fills the Mersenne Twister from all 64 bits
    instead (the standard init_by_array, as numpy seeds it from an array): 2**32 + 1 draws apart from 1.
    """
    if seed < 2**32:
        return torch.Generator().manual_seed(seed)
    import struct

    import numpy as np

    keys = np.random.RandomState(np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)).get_state()[1]
    # torch's CPU generator state: initial seed (int64), left, seeded (int32), next (uint64), 624 words (uint64
    # each), then the cached normal samples (40 bytes, none cached)
    state = struct.pack("<qiiQ", seed - 2**64 if seed >= 2**63 else seed, 1, 1, 0)
    state += keys.astype("<u8").tobytes() + bytes(40)
    generator = torch.Generator()
    generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
    return generator


def noise_and_generators(shape: tuple[int, ...], seeds: list[int]) -> tuple[torch.Tensor, list[torch.Generator]]:
    """x_T drawn on the CPU, one generator per image (a seed means the same image anywhere), and the generators,
    which the stochastic samplers go on drawing from, as diffusers' pipelines do."""
    generators = [seeded_generator(s) for s in seeds]
    return torch.cat([torch.randn((1, *shape), generator=g) for g in generators]), generators


def initial_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    return noise_and_generators(shape, seeds)[0]


def guide(out_cond: torch.Tensor | None, out_uncond: torch.Tensor | None, guidance_scale) -> torch.Tensor:
    """Classifier-free guidance: u + s (c - u); with s = 1 the conditional output alone, with s = 0 the other.

    guidance_scale is one number, or a (B, 1, 1, 1) tensor of per-image scales.
    """
    if out_uncond is None:
        return out_cond
    if out_cond is None:
        return out_uncond
    return out_uncond + guidance_scale * (out_cond - out_uncond)


class Branches:
    """Which images need which half of the guidance batch: s = 1 needs no empty-prompt run, s = 0 no prompted one.

    One scale for the whole batch keeps the classic [empty prompt; prompt] batch; per-image scales (a guidance
    sweep from one seed) run each image's needed halves in one UNet call.
    """

    def __init__(self, scales: list[float], batch: int):
        self.uniform = len(set(scales)) == 1
        self.scale = scales[0] if self.uniform else torch.tensor(scales).view(-1, 1, 1, 1)
        self.uncond_rows = [i for i, s in enumerate(scales) if s != 1.0]
        self.cond_rows = [i for i, s in enumerate(scales) if s != 0.0]
        self.cond_only = [i for i, s in enumerate(scales) if s == 1.0]
        self.uncond_only = [i for i, s in enumerate(scales) if s == 0.0]
        self.batch = batch

    def inputs(self, x_in: torch.Tensor, context: torch.Tensor, uncond_context: torch.Tensor):
        """The UNet's batch: the empty-prompt rows, then the prompted rows."""
        xs, contexts = [], []
        for rows, ctx in ((self.uncond_rows, uncond_context), (self.cond_rows, context)):
            if rows:
                take = slice(None) if len(rows) == self.batch else rows
                xs.append(x_in[take])
                contexts.append(ctx[take])
        return torch.cat(xs), torch.cat(contexts)

    def split(self, out: torch.Tensor):
        """(out_cond, out_uncond), each (B, ...) or None when no image ran it; rows not run are NaN."""
        n_uncond = len(self.uncond_rows)
        return self.full(out[n_uncond:], self.cond_rows), self.full(out[:n_uncond], self.uncond_rows)

    def guided(self, out_cond, out_uncond) -> torch.Tensor:
        if self.uniform:
            return guide(out_cond, out_uncond, self.scale)
        u = out_uncond.clone() if out_uncond is not None else out_cond.clone()
        c = out_cond.clone() if out_cond is not None else out_uncond.clone()
        u[self.cond_only] = c[self.cond_only]  # s = 1: u + 1 (c - u) = c
        c[self.uncond_only] = u[self.uncond_only]  # s = 0: u + 0 (c - u) = u
        return guide(c, u, self.scale)

    def full(self, rows_out: torch.Tensor, rows: list[int]) -> torch.Tensor | None:
        if not rows:
            return None
        if len(rows) == self.batch:
            return rows_out
        full = torch.full((self.batch, *rows_out.shape[1:]), float("nan"))
        full[rows] = rows_out
        return full


@dataclasses.dataclass(frozen=True)
class _Rows:
    """What the loop denoises: each row's prompt, empty prompt, guidance scale and noise generator."""

    context: torch.Tensor
    uncond_context: torch.Tensor
    scales: list[float]
    generators: list[torch.Generator]


@dataclasses.dataclass(frozen=True)
class Regions:
    """A layout for steps start .. start+steps-1: one canvas per region, cut from its image's latent, each denoised
    with the region's prompt as if it were the whole image, then cut to the region and pasted into its image.

    Each canvas sees only its own object, so none is crowded out by another's (on one shared canvas, "four
    circles" as four one-circle regions drew two or three: each region's prompt asks for one circle, and sees
    the others). The first `start` steps draw the whole prompt on one canvas: they settle the background, which
    the canvases then share (canvases split from the noise itself often chose different backgrounds). An image
    drawn as it is has one region, its prompt everywhere, and comes out as without a layout.
    """

    context: torch.Tensor  # (R, L, D) the prompt of every region of every image
    owner: torch.Tensor  # (R,) long: the image each region belongs to, images in order
    masks: torch.Tensor  # (R, 1, h, w) 1 inside the region, 0 outside; an image's regions tile its canvas
    steps: int
    start: int = 0

    def split(self, x_t: torch.Tensor, scheduler) -> torch.Tensor:
        """(R, ...) canvases from (images, ...) latents, the scheduler's memory of earlier steps split alike."""
        _map_state(scheduler, x_t.shape, lambda value: value[self.owner])
        return x_t[self.owner]

    def paste(self, rows: torch.Tensor | None, images: int, scheduler=None) -> torch.Tensor | None:
        """(images, ...) from (R, ...): each image made of its regions' rows, each on its own pixels (the
        scheduler's memory alike, when given)."""
        if rows is None:
            return None
        if scheduler is not None:
            _map_state(scheduler, rows.shape, lambda value: self.paste(value, images))
        out = rows.new_zeros((images, *rows.shape[1:]))
        return out.index_add_(0, self.owner, self.masks * rows)

    def rows(self, whole: _Rows) -> _Rows:
        """Each region's prompt, and its image's empty prompt, scale and noise generator (the first region's is
        the image's own, the others' copies of it, so that every canvas of an image gets the same noise)."""
        owner, generators, seen = self.owner.tolist(), [], set()
        for image in owner:
            own = whole.generators[image]
            generators.append(torch.Generator().set_state(own.get_state()) if image in seen else own)
            seen.add(image)
        return _Rows(self.context, whole.uncond_context[self.owner], [whole.scales[i] for i in owner], generators)


def _map_state(scheduler, shape: torch.Size, fn) -> None:
    """Apply fn to the scheduler's memory of earlier steps (DPM-Solver's and UniPC's past outputs, LMS's
    derivatives): every tensor of its state shaped like the latents, alone or in a list."""
    def mapped(value):
        return fn(value) if torch.is_tensor(value) and value.shape == shape else value

    for name, value in list(vars(scheduler).items()):
        setattr(scheduler, name, [mapped(v) for v in value] if isinstance(value, list) else mapped(value))


def sample(denoise: DenoiseFn, scheduler, x_T: torch.Tensor, *, context: torch.Tensor, uncond_context: torch.Tensor,
           guidance_scale: float | list[float], steps: int, generators: list[torch.Generator | int],
           observers: tuple[Observer, ...] = (), regions: Regions | None = None, start: int = 0,
           x_start: torch.Tensor | None = None, after_step: Callable | None = None) -> torch.Tensor:
    """Run the reverse process from noise x_T (unit variance) to the clean latent x_0.

    generators: each image's, after x_T was drawn from it (noise_and_generators), or seeds for fresh ones.
    start, x_start: begin at that index of the scheduler's timesteps from x_start, a latent already noised to it in
    the scheduler's own space (image-to-image, forward.py); after_step(i, x_next) may replace each step's result
    (inpainting's blend, before observers see it)."""
    scheduler.set_timesteps(steps)
    if start and hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    prediction_type = scheduler.config.prediction_type
    images = len(x_T)
    scales = list(guidance_scale) if isinstance(guidance_scale, (list, tuple)) else [guidance_scale] * images
    generators = [g if isinstance(g, torch.Generator) else seeded_generator(g) for g in generators]
    whole = _Rows(context, uncond_context, scales, generators)
    drawn = regions is not None and regions.steps and any(s != 0 for s in scales)  # guidance 0 reads no prompt
    plan = regions if drawn else None  # None: the whole prompt on every step
    rows, x_t = whole, x_T * scheduler.init_noise_sigma if x_start is None else x_start
    branches = Branches(scales, images)
    takes_generator = _takes_generator(scheduler)
    for i, t in enumerate(scheduler.timesteps[start:], start):
        if plan and i == plan.start:  # a canvas per region
            rows, x_t = plan.rows(whole), plan.split(x_t, scheduler)
            branches = Branches(rows.scales, len(x_t))
        elif plan and i == plan.start + plan.steps:  # the collage, and the whole prompt from here
            rows, x_t = whole, plan.paste(x_t, images, scheduler)
            branches = Branches(scales, images)
        # 1. the model sees the variance-preserving latent, empty prompt and prompt in one batch
        x_in = scheduler.scale_model_input(x_t, t)
        batch_in, batch_context = branches.inputs(x_in, rows.context, rows.uncond_context)
        out_cond, out_uncond = branches.split(denoise(batch_in, t.expand(batch_in.shape[0]), batch_context))
        # 2. guidance, in the model's own prediction type (linear, so the same in eps)
        out_guided = branches.guided(out_cond, out_uncond)
        # 3. the scheduler subtracts its share of the noise
        step_kwargs = {"generator": rows.generators} if takes_generator else {}
        x_next = scheduler.step(out_guided, t, x_t, return_dict=False, **step_kwargs)[0]
        if after_step is not None:
            x_next = after_step(i, x_next)
        if observers:
            regional = rows is not whole
            view = functools.partial(plan.paste, images=images) if regional else (lambda out: out)
            _notify(observers, i, steps, t, scheduler, *map(view, (x_t, x_in, out_cond, out_uncond, out_guided,
                                                                  x_next)), prediction_type, regional)
        x_t = x_next
    return plan.paste(x_t, images) if rows is not whole else x_t  # a layout to the last step: still canvases


def _takes_generator(scheduler) -> bool:
    return "generator" in inspect.signature(scheduler.step).parameters


def _notify(observers, i, steps, t, scheduler, x_t, x_in, out_cond, out_uncond, out_guided, x_next, prediction_type,
            regional):
    alpha_bar = alpha_bar_at(scheduler, t)

    def eps_of(output):
        return None if output is None else to_x0_and_eps(output, x_in, alpha_bar, prediction_type)[1]

    x0_pred, eps = to_x0_and_eps(out_guided, x_in, alpha_bar, prediction_type)
    record = StepRecord(index=i, steps=steps, timestep=float(t), alpha_bar=alpha_bar,
                        sigma=((1 - alpha_bar) / alpha_bar) ** 0.5, x_t=x_t.clone(), eps_cond=eps_of(out_cond),
                        eps_uncond=eps_of(out_uncond), eps=eps.clone(), x0_pred=x0_pred, x_next=x_next.clone(),
                        regional=regional)
    for observe in observers:
        observe(record)


class TrajectoryRecorder:
    """Keeps every step's x0_pred (and the latent going in) for strips, animations and reports."""

    def __init__(self):
        self.records: list[StepRecord] = []

    def __call__(self, record: StepRecord) -> None:
        self.records.append(record)


class ProgressBar:
    """A tqdm bar over the steps; with `total`, one bar over the steps of several runs (a batch in chunks)."""

    def __init__(self, desc: str = "sampling", total: int | None = None):
        self.desc, self.total, self.bar = desc, total, None

    def __call__(self, record: StepRecord) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=self.total or record.steps, desc=self.desc, dynamic_ncols=True, leave=False)
        self.bar.update(1)
        if self.bar.n >= self.bar.total:
            self.close()

    def describe(self, desc: str):
        self.desc = desc
        if self.bar is not None:
            self.bar.set_description(desc)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
