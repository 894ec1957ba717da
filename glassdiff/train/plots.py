"""Pictures of a training run: loss curves (overall and by noise level), sample sheets."""

from __future__ import annotations

import json
import os

from PIL import Image, ImageDraw

from ..io import atomic_path


def read_log(log_path: str) -> list[dict]:
    """The log's rows, one a step: a run resumed from a checkpoint logs again the steps after it, and those win."""
    with open(log_path) as f:
        logged = [json.loads(line) for line in f if line.strip()]
    return sorted({r["step"]: r for r in logged}.values(), key=lambda r: r["step"])


def plot_losses(log_path: str, out_png: str, ylabel: str = "v-prediction loss (as trained)"):
    """Loss against step (smoothed), and loss by noise level at a few points of the run where the log has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    steps = [r["step"] for r in rows]
    losses = [r["loss"] for r in rows]
    smooth, acc = [], None
    for value in losses:
        acc = value if acc is None else 0.98 * acc + 0.02 * value
        smooth.append(acc)
    by_noise = [r for r in rows if "loss_by_noise" in r]
    fig, axes = plt.subplots(1, 2 if by_noise else 1, figsize=(10 if by_noise else 5.5, 3.6), squeeze=False)
    left = axes[0][0]
    left.plot(steps, losses, color="#bbb", lw=0.5, label="per step")
    left.plot(steps, smooth, color="#c33", lw=1.5, label="smoothed")
    left.set(xlabel="step", ylabel=ylabel, yscale="log", title="training loss")
    left.legend()
    if by_noise:
        right = axes[0][1]
        for r in by_noise[:: max(1, len(by_noise) // 5)] + by_noise[-1:]:
            n = len(r["loss_by_noise"])
            right.plot([(i + 0.5) / n * 1000 for i in range(n)], r["loss_by_noise"], marker=".",
                       label=f"step {r['step']}")
        right.set(xlabel="timestep t (noise grows to the right)", ylabel="loss", yscale="log",
                  title="loss by noise level")
        right.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def labelled_grid(images: list[Image.Image], labels: list[str], columns: int, scale: int = 2,
                  label_height: int = 28) -> Image.Image:
    """Images in a grid, each with its label (wrapped to two lines) underneath."""
    w, h = images[0].width * scale, images[0].height * scale
    cell_w = max(w, 150)
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (cell_w + 6), rows * (h + label_height + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, label) in enumerate(zip(images, labels)):
        x, y = (i % columns) * (cell_w + 6) + 3, (i // columns) * (h + label_height + 6) + 3
        sheet.paste(image.resize((w, h), Image.NEAREST), (x + (cell_w - w) // 2, y))
        draw.multiline_text((x, y + h + 2), _wrap(label, cell_w // 6), fill=(30, 30, 30), spacing=1)
    return sheet


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines[:2])


def sample_sheet(pipe, prompts, out_png: str, seed: int = 0, **params):
    images = [pipe(p, seed=seed, **params).image for p in prompts]
    os.makedirs(os.path.dirname(out_png), exist_ok=True)
    with atomic_path(out_png) as tmp:
        labelled_grid(images, list(prompts), columns=4).save(tmp, format="PNG")
