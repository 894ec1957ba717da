"""Stage 3: a student that draws in 1 to 4 steps, distilled from a teacher model (latent consistency distillation).

The student learns to map any point of the teacher's guided ODE trajectory straight to its clean end (Song et al.
2023, "Consistency Models"; Luo et al. 2023, "Latent Consistency Models"). Each step: a cached latent is noised to
t, a timestep of the 50-step grid; the teacher runs one guided DDIM step from t to s = t - 20 (its guidance, 4 by
default, folded in: the student runs one UNet pass a step, no guided pair); the student's answer at (x_t, t) is
pulled towards its own slowly moving copy's (EMA) answer at (x_s, s). Answers pass through the boundary condition
c_skip(t) x_t + c_out(t) x0 (diffusers' LCMScheduler's), so at t = 0 the answer is x_t itself. The student is
sampled by `--sampler lcm` with guidance 1.

Same habits as the denoiser stage: the cached latents and captions, batches a function of (seed, step), atomic
resumable checkpoints, a log, a loss plot, sample sheets, the model folder `out/model`, `--device cuda`, and DDP
under torchrun (each rank takes its share of the global batch, so the weights do not depend on the rank count).
"""

from __future__ import annotations

import dataclasses
import os
import time

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..algebra import add_noise, to_x0_and_eps
from ..config import BadInput
from ..denoiser import Denoiser
from .common import (EMA, config_dict, load_checkpoint, log_line, lr_at, save_checkpoint, seed_everything,
                     setup_distributed)
from .denoiser import DenoiserTrainConfig, cache_on, load_or_build_cache, trained_steps, weights_digest

SIGMA_DATA = 0.5  # LCMScheduler's boundary condition
TIMESTEP_SCALING = 10.0
LOSS_LABEL = "consistency loss (pseudo-Huber)"
STUDENT_SAMPLING = {"sampler": "lcm", "steps": 4, "guidance": 1.0, "layout": 1.0}  # regions on every step


@dataclasses.dataclass(frozen=True)
class DistillTrainConfig:
    out: str = "runs/distill"
    teacher: str = "glassdiff/weights"  # the teacher's model folder; the student starts from its weights
    guidance: float = 4.0  # the teacher's guidance, folded into the student
    grid: int = 50  # the teacher's ODE steps span 1000 / grid training timesteps (LCM's k = 20)
    steps: int = 3000
    stop_after: int = 0
    batch: int = 32
    lr: float = 2e-5
    warmup: int = 100
    anneal: int = 0  # the last `anneal` steps bring the rate down by a cosine to lr * anneal_to (0: constant)
    anneal_to: float = 0.1
    ema_decay: float = 0.95  # the target copy's decay (LCM's mu)
    huber_c: float = 0.001  # pseudo-Huber loss: sqrt(d^2 + c^2) - c
    captions: int = 6000
    scenes_per_caption: int = 2
    seed: int = 0
    checkpoint_every: int = 100
    sample_every: int = 500
    resume: bool = False
    device: str = "cpu"

    def data_config(self, size: int) -> DenoiserTrainConfig:
        """The denoiser stage's data options for the teacher's autoencoder: the same cache format and drawing."""
        return DenoiserTrainConfig(out=self.out, vae=os.path.join(self.teacher, "vae"), size=size,
                                   captions=self.captions, scenes_per_caption=self.scenes_per_caption, seed=self.seed,
                                   device=self.device)


def boundary(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """c_skip(t), c_out(t) shaped (B, 1, 1, 1), as diffusers' LCMScheduler computes them."""
    scaled = (t.float() * TIMESTEP_SCALING).view(-1, 1, 1, 1)
    return SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2), scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5


def consistent(denoise, x_t, t, context, alpha_bar, prediction_type):
    """The consistency function: c_skip x_t + c_out x0_pred."""
    x0, _ = to_x0_and_eps(denoise(x_t, t, context), x_t, alpha_bar, prediction_type)
    c_skip, c_out = boundary(t)
    return c_skip * x_t + c_out * x0


def step_batch(cfg: DistillTrainConfig, latents: torch.Tensor, step: int):
    """The global batch of `step`: indices, grid positions and noise, a function of (seed, step) only."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    idx = torch.randint(0, len(latents), (cfg.batch,), generator=g)
    position = torch.randint(0, cfg.grid, (cfg.batch,), generator=g)
    return idx, position, torch.randn((cfg.batch, *latents.shape[1:]), generator=g)


def distill_loss(cfg, student, target, teacher, alphas_cumprod, cache, idx, position, noise, prediction_type):
    """Per-sample pseudo-Huber distance (B,) between the student's answer at t and its EMA copy's at s."""
    device = cache["latents"].device
    idx, position, noise = idx.to(device), position.to(device), noise.to(device)
    skip = len(alphas_cumprod) // cfg.grid
    t = (position + 1) * skip - 1  # 19, 39, ..., 999
    s = (t - skip).clamp(min=0)
    x0 = cache["latents"][idx]
    context = cache["context"][cache["caption_of"][idx]].float()
    ab_t, ab_s = (alphas_cumprod[v].view(-1, 1, 1, 1) for v in (t, s))
    x_t = add_noise(x0, noise, ab_t)
    with torch.no_grad():
        uncond = cache["uncond"].float().expand_as(context)
        both = teacher(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([uncond, context]))
        out_uncond, out_cond = both.chunk(2)
        guided = out_uncond + cfg.guidance * (out_cond - out_uncond)
        x0_hat, eps_hat = to_x0_and_eps(guided, x_t, ab_t, prediction_type)
        x_s = add_noise(x0_hat, eps_hat, ab_s)  # one DDIM step of the teacher's guided ODE
        wanted = consistent(target, x_s, s, context, ab_s, prediction_type)
    got = consistent(student, x_t, t, context, ab_t, prediction_type)
    return ((got - wanted).pow(2).mean(dim=(1, 2, 3)) + cfg.huber_c**2).sqrt() - cfg.huber_c


def train_distill(cfg: DistillTrainConfig) -> dict:
    """Distil (resumably, on `device`, over DDP ranks under torchrun); write checkpoints, samples, the loss curve and
    the student's folder `out/model`."""
    from ..pipeline import Pipeline

    if cfg.stop_after < 0:
        raise BadInput(f"--stop-after {cfg.stop_after}: give a number of steps, or 0 to run to --steps")
    if not os.path.isdir(cfg.teacher):
        raise BadInput(f"--teacher {cfg.teacher}: no such model folder")
    if not (0 <= cfg.anneal <= cfg.steps and 0 < cfg.anneal_to <= 1):
        raise BadInput(f"--anneal {cfg.anneal} --anneal-to {cfg.anneal_to}: give 0 (a constant rate) up to --steps "
                       f"({cfg.steps}) steps, and a share of the rate above 0, at most 1")
    rank, world = setup_distributed(cfg.device)
    os.makedirs(cfg.out, exist_ok=True)
    seed_everything(cfg.seed)
    teacher_pipe = Pipeline.load(cfg.teacher)
    if teacher_pipe.text_encoder.kind != "minilm":
        raise BadInput("distillation takes glassdiff's own models as teachers (a Stable Diffusion one is not "
                       "supported yet)")
    cache = cache_on(load_or_build_cache(cfg.data_config(teacher_pipe.native_size), teacher_pipe.vae,
                                         teacher_pipe.text_encoder, rank), cfg.device)
    record = {"steps": trained_steps(cfg.teacher), "distilled_from": teacher_pipe.model_hash,
              "guidance_folded": cfg.guidance, "sampling": STUDENT_SAMPLING}  # the hash before training moves it
    prediction_type = teacher_pipe.scheduler_config["prediction_type"]
    alphas_cumprod = _alphas_cumprod(teacher_pipe.scheduler_config).to(cfg.device)
    unet = teacher_pipe.unet.to(cfg.device)
    teacher_unet = _frozen_copy(unet)
    unet.train().requires_grad_(True)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    ema = EMA(unet, cfg.ema_decay)
    target_unet = _frozen_copy(unet)
    ckpt_path, log_path, start = os.path.join(cfg.out, "checkpoint.pt"), os.path.join(cfg.out, "log.jsonl"), 0
    if cfg.resume and os.path.exists(ckpt_path):
        state = load_checkpoint(ckpt_path, config_dict(cfg))
        unet.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        ema.shadow = {k: v.to(cfg.device) for k, v in state["ema"].items()}
        start = state["step"]
    model = torch.nn.parallel.DistributedDataParallel(unet) if world > 1 else unet
    end = min(cfg.stop_after or cfg.steps, cfg.steps)
    t0 = time.time()
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc="distill", disable=rank != 0,
               dynamic_ncols=True)
    for step in bar:
        target_unet.load_state_dict(ema.shadow)
        idx, position, noise = step_batch(cfg, cache["latents"], step)
        mine = slice(rank * cfg.batch // world, (rank + 1) * cfg.batch // world)
        losses = distill_loss(cfg, Denoiser(model), Denoiser(target_unet), Denoiser(teacher_unet), alphas_cumprod,
                              cache, idx[mine], position[mine], noise[mine], prediction_type)
        loss = losses.mean()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps, cfg.anneal_to if cfg.anneal else 1.0,
                                cfg.steps - cfg.anneal)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.update(unet, step)
        done = step + 1
        if rank == 0:
            bar.set_postfix(loss=f"{loss.item():.5f}", img_s=f"{cfg.batch * (done - start) / (time.time() - t0):.1f}")
            log_line(log_path, {"step": done, "loss": loss.item(), "lr": opt.param_groups[0]["lr"],
                                "elapsed_s": round(time.time() - t0, 2)})
        if rank == 0 and (done % cfg.checkpoint_every == 0 or done == end):
            save_checkpoint(ckpt_path, {"model": unet.state_dict(), "optimizer": opt.state_dict(),
                                        "ema": ema.shadow, "step": done, "config": config_dict(cfg)})
            _write_student(cfg, teacher_pipe, ema, {**record, "distill_steps": done})
        if rank == 0 and (done % cfg.sample_every == 0 or done == end):
            _write_samples(cfg, done)
    if dist.is_initialized():
        dist.barrier()
    if rank == 0 and os.path.exists(log_path):
        from .plots import plot_losses

        plot_losses(log_path, os.path.join(cfg.out, "loss.png"), ylabel=LOSS_LABEL)
    return {"steps": end, "wall_s": time.time() - t0, "images": len(cache["latents"]), "world_size": world,
            "rank": rank, "weights_digest": weights_digest(unet)}


def _alphas_cumprod(scheduler_config: dict) -> torch.Tensor:
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config).alphas_cumprod.float()


def _frozen_copy(unet):
    import copy

    return copy.deepcopy(unet).eval().requires_grad_(False)


def _write_student(cfg, teacher_pipe, ema, record: dict):
    """The EMA weights as a model folder (out/model), written atomically, recording its teacher and sampling."""
    from ..pipeline import Pipeline

    unet = _frozen_copy(teacher_pipe.unet).cpu()
    unet.load_state_dict(ema.shadow)
    student = Pipeline(unet=unet, vae=teacher_pipe.vae, text_encoder=teacher_pipe.text_encoder,
                       scheduler_config=teacher_pipe.scheduler_config)
    student.save(os.path.join(cfg.out, "model"), training=record)


def _write_samples(cfg, done: int):
    from ..pipeline import Pipeline
    from .denoiser import SAMPLE_PROMPTS
    from .plots import sample_sheet

    pipe = Pipeline.load(os.path.join(cfg.out, "model"))
    pipe.engine = "torch"
    sample_sheet(pipe, SAMPLE_PROMPTS, os.path.join(cfg.out, "samples", f"step{done:06d}.png"), **STUDENT_SAMPLING)
