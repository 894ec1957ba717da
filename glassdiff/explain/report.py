"""The explainer report: one self-contained HTML file that follows the data from words to pixels.

Everything in it comes from observers of the real run (StepRecords and the
attention recorder), so its final image is the image `glassdiff generate`
makes with the same parameters.
"""

from __future__ import annotations

import dataclasses
import html
import json
import unicodedata

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..config import MAX_GUIDANCE, BadInput, SamplingConfig
from ..engine import NAMES
from ..grounding import glyph_of
from ..sampling import StepRecord
from .pictures import (PALETTE, PANEL_SIDE, img_tag, diverging_strip, heatmap, layout_overlay, overlay, panel, png_uri,
                       project_to_rgb, svg_lines)
from .forward_view import forward_section
from .strip import trajectory_strip

REFERENCE_WORDS = ("circle", "ball", "ring", "square", "box", "star", "heart", "red", "crimson", "blue",
                   "helicopter", "left", "above")
FUNCTION_WORDS = {"a", "an", "the", "of", "in", "on", "at", "and", "to"}
GUIDANCE_SWEEP = (0.0, 1.0)  # plus the run's own scale and twice it


def text_section(pipe, prompt: str, words: list[str]) -> str:
    encoded = pipe.text_encoder([prompt])
    tokens, mask, context = encoded.tokens[0], encoded.mask[0], encoded.context[0]
    shown = int(mask.sum()) + 1  # the real tokens and the first padding token
    rows = []
    for i in range(min(shown, len(tokens))):
        kind = "padding" if not mask[i] else ("special" if tokens[i].startswith("[") else "word piece")
        strip = img_tag(png_uri(diverging_strip(context[i])), "embedding of " + tokens[i], "strip")
        rows.append(f"<tr><td>{i}</td><td><code>{html.escape(tokens[i])}</code></td><td>{kind}</td>"
                    f"<td>{strip}</td></tr>")
    content = [w for w in words if w not in FUNCTION_WORDS]
    vocab = list(dict.fromkeys(content + list(REFERENCE_WORDS)))
    vectors = pipe.text_encoder.word_vectors(vocab)
    similarity = (vectors @ vectors.T).numpy()
    table = "\n".join(rows)
    return f"""
<section id="text"><h2>1. The sentence understander <small>(text encoder: {pipe.text_encoder.kind})</small></h2>
<p>The prompt is cut into word pieces; each becomes a {context.shape[1]}-number vector that depends on the whole
sentence. The UNet reads all {len(tokens)} vectors, padding included ({int(mask.sum())} real tokens here).
Each strip below is one token's vector (blue negative, red positive).</p>
<table class="tokens"><tr><th>#</th><th>token</th><th>kind</th><th>embedding ({context.shape[1]} numbers)</th></tr>
{table}</table>
<h3>How close the words sit (cosine similarity of their embeddings)</h3>
{img_tag(png_uri(heatmap(similarity, vocab)), 'word similarity heatmap', 'heat')}
</section>"""


KIND_WORDS = {"shape": "shape", "color": "colour", "size": "size", "count": "count", "relation": "relation",
              "cell": "place", "background": "background", "joining": "joins two objects",
              "modifier": "part of a colour",
              "carrier": "not drawn: about the picture, not in it", "loose": "known, but names no object here",
              "unknown": "not in this model's world"}


def grounding_section(grounding, read_as: str) -> str:
    """What each phrase of the prompt was read as in the shapes world, how close, and by what; empty for a model
    outside the world."""
    if grounding is None:
        return ""
    rows = []
    for r in grounding.readings:
        value = f"nearest it knows: <b>{html.escape(str(r.value))}</b>" if r.kind == "unknown" else \
            html.escape(str(r.value)) if r.value is not None else ""
        bar = f'<span class="bar" style="width:{max(0.0, r.score) * 80:.0f}px"></span> {r.score:.2f}'
        source = r.source
        if source == "Unicode glyph":  # the character whose drawing was compared with the world's outlines
            char = glyph_of(r.words)
            source += f" <span class='glyph'>{html.escape(char)}</span> ({unicodedata.name(char)})"
        rows.append(f"<tr class='{r.kind}'><td><code>{html.escape(r.words)}</code></td><td>{KIND_WORDS[r.kind]}</td>"
                    f"<td>{value}</td><td>{bar}</td><td>{source}</td></tr>")
    if read_as != grounding.prompt:
        drawn = f"The model read the world's own wording: <b>“{html.escape(read_as)}”</b> (<code>--layout 0</code> " \
                f"draws your words as written)."
    elif grounding.spec is None:
        drawn = "Not every object was read, so the model read your words as written."
    else:
        drawn = "Your words are the world's own wording; the model read them as written."
    return f"""
<section id="grounding"><h2>1a. What the words mean here <small>(grounding)</small></h2>
<p>The model learned one small world: 8 shapes, 11 colours, 3 sizes, counts to four, 9 places, 4 relations and 5
backgrounds. Each phrase of the prompt is read as the nearest of the world's words by what it means: colour names
by the colour they name (a colour survey), rare shape words and directions by a dictionary (WordNet, or the Unicode
glyph of that name compared with the world's outlines), other words by how close the text encoder puts them to the
world's words (cosine similarity, 1 = the world's own word). What is not close enough is not guessed.
{drawn}</p>
<table class="grounding"><tr><th>phrase</th><th>read as</th><th>world's word</th><th>how close</th><th>by</th></tr>
{''.join(rows)}</table>
</section>"""


def step_panels(records: list[StepRecord], x0_images: np.ndarray, attention) -> list[dict]:
    """Per step: the label and a data URI of every panel (one colour scale per quantity over all steps)."""
    final = records[-1].x_next[:1]
    basis = project_to_rgb(final)

    def first(t, like):  # a branch guidance skipped (s = 0 or 1) is shown as zeros
        return t[:1] if t is not None else torch.zeros_like(like[:1])

    cond = [first(r.eps_cond, r.eps) for r in records]
    uncond = [first(r.eps_uncond, r.eps) for r in records]
    both_ran = [r.eps_cond is not None and r.eps_uncond is not None for r in records]
    quantities = {
        "x_t": [r.x_t[:1] / r.x_t[:1].std() for r in records],
        "eps_cond": cond,
        "eps_uncond": uncond,
        "words_add": [c - u if ran else torch.zeros_like(c) for c, u, ran in zip(cond, uncond, both_ran)],
        "eps": [r.eps[:1] for r in records],
        "x_next": [r.x_next[:1] / r.x_next[:1].std() for r in records],
    }
    panels = [{} for _ in records]
    for name, tensors in quantities.items():
        limit = max(float(t.abs().amax()) for t in tensors) or 1.0
        for i, t in enumerate(tensors):
            panels[i][name] = png_uri(basis(t, limit))
    for i, r in enumerate(records):
        panels[i]["x0"] = png_uri(panel(Image.fromarray(x0_images[i])))
        panels[i]["label"] = (f"step {i + 1} of {len(records)} · timestep {r.timestep:.0f} · sigma {r.sigma:.3g}"
                              + (" · regions' prompts" if r.regional else ""))
        if attention is not None:
            step_words = attention.word_maps(steps=slice(i, i + 1))
            # every word at every step: small, so that a long run's report stays a few MB
            panels[i]["words"] = [png_uri(panel(overlay(x0_images[i], m.numpy()), side=PANEL_SIDE // 2))
                                  for _, m in step_words]
    return panels


def steps_section(records, panels, from_picture: bool = False) -> str:
    sigmas = [r.sigma for r in records]
    change = [float((r.x_next[:1] - r.x_t[:1]).norm() / r.x_t[:1].norm()) for r in records]
    names = [("x_t", "latent going in (x_t)"), ("eps_cond", "noise predicted with the prompt"),
             ("eps_uncond", "noise predicted with the empty prompt"), ("words_add", "difference: what the words add"),
             ("eps", "guided noise"), ("x_next", "latent after the scheduler's step"),
             ("x0", "x0_pred decoded: the image the model expects")]
    cells = "".join(f'<figure><img id="p-{key}" src="{panels[-1][key]}" width="{192 if key == "x0" else 96}" '
                    f'alt="{label}"><figcaption>{label}'
                    f"</figcaption></figure>" for key, label in names)
    log_sigmas = [float(np.log10(max(s, 1e-6))) for s in sigmas]
    start = "the picture, noised (section 0)" if from_picture else "seeded noise"
    return f"""
<section id="steps"><h2>2. The collage machine <small>(UNet + scheduler)</small></h2>
<p>Starting from {start}, at each step the UNet predicts the noise in the latent twice, with the prompt and
with the empty prompt; guidance mixes the two, and the scheduler subtracts its share. Latents and noise are shown
as false colour (the latent's channels projected to RGB). Move the slider.</p>
<div class="slider"><input type="range" id="step" min="0" max="{len(records) - 1}" value="{len(records) - 1}">
<span id="step-label">{panels[-1]['label']}</span></div>
<div class="panels">{cells}</div>
<div class="plots">{svg_lines({'noise level sigma (log)': log_sigmas}, 'step', 'log10 sigma')}
{svg_lines({'relative change of the latent': change}, 'step', '|x_next - x_t| / |x_t|')}</div>
</section>"""


def layout_section(regions, records, final: np.ndarray) -> str:
    """The planned regions over the final image, and which steps drew them (empty when the prompt was not planned)."""
    if not regions:
        return ""
    steps = sum(r.regional for r in records)
    first = next(r.index for r in records if r.regional) + 1
    last = first + steps - 1
    if first == 1:
        before = ("Every step is drawn region by region (<code>--layout 1</code>), so the regions' prompts name what "
                  "the prompt left free, picked by the seed: one background, which the canvases share, and a colour "
                  "for each object named with none.")
    else:
        earlier = "Step 1" if first == 2 else f"Steps 1-{first - 1}"
        before = f"{earlier} drew the whole prompt, which settles the background."
    after = (f"From step {last + 1} the whole prompt steers every pixel again." if last < len(records) else
             "The pasted canvases are the image.")
    legend = "".join(f'<li><span class="swatch" style="background:{PALETTE[k % len(PALETTE)]}">{k + 1}</span> '
                     f"<code>{html.escape(region.prompt)}</code></li>" for k, region in enumerate(regions))
    picture = img_tag(png_uri(layout_overlay(final, [region.box for region in regions])), "planned regions", width=256)
    why, how = _plan_story(regions)
    return f"""
<section id="layout"><h2>1b. The layout <small>(regional prompts, for {steps} of {len(records)} steps)</small></h2>
<p>{why} {before} Then, for steps {first}-{last}, where the layout is decided, {how}
{after} <code>--layout 0</code> turns this off.</p>
<div class="panels"><figure>{picture}<figcaption>the regions over the final image</figcaption></figure>
<ol class="regions">{legend}</ol></div></section>"""


def _plan_story(regions) -> tuple[str, str]:
    """Why the prompt was planned, and how its layout steps drew it: one region, or one part per object."""
    if len(regions) == 1:
        return ("This prompt names one object and no colour, which this model sometimes leaves out altogether (an "
                "empty canvas). So glassdiff made the whole canvas one part, with a prompt of its own that asks for "
                "the object in the centre (at medium size where the prompt names none).",
                "that prompt steered the image instead.")
    return ("This prompt names two objects, or several copies of one, which this model often draws in the wrong "
            "places, with each other's colours, or in the wrong number. So glassdiff gave each object (each copy) a "
            "part of the canvas and a prompt of its own that names that part.",
            "each part was drawn on a canvas of its own, cut from the image so far, as if its prompt were the whole "
            "image; then each canvas was cut to its part and the pieces pasted together (the panels below show the "
            "pasted canvases).")


def words_section(x_final: np.ndarray, attention, panels) -> str:
    if attention is None:
        return ""
    words = attention.word_maps()
    figures = "".join(f'<figure><img id="w-{i}" src="{png_uri(panel(overlay(x_final, m.numpy())))}" width="192" '
                      f'alt="{html.escape(w)}"><figcaption><b>{html.escape(w)}</b></figcaption></figure>'
                      for i, (w, m) in enumerate(words))
    picker = " ".join(f'<button type="button" class="word" data-k="{i}">{html.escape(w)}</button>'
                      for i, (w, _) in enumerate(words))
    per_step = "".join(f'<figure><img id="ws-{i}" src="{panels[-1]["words"][i]}" width="192" '
                       f'alt="{html.escape(w)} at this step"><figcaption>{html.escape(w)}</figcaption></figure>'
                       for i, (w, _) in enumerate(words))
    return f"""
<section id="words"><h2>3. Words to pixels <small>(cross-attention, DAAM-style)</small></h2>
<p>Where each word steered the image: the UNet's cross-attention to that word, averaged over heads, upsampled
from every layer and summed over layers and all steps, over the final image. Each map is stretched to its own
range: brighter = more of that word's attention than elsewhere in the picture. Steps drawn region by region
(the layout above) read the regions' prompts, not this one, and add nothing here.</p>
<p>Pick a word (hover or click): {picker}</p>
<div class="panels"><figure><img id="focus-all" src="" width="256" alt="the picked word over all steps">
<figcaption id="focus-all-caption">over all steps</figcaption></figure>
<figure><img id="focus-step" src="" width="256" alt="the picked word at the slider's step">
<figcaption id="focus-step-caption">at the slider's step</figcaption></figure></div>
<h3>Every word, over all steps</h3><div class="panels">{figures}</div>
<h3>Every word, at the step chosen on the slider above</h3><div class="panels">{per_step}</div></section>"""


def sweep_scales(scale: float) -> list[float]:
    """0, 1, the run's own scale, and twice it (8 when the run's is 0 or 1)."""
    return sorted(set(GUIDANCE_SWEEP + (scale, min(2 * scale, MAX_GUIDANCE) if scale > 1 else 8.0)))


def guidance_section(pipe, prompt, cfg: SamplingConfig, sweep_steps: int, picture: dict) -> str:
    """The run's seed at several guidance scales, all in one batched loop (each image runs only the halves it needs)."""
    scales = sweep_scales(cfg.guidance)
    images = pipe([prompt] * len(scales), dataclasses.replace(cfg, steps=sweep_steps), scales=scales,
                  **picture).images
    figures = "".join(f"<figure>{img_tag(png_uri(image), f'guidance {s}', width=192)}<figcaption>s = {s:g}"
                      f"{' (this run)' if s == cfg.guidance else ''}</figcaption></figure>"
                      for s, image in zip(scales, images))
    fewer = (f" To keep the report quick these are sampled with {sweep_steps} steps instead of the run's "
             f"{cfg.steps} (<code>--sweep-steps</code> changes it), so even the run's own scale looks a little "
             f"different from the image above." if sweep_steps != cfg.steps else "")
    return f"""
<section id="guidance"><h2>4. Guidance</h2>
<p class="formula">eps = eps_uncond + s &middot; (eps_cond &minus; eps_uncond)</p>
<p>The same seed at several guidance scales s. At s = 0 the prompt is ignored; at s = 1 only the prompted
prediction is used; larger s pushes further in the direction the words point.{fewer}</p>
<div class="panels">{figures}</div></section>"""


def decoder_section(pipe, latent: torch.Tensor, image: Image.Image) -> str:
    channels = latent[0]
    c, h, w = channels.shape
    tiles = "".join(f"<figure>{img_tag(png_uri(_gray(channels[k])), f'channel {k}', width=64)}"
                    f"<figcaption>ch {k}</figcaption></figure>" for k in range(c))
    return f"""
<section id="decoder"><h2>5. The color-by-numbers machine <small>(autoencoder decoder)</small></h2>
<p>The final latent is {c}&times;{h}&times;{w} = {c * h * w:,} numbers; the decoder paints it as a
{image.width}&times;{image.height}&times;3 = {image.width * image.height * 3:,}-number image
({pipe.factor}&times; larger on each side).</p>
<div class="panels">{tiles}<figure>{img_tag(png_uri(image), 'final image', width=192)}
<figcaption>the image</figcaption></figure></div>
</section>"""


def _gray(channel: torch.Tensor) -> Image.Image:
    x = channel.float().numpy()
    x = (x - x.min()) / (x.max() - x.min() + 1e-8)
    return Image.fromarray((x * 255).astype(np.uint8))


def compare_section(records_a, records_b, prompt_a, prompt_b) -> str:
    """Both prompts' latent trajectories (x_t at every step, then x_0) projected to 2D by PCA."""
    def path(records):
        return torch.stack([r.x_t[0].flatten() for r in records] + [records[-1].x_next[0].flatten()])

    a, b = path(records_a), path(records_b)
    both = torch.cat([a, b])
    mean = both.mean(0)
    _, _, v = torch.pca_lowrank(both - mean, q=2, center=False)
    pa, pb = ((a - mean) @ v).numpy(), ((b - mean) @ v).numpy()
    return f"""
<section id="compare"><h2>Two prompts, one seed: their paths through latent space</h2>
<p>Each point is the latent at one step, projected on the two directions along which the two runs vary most
(PCA). Both start from the same noise and part ways as the words take hold.</p>
{svg_lines({prompt_a: list(map(tuple, pa)), prompt_b: list(map(tuple, pb))}, 'PC 1', 'PC 2', xy=True)}</section>"""


SCRIPT = """
const panels = %s;
const slider = document.getElementById('step');
function show(i) {
  const p = panels[i];
  document.getElementById('step-label').textContent = p.label;
  for (const key of ['x_t','eps_cond','eps_uncond','words_add','eps','x_next','x0']) {
    document.getElementById('p-' + key).src = p[key];
  }
  (p.words || []).forEach((uri, k) => { const el = document.getElementById('ws-' + k); if (el) el.src = uri; });
}
slider.addEventListener('input', () => { show(+slider.value); focusWord(focused); });
let focused = 0;
function focusWord(k) {
  const all = document.getElementById('w-' + k), step = document.getElementById('ws-' + k);
  if (!all) return;
  focused = k;
  document.getElementById('focus-all').src = all.src;
  document.getElementById('focus-step').src = step.src;
  document.getElementById('focus-all-caption').textContent = `“${all.alt}” over all steps`;
  document.getElementById('focus-step-caption').textContent = `“${all.alt}” at the slider's step`;
  document.querySelectorAll('button.word').forEach((b) => b.classList.toggle('picked', +b.dataset.k === k));
}
document.querySelectorAll('button.word').forEach((b) => {
  b.addEventListener('mouseenter', () => focusWord(+b.dataset.k));
  b.addEventListener('click', () => focusWord(+b.dataset.k));
});
focusWord(0);
"""

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-top:2px solid #eee;padding-top:.8em} small{color:#777;font-weight:normal}
.panels{display:flex;flex-wrap:wrap;gap:10px} figure{margin:0;text-align:center;max-width:200px}
figcaption{font-size:12px;color:#555} img{image-rendering:pixelated} .strip{height:10px;width:384px}
table.tokens td{padding:1px 8px} .slider{margin:.8em 0} #step{width:420px;vertical-align:middle}
#step-label{font-family:monospace;margin-left:1em} .formula{font-family:monospace;font-size:17px}
.plots{display:flex;gap:20px;flex-wrap:wrap} .heat{max-width:100%} .trajectory{max-width:100%}
.regions{list-style:none;padding-left:1em} .regions li{margin:.4em 0}
button.word{font:inherit;margin:2px;padding:2px 8px;border:1px solid #9ab;border-radius:4px;background:#fff}
button.word.picked{background:#35507a;color:#fff}
.grounding .bar{display:inline-block;height:0.8em;background:#4a7bd0}.grounding .glyph{font-size:1.4em}
.grounding tr.unknown{color:#b03030}
.grounding tr.carrier,.grounding tr.loose,.grounding tr.joining{color:#777}
.forward figure{max-width:112px;font-size:11px} .forward figure.start img{outline:3px solid #c0392b}
.swatch{display:inline-block;width:1.3em;text-align:center;color:white;font-weight:bold;border-radius:3px}
"""


def default_sweep_steps(steps: int) -> int:
    """A fifth of the run's steps (at least 4, at most the run's): four images in one loop stay cheap."""
    return min(steps, max(4, steps // 5))


STUDENT_STEPS = (1, 2, 4)


def student_section(student, prompt: str, cfg: SamplingConfig, teacher_strip: Image.Image) -> str:
    """The teacher's run beside a distilled student's 1, 2 and 4 steps from the same seed: the image each expects
    at each step (x0_pred), one row a run."""
    passes = "one UNet pass" if cfg.guidance in (0, 1) else "two UNet passes"
    rows = [(f"the teacher, {cfg.steps} steps ({passes} each: guidance {cfg.guidance:g})", teacher_strip)]
    for steps in STUDENT_STEPS:
        run = dataclasses.replace(cfg, **{**student.sampling, "steps": steps})
        records = student(prompt, run, trace=True).trace
        rows.append((f"the student, {steps} step{'s' if steps > 1 else ''} ({run.sampler}, one UNet pass each)",
                     trajectory_strip(student, records, columns=steps + 1, max_side=PANEL_SIDE)))
    figures = "".join(f"<h3>{html.escape(label)}</h3>{img_tag(png_uri(strip), label)}" for label, strip in rows)
    return (f'<section id="student"><h2>7. Fewer steps: the teacher and its student</h2><p>A student distilled '
            f'from this model (glassdiff train distill) learned to jump from any point of the teacher\'s path '
            f'straight to its end. Each row shows, from the same seed, what the run expects the image to be after '
            f'each step.</p>{figures}</section>')


def build_report(pipe, prompt: str, cfg: SamplingConfig, compare: str | None = None, sweep_steps: int | None = None,
                 picture: dict | None = None, student=None):
    """(html, result) for one run of one image.

    sweep_steps: steps of the guidance sweep's images (default: default_sweep_steps).
    picture: the pipeline's init_image, strength and mask, to explain an image-to-image run (its forward process
    comes first; the sweep and the comparison start from the same picture).
    student: a Pipeline distilled from this one, shown beside it at 1, 2 and 4 steps.
    """
    picture = picture or {}
    if picture and student is not None:
        raise BadInput("--student sets a student beside a text-to-image run; leave out --init-image")
    if picture and picture["strength"] == 0:
        raise BadInput("at strength 0 no step runs, so there is nothing to explain; explain --forward PICTURE shows "
                       "the picture diffused into noise")
    cfg = dataclasses.replace(cfg, batch=1)
    result = pipe(prompt, cfg, trace=True, attention=True, **picture)
    records, attention = result.trace, result.attention
    words = [w for w, _ in attention.word_maps()]
    x0_images = pipe.decode_latents(torch.cat([r.x0_pred[:1] for r in records])).numpy()  # once, for all panels
    panels = step_panels(records, x0_images, attention)
    final = np.asarray(result.image)
    body = [text_section(pipe, prompt, words), grounding_section(result.groundings[0], result.read_as[0]),
            layout_section(result.plans[0], records, final),
            steps_section(records, panels, from_picture=bool(picture)), words_section(final, attention, panels),
            guidance_section(pipe, prompt, cfg, sweep_steps or default_sweep_steps(cfg.steps), picture),
            decoder_section(pipe, result.latents, result.image)]
    if picture:
        body.insert(0, forward_section(pipe, picture["init_image"], cfg, picture["strength"], picture.get("mask")))
    if compare:
        other = pipe(compare, cfg, trace=True, **picture)
        body.append(compare_section(records, other.trace, prompt, compare))
    strip = trajectory_strip(pipe, records, x0_images=x0_images, max_side=PANEL_SIDE,
                             start_label="picture, noised" if picture else "noise x_T")
    start = "the picture noised to the strength's timestep" if picture else "pure noise"
    body.append(f'<section id="trajectory"><h2>6. The trajectory</h2><p>From {start} on the left to the '
                f'picture on the right: the decoded x0_pred at evenly spaced steps.</p>'
                f'{img_tag(png_uri(strip), "trajectory strip", "trajectory")}</section>')
    if student is not None:
        body.append(student_section(student, prompt, cfg, strip))
    parameters = result.infotexts[0] + (f", Denoising strength: {picture['strength']}" if picture else "")
    head = (f"<h1>How glassdiff drew “{html.escape(prompt)}”</h1><p>{html.escape(parameters)}</p>"
            f'{engine_note(pipe)}{img_tag(png_uri(result.image), "final image", width=256)}')
    return page(prompt, head, body, SCRIPT % json.dumps(panels)), result


def engine_note(pipe) -> str:
    """Where generate runs the fast path, the report says it ran the reference instead, and why."""
    engine = pipe.engine_in_use()
    if engine == "torch":
        return ""
    runtime = NAMES[engine]
    return ("<p class='note'>This report ran PyTorch's UNet, the reference path: the word maps need its attention "
            f"layers. <code>glassdiff generate</code> runs {runtime}'s (<code>--engine {engine}</code>), whose images "
            "agree with these within 1/255 per pixel.</p>")


def page(title: str, head: str, sections: list[str], script: str = "") -> str:
    """One self-contained HTML file."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>glassdiff: {html.escape(title)}</title>"
            f"<meta name='generator' content='glassdiff {__version__}'><style>{STYLE}</style></head><body>"
            f"{head}{''.join(sections)}<script>{script}</script></body></html>")


def forward_report(pipe, picture: Image.Image, cfg: SamplingConfig, strength: float) -> str:
    """`glassdiff explain --forward`: a page holding only the forward process."""
    title = "How a picture dissolves into noise"
    return page(title, f"<h1>{title}</h1>", [forward_section(pipe, picture, cfg, strength)])
