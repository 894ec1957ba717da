"""`glassdiff explain PROMPT -o report.html [--compare PROMPT2] [--gif anim.gif] [--init-image PICTURE]
[--student FOLDER]`, and `glassdiff explain --forward PICTURE -o forward.html`."""

from __future__ import annotations

import time

from ..config import BadInput


def denoising_gif(pipe, records, path: str, scale: int = 4):
    """The decoded x0_pred of every step as an animation, holding on the final image."""
    import torch
    from PIL import Image

    from ..io import atomic_path

    frames = pipe.decode_latents(torch.cat([r.x0_pred[:1] for r in records])).numpy()
    images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in frames]
    try:
        with atomic_path(path) as tmp:
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=[150] * (len(images) - 1) + [1500], loop=0)
    except OSError as err:
        raise BadInput(f"cannot write {path}: {err.strerror or err}; choose another path") from err


def load_student(name: str, models: str | None):
    """A distilled student (--student: a folder or a name in the models folder), run on PyTorch as the report is."""
    from ..folders import model_sampling
    from ..models import resolve
    from ..pipeline import Pipeline

    path = resolve(name, models)
    if model_sampling(path).get("sampler") != "lcm":
        raise BadInput(f"student {name!r}: not a distilled student (its folder does not ask for the lcm sampler); "
                       f"give a folder written by glassdiff train distill")
    student = Pipeline.load(path)
    student.engine = "torch"
    return student


def run_explain(args):

    from ..config import check_prompt
    from ..options import (asked_sampling, distinct_outputs, load_pipeline, model_path, picture_inputs,
                           read_picture_args, writable_output)

    if args.forward is not None:
        return run_forward(args)
    if args.prompt is None:
        raise BadInput("give a PROMPT to explain (or --forward PICTURE to see a picture diffused into noise)")
    if args.compare is not None:
        check_prompt(args.compare, "--compare prompt")
    check_prompt(args.prompt)
    picture = read_picture_args(args.init_image, args.strength, args.mask)
    cfg = asked_sampling(args, picture)
    if args.sweep_steps is not None and not 1 <= args.sweep_steps <= cfg.steps:
        raise BadInput(f"--sweep-steps must be between 1 and --steps ({cfg.steps}), got {args.sweep_steps}")
    distinct_outputs([writable_output(path) for path in (args.output, args.gif) if path is not None])
    model_path(args)
    from .report import build_report

    student = load_student(args.student, args.models) if args.student else None
    pipe = load_pipeline(args)
    t0 = time.perf_counter()
    page, result = build_report(pipe, args.prompt, cfg, compare=args.compare, sweep_steps=args.sweep_steps,
                                picture=picture_inputs(picture), student=student)
    write_page(page, args.output, t0)
    if args.gif:
        denoising_gif(pipe, result.trace, args.gif)
        print(f"wrote {args.gif}")


def run_forward(args):
    """`glassdiff explain --forward PICTURE`: the forward process alone (no prompt, no model run)."""
    from ..options import asked_sampling, load_pipeline, model_path, read_picture_args, writable_output

    if args.prompt is not None or args.init_image is not None or args.mask is not None:
        raise BadInput("--forward shows a picture diffused, without a prompt: for an image-to-image report give "
                       "PROMPT --init-image PICTURE instead")
    picture = read_picture_args(args.forward, args.strength, None, what="--forward")
    cfg = asked_sampling(args, picture)
    writable_output(args.output)
    model_path(args)
    from .report import forward_report

    pipe = load_pipeline(args)
    t0 = time.perf_counter()
    write_page(forward_report(pipe, picture.image, cfg, picture.strength), args.output, t0)


def write_page(page: str, path: str, started: float):
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(page)
    print(f"wrote {path} ({len(page) / 1e6:.2f} MB, built in {time.perf_counter() - started:.1f} s)")
