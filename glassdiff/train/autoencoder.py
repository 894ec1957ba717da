"""Stage 1: the autoencoder, trained on renders of the shapes world (or a folder)."""

from __future__ import annotations

import dataclasses
import os
import time

import torch
from tqdm import tqdm

from diffusers import AutoencoderKL

from ..autoencoder import build_autoencoder
from ..config import BadInput, autoencoder_preset
from ..io import atomic_dir
from .common import config_dict, load_checkpoint, log_line, lr_at, save_checkpoint, seed_everything
from .data import folder_examples, shapes_examples, to_tensor


@dataclasses.dataclass(frozen=True)
class AutoencoderTrainConfig:
    out: str = "runs/autoencoder"
    preset: str = "shapes64"
    size: int = 64
    steps: int = 2000
    batch: int = 32
    crop: int = 32  # train on random crops (the network is convolutional): 4x cheaper a sample
    lr: float = 1e-3
    warmup: int = 50
    decay_to: float = 1.0  # final learning rate as a share of --lr, reached by a cosine at --steps; 1: constant
    kl_weight: float = 1e-6
    examples: int = 20000  # renders drawn once, then cycled
    data_chunks: int = 1  # draw the renders as this many seeded parts, in parallel; 1: one stream (shipped stages)
    data: str | None = None  # a folder of the user's images instead of the shapes world
    init: str | None = None  # start from this vae folder instead of random weights
    # with --init: freeze the encoder (latents, and any denoiser trained on them, stay valid)
    decoder_only: bool = False
    seed: int = 0
    checkpoint_every: int = 200
    resume: bool = False
    device: str = "cpu"

    def __post_init__(self):
        autoencoder_preset(self.preset)  # an unknown preset is refused here, before any data is drawn


def _examples(cfg: AutoencoderTrainConfig) -> torch.Tensor:
    if cfg.data:
        _, images, _ = folder_examples(cfg.data, cfg.size)
    else:
        _, images = shapes_examples(cfg.examples, cfg.seed + 1, cfg.size, chunks=cfg.data_chunks)
    return to_tensor(images)


def foreground_weight(x: torch.Tensor, boost: float = 4.0) -> torch.Tensor:
    """1 on the background, 1 + boost where a pixel differs from the border's median colour.

    Objects cover a few percent of a scene; unweighted, the loss is all background.
    """
    border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], dim=2)  # (B, 3, 4W)
    background = border.median(dim=2).values[:, :, None, None]
    differs = ((x - background).abs().amax(dim=1, keepdim=True) > 0.1).float()
    return 1 + boost * differs


def random_crops(images: torch.Tensor, crop: int, gen: torch.Generator) -> torch.Tensor:
    size = images.shape[-1]
    if crop >= size:
        return images
    corners = torch.randint(0, size - crop + 1, (len(images), 2), generator=gen)
    return torch.stack([im[:, y:y + crop, x:x + crop] for im, (y, x) in zip(images, corners.tolist())])


def weighted_l1(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    w = foreground_weight(x)
    return ((recon - x).abs() * w).sum() / (w.sum() * x.shape[1])


def _initial_vae(cfg: AutoencoderTrainConfig):
    if cfg.decoder_only and not cfg.init:
        raise BadInput("--decoder-only fine-tunes a trained autoencoder: give it one with --init VAE_DIR")
    if not cfg.init:
        return build_autoencoder(autoencoder_preset(cfg.preset))
    if not os.path.isfile(os.path.join(cfg.init, "config.json")):
        raise BadInput(f"--init {cfg.init} is not an autoencoder folder (no config.json); point it at a vae/ folder")
    vae = AutoencoderKL.from_pretrained(cfg.init, torch_dtype=torch.float32)
    if cfg.decoder_only:
        for module in (vae.encoder, vae.quant_conv):
            if module is not None:
                module.requires_grad_(False)
    return vae


@torch.no_grad()
def _frozen_latents(vae, images: torch.Tensor) -> torch.Tensor:
    """Unscaled posterior means of every training image, computed once (the encoder does not change)."""
    return torch.cat([vae.encode(images[i:i + 256]).latent_dist.mean for i in range(0, len(images), 256)])


def _losses(cfg, vae, images, latents_of, idx, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction loss, total loss) of one batch: whole images from frozen latents, or crops end to end."""
    if cfg.decoder_only:
        rec_loss = weighted_l1(vae.decode(latents_of[idx].to(cfg.device)).sample, images[idx].to(cfg.device))
        return rec_loss, rec_loss
    x = random_crops(images[idx], cfg.crop, gen).to(cfg.device)
    posterior = vae.encode(x).latent_dist
    recon = vae.decode(posterior.mode()).sample  # deterministic: learns far faster here
    rec_loss = weighted_l1(recon, x)
    return rec_loss, rec_loss + cfg.kl_weight * posterior.kl().mean()


def train_autoencoder(cfg: AutoencoderTrainConfig) -> dict:
    """Train, checkpoint every N steps, write the diffusers folder `out/vae`; returns figures."""
    os.makedirs(cfg.out, exist_ok=True)
    seed_everything(cfg.seed)
    vae = _initial_vae(cfg).to(cfg.device)
    opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    ckpt_path = os.path.join(cfg.out, "checkpoint.pt")
    start = 0
    if cfg.resume and os.path.exists(ckpt_path):
        state = load_checkpoint(ckpt_path, config_dict(cfg))
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = state["step"]
        torch.set_rng_state(state["torch_rng"])
    images = _examples(cfg)
    latents_of = _frozen_latents(vae, images) if cfg.decoder_only else None
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="autoencoder", dynamic_ncols=True)
    for step in bar:
        idx = torch.randint(0, len(images), (cfg.batch,), generator=gen.manual_seed(cfg.seed * 100003 + step))
        rec_loss, loss = _losses(cfg, vae, images, latents_of, idx, gen)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps, cfg.decay_to)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(l1=f"{rec_loss.item():.4f}", img_s=f"{cfg.batch * (step + 1 - start) / (time.time() - t0):.1f}")
        log_line(os.path.join(cfg.out, "log.jsonl"), {"step": step + 1, "l1": rec_loss.item()})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(ckpt_path, {"model": vae.state_dict(), "optimizer": opt.state_dict(), "step": step + 1,
                                        "torch_rng": torch.get_rng_state(), "config": config_dict(cfg)})
    vae.eval()
    with torch.no_grad():
        probe = images[:512].to(cfg.device)
        latents = vae.encode(probe).latent_dist.mean
        scaling = vae.config.scaling_factor if cfg.decoder_only else float(1.0 / latents.std())
        vae.register_to_config(scaling_factor=scaling)
        recon = vae.decode(latents).sample
        l1 = float((recon.clamp(-1, 1) - probe).abs().mean() * 127.5)
    with atomic_dir(os.path.join(cfg.out, "vae")) as tmp:
        vae.to("cpu").save_pretrained(tmp, safe_serialization=True)
    return {"steps": cfg.steps, "scaling_factor": scaling, "l1_in_levels": l1,
            "wall_s": time.time() - t0}
