"""`glassdiff explain PROMPT -o report.html [--compare PROMPT2] [--gif anim.gif]`."""

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


def run_explain(args):
    import dataclasses

    from ..config import check_prompt
    from ..options import distinct_outputs, given_sampling, load_pipeline, model_path, sampling_config, \
        writable_output

    if args.compare is not None:
        check_prompt(args.compare, "--compare prompt")
    check_prompt(args.prompt)
    params = dataclasses.asdict(sampling_config(given_sampling(args)))
    if args.sweep_steps is not None and not 1 <= args.sweep_steps <= params["steps"]:
        raise BadInput(f"--sweep-steps must be between 1 and --steps ({params['steps']}), got {args.sweep_steps}")
    params.pop("batch")
    distinct_outputs([writable_output(path) for path in (args.output, args.gif) if path is not None])
    model_path(args)
    from ..io import atomic_path
    from .report import build_report

    pipe = load_pipeline(args)
    t0 = time.perf_counter()
    page, result = build_report(pipe, args.prompt, params, compare=args.compare,
                                sweep_steps=args.sweep_steps)
    with atomic_path(args.output) as tmp:
        with open(tmp, "w") as f:
            f.write(page)
    print(f"wrote {args.output} ({len(page) / 1e6:.2f} MB, built in {time.perf_counter() - t0:.1f} s)")
    if args.gif:
        denoising_gif(pipe, result.trace, args.gif)
        print(f"wrote {args.gif}")
