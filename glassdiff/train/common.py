"""What both training stages share: checkpoints, EMA, DDP set-up, learning rate, logs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random

import numpy as np
import torch
import torch.distributed as dist

from ..config import BadInput
from ..io import atomic_path


def setup_distributed(device: str) -> tuple[int, int]:
    """(rank, world_size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def lr_at(step: int, base_lr: float, warmup: int, total: int = 0, decay_to: float = 1.0,
          decay_from: int = 0) -> float:
    """Linear warm-up, then constant (decay_to 1) or, from step max(warmup, decay_from), cosine down to
    base_lr * decay_to at step `total`."""
    rate = base_lr * min(1.0, (step + 1) / max(1, warmup))
    start = max(warmup, decay_from)
    if decay_to == 1.0 or step < start or total <= start:
        return rate
    progress = min(1.0, (step - start) / (total - start))
    return rate * (decay_to + (1 - decay_to) * 0.5 * (1 + math.cos(math.pi * progress)))


class EMA:
    """Exponential moving average of a model's parameters, warmed up as in diffusers' EMAModel."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int):
        d = min(self.decay, (1 + step) / (10 + step))
        state = model.state_dict()
        floats = [k for k, v in state.items() if v.dtype.is_floating_point]
        torch._foreach_lerp_([self.shadow[k] for k in floats], [state[k] for k in floats], 1 - d)  # one launch
        for k, v in state.items():
            if not v.dtype.is_floating_point:
                self.shadow[k].copy_(v)


def save_checkpoint(path: str, state: dict):
    """Written to a temporary file and renamed: a good checkpoint is never replaced by a broken one."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str, config: dict) -> dict:
    """The checkpoint at `path`, refused unless it was written by the same config."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise BadInput(f"cannot read checkpoint {path}: {err}; delete it or point --out elsewhere") from err
    theirs = state.get("config", {})
    # an option newer than the checkpoint is taken to have been at its default (new options keep the old behaviour)
    mismatched = sorted(k for k in config if k not in ("steps", "stop_after", "resume")
                        and theirs.get(k, config[k]) != config[k])
    if mismatched:
        raise BadInput(f"checkpoint {path} was written by another config (differs in {', '.join(mismatched)}); "
                       f"use the same options or a new --out")
    return state


def config_dict(cfg) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def log_line(path: str, record: dict):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
