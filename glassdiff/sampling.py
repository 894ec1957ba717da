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
    eps_cond: torch.Tensor
    eps_uncond: torch.Tensor | None  # None when guidance is 1 (the empty prompt is not run)
    eps: torch.Tensor  # guided
    x0_pred: torch.Tensor
    x_next: torch.Tensor


class Observer(Protocol):
    def __call__(self, record: StepRecord) -> None: ...


def initial_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    """x_T drawn on the CPU, one generator per image, so a seed means the same image anywhere."""
    return torch.cat([torch.randn((1, *shape), generator=torch.Generator().manual_seed(s)) for s in seeds])


def generators(seeds: list[int]) -> list[torch.Generator]:
    """Per-image generators for the stochastic samplers' fresh noise (offset from x_T's stream)."""
    return [torch.Generator().manual_seed(s + 2**31) for s in seeds]


def guide(out_cond: torch.Tensor, out_uncond: torch.Tensor | None, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: u + s (c - u); with s = 1 the conditional output alone."""
    if out_uncond is None:
        return out_cond
    return out_uncond + guidance_scale * (out_cond - out_uncond)


def sample(denoise: DenoiseFn, scheduler, x_T: torch.Tensor, context: torch.Tensor, uncond_context: torch.Tensor,
           guidance_scale: float, steps: int, seeds: list[int],
           observers: tuple[Observer, ...] = ()) -> torch.Tensor:
    """Run the reverse process from noise x_T (unit variance) to the clean latent x_0."""
    scheduler.set_timesteps(steps)
    prediction_type = scheduler.config.prediction_type
    step_kwargs = {"generator": generators(seeds)} if _takes_generator(scheduler) else {}
    with_uncond = guidance_scale != 1.0
    both_contexts = torch.cat([uncond_context, context]) if with_uncond else context
    x_t = x_T * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        # 1. the model sees the variance-preserving latent, prompt and empty prompt in one batch
        x_in = scheduler.scale_model_input(x_t, t)
        batch_in = torch.cat([x_in, x_in]) if with_uncond else x_in
        out = denoise(batch_in, t.expand(batch_in.shape[0]), both_contexts)
        out_uncond, out_cond = out.chunk(2) if with_uncond else (None, out)
        # 2. guidance, in the model's own prediction type (linear, so the same in eps)
        out_guided = guide(out_cond, out_uncond, guidance_scale)
        # 3. the scheduler subtracts its share of the noise
        x_next = scheduler.step(out_guided, t, x_t, return_dict=False, **step_kwargs)[0]
        if observers:
            _notify(observers, i, steps, t, scheduler, x_t, x_in, out_cond, out_uncond, out_guided, x_next,
                    prediction_type)
        x_t = x_next
    return x_t


def _takes_generator(scheduler) -> bool:
    return "generator" in inspect.signature(scheduler.step).parameters


def _notify(observers, i, steps, t, scheduler, x_t, x_in, out_cond, out_uncond, out_guided, x_next, prediction_type):
    alpha_bar = alpha_bar_at(scheduler, t)

    def eps_of(output):
        return None if output is None else to_x0_and_eps(output, x_in, alpha_bar, prediction_type)[1]

    x0_pred, eps = to_x0_and_eps(out_guided, x_in, alpha_bar, prediction_type)
    record = StepRecord(index=i, steps=steps, timestep=float(t), alpha_bar=alpha_bar,
                        sigma=((1 - alpha_bar) / alpha_bar) ** 0.5, x_t=x_t, eps_cond=eps_of(out_cond),
                        eps_uncond=eps_of(out_uncond), eps=eps, x0_pred=x0_pred, x_next=x_next)
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
