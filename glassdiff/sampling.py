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

With Regions (a layout, layout.py), eps_cond in the first steps is regional: each latent pixel takes the
prediction with the prompt of the region it lies in.

Observers receive one frozen StepRecord per step. They watch; they never
change the result (the loop hands them tensors it no longer uses).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable, Protocol

import torch

from .schedulers import alpha_bar_at, to_x0_and_eps

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
    layout: bool = False  # eps_cond came from the regions' prompts, not the whole prompt


class Observer(Protocol):
    def __call__(self, record: StepRecord) -> None: ...


def initial_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    """x_T drawn on the CPU, one generator per image, so a seed means the same image anywhere."""
    return torch.cat([torch.randn((1, *shape), generator=torch.Generator().manual_seed(s)) for s in seeds])


def generators(seeds: list[int]) -> list[torch.Generator]:
    """Per-image generators for the stochastic samplers' fresh noise (offset from x_T's stream)."""
    return [torch.Generator().manual_seed(s + 2**31) for s in seeds]


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
class Regions:
    """Regional prompts for the first `steps` steps: each image's regions tile its canvas, and each latent pixel
    takes the prompted prediction of its region. An image drawn as it is has one region: its prompt, everywhere."""

    context: torch.Tensor  # (R, L, D) the prompt of every region of every image
    owner: torch.Tensor  # (R,) long: the image each region belongs to
    masks: torch.Tensor  # (R, 1, h, w) 1 inside the region, 0 outside
    steps: int

    def predict(self, denoise: DenoiseFn, x_in: torch.Tensor, t: torch.Tensor, uncond_context: torch.Tensor,
                branches: Branches):
        """(out_cond, out_uncond): the empty-prompt rows as usual, then one row per region, in one UNet call."""
        uncond_rows = branches.uncond_rows
        batch_in = torch.cat([x_in[uncond_rows], x_in[self.owner]])
        out = denoise(batch_in, t.expand(batch_in.shape[0]),
                      torch.cat([uncond_context[uncond_rows], self.context]))
        n_uncond = len(uncond_rows)
        out_cond = out.new_zeros((x_in.shape[0], *out.shape[1:]))
        out_cond.index_add_(0, self.owner, self.masks * out[n_uncond:])  # each region's pixels, into its image
        return out_cond, branches.full(out[:n_uncond], uncond_rows)


def sample(denoise: DenoiseFn, scheduler, x_T: torch.Tensor, context: torch.Tensor, uncond_context: torch.Tensor,
           guidance_scale: float | list[float], steps: int, seeds: list[int],
           observers: tuple[Observer, ...] = (), regions: Regions | None = None) -> torch.Tensor:
    """Run the reverse process from noise x_T (unit variance) to the clean latent x_0."""
    scheduler.set_timesteps(steps)
    prediction_type = scheduler.config.prediction_type
    step_kwargs = {"generator": generators(seeds)} if _takes_generator(scheduler) else {}
    scales = list(guidance_scale) if isinstance(guidance_scale, (list, tuple)) else [guidance_scale] * len(x_T)
    branches = Branches(scales, len(x_T))
    x_t = x_T * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        # 1. the model sees the variance-preserving latent, empty prompt and prompt (or regions) in one batch
        x_in = scheduler.scale_model_input(x_t, t)
        regional = regions is not None and i < regions.steps and bool(branches.cond_rows)  # guidance 0: no prompt
        if regional:
            out_cond, out_uncond = regions.predict(denoise, x_in, t, uncond_context, branches)
        else:
            batch_in, batch_context = branches.inputs(x_in, context, uncond_context)
            out_cond, out_uncond = branches.split(denoise(batch_in, t.expand(batch_in.shape[0]), batch_context))
        # 2. guidance, in the model's own prediction type (linear, so the same in eps)
        out_guided = branches.guided(out_cond, out_uncond)
        # 3. the scheduler subtracts its share of the noise
        x_next = scheduler.step(out_guided, t, x_t, return_dict=False, **step_kwargs)[0]
        if observers:
            _notify(observers, i, steps, t, scheduler, x_t, x_in, out_cond, out_uncond, out_guided, x_next,
                    prediction_type, regional)
        x_t = x_next
    return x_t


def _takes_generator(scheduler) -> bool:
    return "generator" in inspect.signature(scheduler.step).parameters


def _notify(observers, i, steps, t, scheduler, x_t, x_in, out_cond, out_uncond, out_guided, x_next, prediction_type,
            regional):
    alpha_bar = alpha_bar_at(scheduler, t)

    def eps_of(output):
        return None if output is None else to_x0_and_eps(output, x_in, alpha_bar, prediction_type)[1]

    x0_pred, eps = to_x0_and_eps(out_guided, x_in, alpha_bar, prediction_type)
    record = StepRecord(index=i, steps=steps, timestep=float(t), alpha_bar=alpha_bar,
                        sigma=((1 - alpha_bar) / alpha_bar) ** 0.5, x_t=x_t, eps_cond=eps_of(out_cond),
                        eps_uncond=eps_of(out_uncond), eps=eps, x0_pred=x0_pred, x_next=x_next, layout=regional)
    for observe in observers:
        observe(record)


class TrajectoryRecorder:
    """Keeps every step's x0_pred (and the latent going in) for strips, animations and reports."""

    def __init__(self):
        self.records: list[StepRecord] = []

    def __call__(self, record: StepRecord) -> None:
        self.records.append(record)


class ProgressBar:
    """A tqdm bar over the steps."""

    def __init__(self, desc: str = "sampling"):
        self.desc, self.bar = desc, None

    def __call__(self, record: StepRecord) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=record.steps, desc=self.desc, dynamic_ncols=True, leave=False)
        self.bar.update(1)
        if record.index + 1 == record.steps:
            self.bar.close()
            self.bar = None
