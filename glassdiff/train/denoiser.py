"""Stage 2: the denoiser UNet on cached latents and caption embeddings.

What does not change is computed once and cached (`out/cache.pt`): the
latents of the training images and the text embeddings of their captions, so
a step costs only the UNet. Each step's timesteps, noise and caption dropout
come from a generator seeded by (seed, step), and the data order from
(seed, epoch): a resumed run, or one split over DDP ranks, sees exactly the
batches an uninterrupted single-process run sees.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..algebra import add_noise, target
from ..config import BadInput, autoencoder_preset, scheduler_preset, unet_preset
from ..denoiser import add_coordinate_inputs, build_unet, unet_input
from ..io import state_digest
from ..world.captions import NAMED_CELL_SHARE, NAMED_COLOR_SHARE, task_mix
from .common import (EMA, config_dict, load_checkpoint, log_line, lr_at, save_checkpoint, seed_everything,
                     setup_distributed)
from .data import folder_examples, recolor_examples, shapes_examples, to_tensor

SAMPLE_PROMPTS = (
    "a red circle", "two blue squares", "a green triangle in the top left", "a yellow star left of a purple heart",
    "a white cross above a pink diamond", "three orange hexagons", "a small gray star and a large brown circle",
    "a blue heart on a sand background",
)
NOISE_BUCKETS = 10
RECOLOR_MIN_T = 0.3  # a recoloured pair is noised to at least this share of the schedule (image-to-image's range)
TRAINABLE = ("all", "cross-attention")  # --trainable: the UNet's weights that learn


@dataclasses.dataclass(frozen=True)
class DenoiserTrainConfig:
    out: str = "runs/denoiser"
    vae: str = "runs/autoencoder/vae"
    preset: str = "shapes64"  # the UNet's: shapes64, small (the 3-hour CPU recipe's) or tiny (tests)
    heads: int = 0  # attention heads per UNet block; 0: heads of HEAD_DIM channels (the shipped model has 32 heads)
    size: int = 64
    steps: int = 3000
    stop_after: int = 0  # end after this many steps (checkpoint and model written; the schedule still ends at --steps)
    batch: int = 32
    lr: float = 4e-4
    warmup: int = 100
    decay_to: float = 1.0  # final learning rate as a share of --lr, reached by a cosine at --steps; 1: constant
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0  # 0 or less: unweighted v-MSE
    caption_dropout: float = 0.1
    captions: int = 20000  # distinct training captions
    scenes_per_caption: int = 3
    caption_colors: float = NAMED_COLOR_SHARE  # share of objects whose colour the caption names
    caption_cells: float = NAMED_CELL_SHARE  # share of single-object captions that name a cell
    caption_tasks: str = ""  # task mix, e.g. 'counting=4,position=2'; tasks left out keep TRAIN_TAGS' weights
    # scenes drawn twice, the second in other colours, captioned by the second and noised from the first: teaches
    # image-to-image to follow a prompt's colours (data.recolor_examples); 0: none
    recolor_pairs: int = 0
    trainable: str = "all"  # the UNet's weights that learn: all, or cross-attention (the rest frozen)
    data_chunks: int = 1  # draw the shapes set as this many seeded parts, in parallel; 1: one stream (shipped stages)
    data: str | None = None
    init: str | None = None  # continue this model folder's UNet (its own architecture) instead of a fresh preset
    coordinates: bool = False  # give the UNet x and y planes (an --init UNet without them gains them, zero-weighted)
    seed: int = 0
    # where this run's batches start: by default after the steps the --init model took (its training.json), so a
    # continued run draws the batches that come after them; 0 draws the first batches again
    step_offset: int | None = None
    checkpoint_every: int = 250
    sample_every: int = 500
    resume: bool = False
    device: str = "cpu"

    def __post_init__(self):
        unet_preset(self.preset)  # an unknown preset is refused here, before any data is drawn
        if self.trainable not in TRAINABLE:
            raise BadInput(f"--trainable {self.trainable}: choose one of {', '.join(TRAINABLE)}")


def _cache_key(cfg: DenoiserTrainConfig) -> dict:
    return {k: getattr(cfg, k) for k in ("vae", "size", "captions", "scenes_per_caption",
                                   "caption_colors", "caption_cells", "caption_tasks", "data", "seed", "data_chunks",
                                   "recolor_pairs")}


@torch.no_grad()
def build_cache(cfg: DenoiserTrainConfig, vae, text_encoder) -> dict:
    """Latents (N, C, h, w), caption embeddings (M, L, D) fp16, caption index per latent, the empty prompt.

    The autoencoder and the text encoder run on cfg.device; the cache is kept on the CPU.
    """
    if cfg.data:
        captions, images, _skipped = folder_examples(cfg.data, cfg.size)
        per = 1
    else:
        captions, images = shapes_examples(cfg.captions, cfg.seed + 7, cfg.size, cfg.scenes_per_caption,
                                           cfg.caption_colors, cfg.caption_cells, cfg.data_chunks,
                                           task_mix(cfg.caption_tasks))
        per = cfg.scenes_per_caption
    caption_of = torch.arange(len(captions)).repeat_interleave(per)
    vae.to(cfg.device)
    text_encoder.to(cfg.device)
    latents, pairs = _latents(vae, images, cfg.device), {}
    if cfg.recolor_pairs:
        pair_captions, targets, sources = recolor_examples(cfg.recolor_pairs, cfg.seed + 11, cfg.size,
                                                           cfg.caption_cells)
        pairs = {"sources": _latents(vae, sources, cfg.device),
                 "source_of": torch.cat([torch.full((len(latents),), -1), torch.arange(cfg.recolor_pairs)])}
        latents = torch.cat([latents, _latents(vae, targets, cfg.device)])
        caption_of = torch.cat([caption_of, len(captions) + torch.arange(cfg.recolor_pairs)])
        captions = [*captions, *pair_captions]
    context = torch.cat([text_encoder(captions[i:i + 256]).context.half().cpu()
                         for i in tqdm(range(0, len(captions), 256), desc="caching captions", leave=False)])
    uncond = text_encoder([""]).context[0].cpu()
    vae.to("cpu")
    text_encoder.to("cpu")
    return {"latents": latents, "context": context, "caption_of": caption_of, "uncond": uncond,
            "captions": captions, "key": _cache_key(cfg), **pairs}


def _latents(vae, images, device) -> torch.Tensor:
    return torch.cat([(vae.encode(to_tensor(images[i:i + 256]).to(device)).latent_dist.mean
                       * vae.config.scaling_factor).cpu()
                      for i in tqdm(range(0, len(images), 256), desc="caching latents", leave=False)])


def load_or_build_cache(cfg: DenoiserTrainConfig, vae, text_encoder, rank: int) -> dict:
    path = os.path.join(cfg.out, "cache.pt")
    if os.path.exists(path):
        cache = torch.load(path, weights_only=False)
        if cache.get("key") == _cache_key(cfg):
            return cache
    if rank == 0:
        cache = build_cache(cfg, vae, text_encoder)
        save_checkpoint(path, cache)
    if not dist.is_initialized():
        return cache
    dist.barrier()
    return torch.load(path, weights_only=False)


def cache_on(cache: dict, device: str) -> dict:
    """The cache, with the tensors a step reads on the GPU when training on one (the whole cache fits its memory:
    no copy per step)."""
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        cache.update({k: cache[k].to(device) for k in ("latents", "context", "caption_of", "uncond", "sources",
                                                       "source_of") if k in cache})
    return cache


def step_batch(cfg: DenoiserTrainConfig, cache: dict, step: int, steps_per_epoch: int):
    """The global batch of `step`: indices, timesteps, noise, dropout mask; a function of (seed, step) only."""
    step += cfg.step_offset or 0
    n = len(cache["latents"])
    epoch, offset = divmod(step, steps_per_epoch)
    order = _epoch_order(n, cfg.seed * 7919 + epoch)
    idx = order[offset * cfg.batch:(offset + 1) * cfg.batch]
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    t = torch.randint(0, scheduler_preset()["num_train_timesteps"], (len(idx),), generator=g)
    noise = torch.randn((len(idx), *cache["latents"].shape[1:]), generator=g)
    drop = torch.rand(len(idx), generator=g) < cfg.caption_dropout
    return idx, t, noise, drop


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int) -> torch.Tensor:
    """One epoch's data order, drawn once: a 450,000-sample permutation takes tens of ms, as long as a GPU step."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def v_loss(unet, scheduler, cfg, cache, idx, t, noise, drop, device):
    """Per-sample v-prediction loss (B,), min-SNR weighted unless min_snr_gamma <= 0."""
    idx, drop = idx.to(cache["latents"].device), drop.to(cache["latents"].device)  # the cache may sit on a GPU
    x0 = cache["latents"][idx].to(device)
    context = cache["context"][cache["caption_of"][idx]].float()
    context[drop] = cache["uncond"]
    noise = noise.to(device)
    x_start, x0, t = _recolor_starts(cache, idx, x0, t, drop, scheduler.config.num_train_timesteps)
    alpha_bar = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1).to(device)
    x_t = add_noise(x_start, noise, alpha_bar)
    if x_start is not x0:  # a pair's first scene was noised: the target points from it to the caption's colours
        noise = (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
    v_target = target(x0, noise, alpha_bar, "v_prediction")
    in_channels = getattr(unet, "module", unet).config.in_channels  # unet may be wrapped in DDP
    v_pred = unet(unet_input(x_t, in_channels), t.to(device), encoder_hidden_states=context.to(device),
                  return_dict=False)[0]
    loss = (v_pred - v_target).pow(2).mean(dim=(1, 2, 3))
    if cfg.min_snr_gamma <= 0:  # plain v-MSE: high noise levels, where layout and shape are decided, count fully
        return loss
    snr = (alpha_bar / (1 - alpha_bar)).view(-1)
    return snr.clamp(max=cfg.min_snr_gamma) / (snr + 1) * loss


def _recolor_starts(cache, idx, x0, t, drop, num_train_timesteps: int):
    """(the latents to noise, the latents to reach, the timesteps). A recoloured pair is noised from its first
    scene, at a timestep moved into [RECOLOR_MIN_T, 1) of the schedule, towards its caption's scene; with its
    caption dropped, towards its first scene (without a prompt a picture stays itself, so guidance pushes towards
    the prompt's colours). Other examples: x0, x0, t."""
    which = cache["source_of"][idx] if "source_of" in cache else torch.full_like(idx, -1)
    pair = which >= 0
    if not pair.any():
        return x0, x0, t
    x_start, x_goal = x0.clone(), x0.clone()
    x_start[pair] = cache["sources"][which[pair]].to(x0.device)
    keep = pair & drop
    x_goal[keep] = x_start[keep]
    low = int(RECOLOR_MIN_T * num_train_timesteps)
    t = torch.where(pair.to(t.device), low + t * (num_train_timesteps - low) // num_train_timesteps, t)
    return x_start, x_goal, t


def train_denoiser(cfg: DenoiserTrainConfig) -> dict:
    """Train (resumably), write checkpoints, samples, loss curves and the pipeline folder `out/model`."""
    from diffusers import AutoencoderKL, DDPMScheduler

    from ..text import TextEncoder

    if cfg.stop_after < 0:
        raise BadInput(f"--stop-after {cfg.stop_after}: give a number of steps, or 0 to run to --steps")
    taken = trained_steps(cfg.init)  # the steps the --init weights took, read once
    cfg = dataclasses.replace(cfg, step_offset=taken if cfg.step_offset is None else cfg.step_offset)
    rank, world = setup_distributed(cfg.device)
    os.makedirs(cfg.out, exist_ok=True)
    seed_everything(cfg.seed)
    vae = AutoencoderKL.from_pretrained(cfg.vae) if os.path.isdir(cfg.vae) else _fresh_vae(cfg)
    text_encoder = TextEncoder()
    cache = cache_on(load_or_build_cache(cfg, vae, text_encoder, rank), cfg.device)
    scheduler = DDPMScheduler(**scheduler_preset())
    unet = _initial_unet(cfg, text_encoder.dim, vae.config.latent_channels).to(cfg.device)
    opt = torch.optim.AdamW(_trainable(unet, cfg.trainable), lr=cfg.lr, weight_decay=0.0)
    ema = EMA(unet, cfg.ema_decay)
    ckpt_path, start = os.path.join(cfg.out, "checkpoint.pt"), 0
    if cfg.resume and os.path.exists(ckpt_path):
        state = load_checkpoint(ckpt_path, config_dict(cfg))
        unet.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        ema.shadow = {k: v.to(cfg.device) for k, v in state["ema"].items()}
        start = state["step"]
    model = torch.nn.parallel.DistributedDataParallel(unet) if world > 1 else unet
    steps_per_epoch = max(1, len(cache["latents"]) // cfg.batch)
    buckets = torch.zeros(2, NOISE_BUCKETS)
    t0 = time.time()
    end = min(cfg.stop_after or cfg.steps, cfg.steps)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc="denoiser", disable=rank != 0,
               dynamic_ncols=True)
    for step in bar:
        idx, t, noise, drop = step_batch(cfg, cache, step, steps_per_epoch)
        mine = slice(rank * len(idx) // world, (rank + 1) * len(idx) // world)
        losses = v_loss(model, scheduler, cfg, cache, idx[mine], t[mine], noise[mine], drop[mine], cfg.device)
        loss = losses.mean()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps, cfg.decay_to)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
        opt.step()
        ema.update(unet, step)
        _accumulate(buckets, t[mine], losses.detach().cpu(), scheduler.config.num_train_timesteps)
        if rank == 0:
            speed = cfg.batch * (step + 1 - start) / (time.time() - t0)
            bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{speed:.1f}")
            _log_step(cfg, step, loss.item(), buckets, time.time() - t0)
        done = step + 1
        if rank == 0 and (done % cfg.checkpoint_every == 0 or done == end):
            save_checkpoint(ckpt_path, {"model": unet.state_dict(), "optimizer": opt.state_dict(), "ema": ema.shadow,
                                        "step": done, "config": config_dict(cfg)})
            _write_model(cfg, ema, vae, text_encoder, dict(unet.config), taken + done)
        if rank == 0 and (done % cfg.sample_every == 0 or done == end):
            _write_samples(cfg, done)
    if dist.is_initialized():
        dist.barrier()
    result = {"steps": end, "wall_s": time.time() - t0, "world_size": world, "rank": rank,
              "unet_params": sum(p.numel() for p in unet.parameters()), "images": len(cache["latents"]),
              "weights_digest": weights_digest(unet)}
    if rank == 0 and os.path.exists(os.path.join(cfg.out, "log.jsonl")):
        from .plots import plot_losses

        plot_losses(os.path.join(cfg.out, "log.jsonl"), os.path.join(cfg.out, "loss.png"))
    return result


def _trainable(unet, which: str) -> list[torch.nn.Parameter]:
    """The weights that learn (the others are frozen): all, or the cross-attention layers' (diffusers' attn2)."""
    learns = [p for name, p in unet.named_parameters() if which == "all" or ".attn2." in name]
    unet.requires_grad_(False)
    for p in learns:
        p.requires_grad_(True)
    return learns


def weights_digest(module: torch.nn.Module) -> str:
    """To check that runs (or ranks) ended with the same weights."""
    return state_digest(module)[:16]


def _fresh_vae(cfg):
    from ..autoencoder import build_autoencoder

    return build_autoencoder(autoencoder_preset("tiny" if cfg.size <= 16 else "shapes64"))


def _initial_unet(cfg, text_dim: int, latent_channels: int):
    """A fresh preset UNet, or the --init model's UNet with its own config (a continued run keeps its layout)."""
    if not cfg.init:
        return build_unet(unet_preset(cfg.preset, text_dim, latent_channels, cfg.heads, cfg.coordinates))
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(cfg.init, subfolder="unet", torch_dtype=torch.float32)
    if cfg.coordinates and unet.config.in_channels == latent_channels:
        unet = add_coordinate_inputs(unet)
    return unet


def _accumulate(buckets: torch.Tensor, t: torch.Tensor, losses: torch.Tensor, num_train_timesteps: int):
    which = (t * NOISE_BUCKETS // num_train_timesteps).clamp(max=NOISE_BUCKETS - 1)
    buckets[0].index_add_(0, which, losses)
    buckets[1].index_add_(0, which, torch.ones_like(losses))


def _log_step(cfg, step, loss, buckets, elapsed):
    record = {"step": step + 1, "loss": loss, "elapsed_s": round(elapsed, 2)}
    if (step + 1) % 50 == 0:
        record["loss_by_noise"] = (buckets[0] / buckets[1].clamp(min=1)).tolist()
        buckets.zero_()
    log_line(os.path.join(cfg.out, "log.jsonl"), record)


def trained_steps(folder: str | None) -> int:
    """The denoiser steps a model folder's weights have taken, every stage counted (its training.json); 0 for no
    folder or one without the record."""
    from ..folders import read_training

    return read_training(folder).get("steps", 0) if folder else 0


def _write_model(cfg, ema, vae, text_encoder, unet_config: dict, steps: int):
    """The EMA weights as a pipeline folder (out/model), written atomically, with the steps they have taken."""
    from diffusers import UNet2DConditionModel

    from ..pipeline import Pipeline

    unet = UNet2DConditionModel.from_config(unet_config)
    unet.load_state_dict(ema.shadow)
    Pipeline(unet=unet, vae=vae, text_encoder=text_encoder, scheduler_config=scheduler_preset()).save(
        os.path.join(cfg.out, "model"), training={"steps": steps})


def _write_samples(cfg, done):
    from ..pipeline import Pipeline
    from .plots import sample_sheet

    pipe = Pipeline.load(os.path.join(cfg.out, "model"))
    pipe.engine = "torch"  # weights of the moment: no ONNX export of each into the cache
    sample_sheet(pipe, SAMPLE_PROMPTS, os.path.join(cfg.out, "samples", f"step{done:06d}.png"))
