"""The forward process, shown: a picture diffused into noise step by step, and where image-to-image's backward run
begins for a strength.

The picture is encoded as image-to-image encodes it (glassdiff.forward.start_from: the same latent and the same
seeded noise), then mixed with that noise at evenly spaced timesteps, x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar)
eps (algebra.add_noise). Each column shows the latent (false colour) and what the decoder paints from it as it is.
At the strength's timestep this is the latent the backward run starts from (a sampler that works in sigma units,
such as Euler, holds it as x0 + sigma eps, the same latent scaled by sqrt(1 + sigma^2)).
"""

from __future__ import annotations

import html

import torch
from PIL import Image

from ..algebra import add_noise
from ..config import SamplingConfig
from ..forward import first_step, image_tensor, mask_tensor, start_from
from ..sampling import seeded_generator
from ..schedulers import make_scheduler
from .pictures import PALETTE, img_tag, png_uri, project_to_rgb, svg_lines

COLUMNS = 8  # timesteps shown, evenly spaced from clean to pure noise, plus the strength's own


def start_timestep(scheduler, steps: int, strength: float) -> int | None:
    """The timestep image-to-image's first step runs at, or None when no step runs (strength 0)."""
    scheduler.set_timesteps(steps)
    index = first_step(steps, strength, scheduler.order)
    return int(scheduler.timesteps[index]) if index < len(scheduler.timesteps) else None


def forward_section(pipe, picture: Image.Image, cfg: SamplingConfig, strength: float,
                    mask: Image.Image | None = None) -> str:
    """Section 0 of a report: the picture diffused at COLUMNS timesteps and at the strength's start."""
    height, width = pipe.size(cfg)
    scheduler = make_scheduler(cfg.sampler, pipe.scheduler_config)
    start = start_from(pipe.vae, scheduler, image_tensor(picture, height, width), [seeded_generator(cfg.seed)],
                       cfg.steps, 1.0, sample=pipe.text_encoder.kind == "clip")
    begin = start_timestep(scheduler, cfg.steps, strength)
    alpha_bar = scheduler.alphas_cumprod
    last = len(alpha_bar) - 1
    shown = sorted({round(k * last / (COLUMNS - 1)) for k in range(COLUMNS)} | ({begin} - {None}))
    latents = torch.cat([add_noise(start.latents, start.noise, float(alpha_bar[t])) for t in shown])
    decoded = pipe.decode_latents(latents).numpy()
    basis, limit = project_to_rgb(start.latents), float(start.latents.abs().amax()) or 1.0
    columns = "".join(_column(t, float(alpha_bar[t]), basis(latents[k:k + 1], limit), decoded[k], t == begin)
                      for k, t in enumerate(shown))
    return f"""
<section id="forward"><h2>0. The forward process <small>(what training does to a picture, and where
image-to-image starts)</small></h2>
<p>Diffusion models learn by watching pictures dissolve: the training latent x0 is mixed with noise eps as
<span class="formula">x_t = &radic;alpha_bar &middot; x0 + &radic;(1 &minus; alpha_bar) &middot; eps</span>, and the
model learns to say what noise was added. alpha_bar falls from 1 (all picture) at t = 0 to almost 0 (all noise) at
t = {last}. Here is your picture's latent ({_describe(start.latents)}) mixed with one seed's noise (seed {cfg.seed}):
the top row is the latent in false colour, the bottom what the decoder paints from it as it is.</p>
<div class="panels forward">{columns}</div>
{_start_story(begin, strength, cfg.steps, last)}
{_mask_figure(mask, picture, height, width, pipe.factor)}
<div class="plots">{_shares_plot(alpha_bar, begin, strength)}</div>
</section>"""


def _describe(latents: torch.Tensor) -> str:
    c, h, w = latents.shape[1:]
    return f"{c}&times;{h}&times;{w} numbers"


def _column(t: int, alpha_bar: float, latent: Image.Image, image, is_start: bool) -> str:
    side = 104
    big = Image.fromarray(image).resize((side, side), Image.NEAREST if image.shape[0] <= side else Image.BILINEAR)
    mark = "<b>the run starts here</b><br>" if is_start else ""
    cls = "start" if is_start else ""
    return (f'<figure class="{cls}">{img_tag(png_uri(latent), f"latent at t={t}", width=side)}'
            f'<br>{img_tag(png_uri(big), f"decoded at t={t}", width=side)}'
            f"<figcaption>{mark}t = {t}<br>signal {alpha_bar ** 0.5:.2f} &middot; noise "
            f"{(1 - alpha_bar) ** 0.5:.2f}</figcaption></figure>")


def _start_story(begin: int | None, strength: float, steps: int, last: int) -> str:
    if begin is None:
        return (f"<p>At strength {strength:g} no step runs: the picture comes back as the autoencoder paints it "
                f"(the column at t = 0).</p>")
    runs = steps - first_step(steps, strength)
    return (f"<p><b>Image-to-image at strength {strength:g}</b> skips the first {steps - runs} of {steps} steps: it "
            f"takes the picture to timestep {begin} (the outlined column) and runs the last {runs} steps backwards "
            f"from there with the prompt. What is still signal there (the picture's layout, its broad colours) "
            f"tends to survive; what the noise has drowned is redrawn. Strength 1 starts from pure noise at "
            f"t = {last}, which is text-to-image.</p>")


def _mask_figure(mask: Image.Image | None, picture: Image.Image, height: int, width: int, factor: int) -> str:
    """Inpainting's mask on the latent grid over the picture: only the white part is redrawn."""
    if mask is None:
        return ""
    grid = mask_tensor(mask, height, width, (height // factor, width // factor))
    shown = torch.nn.functional.interpolate(grid, size=(height, width))[0, 0].numpy()
    base = image_tensor(picture, height, width)[0].permute(1, 2, 0).numpy() * 0.5 + 0.5
    tinted = base * (1 - 0.6 * shown[..., None]) + 0.6 * shown[..., None]
    image = Image.fromarray((tinted.clip(0, 1) * 255).astype("uint8")).resize((192, 192 * height // width))
    return (f"<p><b>Inpainting:</b> after every step, the latent outside the mask is put back to the picture's "
            f"latent at the next step's noise level, so only the mask's part (white) is redrawn.</p>"
            f"<div class='panels'><figure>{img_tag(png_uri(image), 'the mask over the picture')}<figcaption>the mask "
            f"on the latent grid, over the picture (white: redrawn)</figcaption></figure></div>")


def _shares_plot(alpha_bar: torch.Tensor, begin: int | None, strength: float) -> str:
    """Signal and noise shares over the timesteps; the strength's start joins the two curves."""
    every = range(0, len(alpha_bar), max(1, len(alpha_bar) // 100))
    signal, noise = (alpha_bar**0.5).tolist(), ((1 - alpha_bar) ** 0.5).tolist()
    series = {"signal share √alpha_bar": [(t, signal[t]) for t in every],
              "noise share √(1 − alpha_bar)": [(t, noise[t]) for t in every]}
    if begin is not None:
        series[f"where strength {strength:g} starts (t = {begin})"] = [(begin, noise[begin]), (begin, signal[begin])]
    key = " ".join(f'<span style="color:{PALETTE[k]}">&#9632; {html.escape(name)}</span>'
                   for k, name in enumerate(series))
    plot = svg_lines(series, f"timestep t (0 to {len(alpha_bar) - 1})", "share of the latent", xy=True, width=520,
                     legend=False)
    return f"<figure style='max-width:none'>{plot}<figcaption>{key}</figcaption></figure>"
