"""Sampler name -> diffusers scheduler, and x0 from any prediction.

Every scheduler here feeds the model the variance-preserving x_t
(`scale_model_input` undoes the sigma scaling of Euler-type samplers), so one
formula turns the model's output into x0_pred at any step of any sampler.
"""

from __future__ import annotations

import copy
import functools
import json

import numpy as np
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, LCMScheduler, LMSDiscreteScheduler, UniPCMultistepScheduler)

SCHEDULERS = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
    "unipc": UniPCMultistepScheduler,
    "lms": LMSDiscreteScheduler,
    "lcm": LCMScheduler,  # a consistency model's few steps (train/distill.py's students), at guidance 1
}
SIGMA_SPACE = ("euler", "euler_a", "lms")  # their latents are x0 + sigma * eps, not x_t


def make_scheduler(name: str, config: dict):
    """A fresh scheduler of kind `name` on the noise schedule `config` (any scheduler's config): a copy of one made
    once per kind and schedule, as making one computes a cosine schedule's 1,000 betas in Python (5 ms)."""
    return copy.deepcopy(_template(name, json.dumps(dict(config), sort_keys=True)))


@functools.lru_cache(maxsize=32)
def _template(name: str, config_json: str):
    return SCHEDULERS[name].from_config(json.loads(config_json))


def name_of(scheduler) -> str:
    for name, cls in SCHEDULERS.items():
        if type(scheduler) is cls:
            return name
    raise KeyError(type(scheduler).__name__)


def alpha_bar_at(scheduler, t: torch.Tensor | float) -> float:
    """alpha_bar(t) on the training schedule, interpolated for fractional t as diffusers does."""
    alphas_cumprod = scheduler.alphas_cumprod.double().numpy()
    sigmas = np.sqrt((1 - alphas_cumprod) / alphas_cumprod)
    sigma = float(np.interp(float(t), np.arange(len(sigmas)), sigmas))
    return 1.0 / (1.0 + sigma**2)
