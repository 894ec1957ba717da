"""glassdiff generate | explain | eval | bench | info | train.

Exit codes: 0 success, 2 bad input (one line saying what and how to fix it),
1 anything else. No traceback for a user's mistake.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from .config import SAMPLERS, BadInput, SamplingConfig


def guarded(fn) -> int:
    """Run fn; a BadInput becomes one line on stderr and exit code 2."""
    try:
        fn()
        return 0
    except BadInput as err:
        print(f"glassdiff: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("glassdiff: interrupted", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the last line of defence
        if os.environ.get("GLASSDIFF_DEBUG"):
            raise
        print(f"glassdiff: error: {type(err).__name__}: {err} (set GLASSDIFF_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


def writable_output(path: str) -> str:
    """Refuse an output path that cannot be written, before any work is done."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise BadInput(f"output {path} is a folder; give a file name such as {os.path.join(path, 'out.png')}")
    if not os.path.isdir(folder):
        raise BadInput(f"cannot write {path}: folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK):
        raise BadInput(f"cannot write {path}: folder {folder} is not writable; choose another path")
    return path


def load_pipeline(model: str | None):
    from .pipeline import Pipeline

    return Pipeline.load(model) if model else Pipeline.default()


def add_sampling_args(p: argparse.ArgumentParser):
    default = SamplingConfig()
    p.add_argument("--steps", type=int, default=default.steps)
    p.add_argument("--guidance", type=float, default=default.guidance, help="classifier-free guidance scale")
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument("--sampler", default=default.sampler, help=", ".join(SAMPLERS))
    p.add_argument("--negative", default="", help="negative prompt (the unconditional side of guidance)")
    add_layout_arg(p)
    p.add_argument("--model", default=None, help="a model folder (default: the embedded model)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)


def add_layout_arg(p: argparse.ArgumentParser):
    p.add_argument("--layout", type=float, default=SamplingConfig().layout,
                   help="share of the steps that draw each object of a two-object prompt, or each copy of a "
                        "counted one, in a part of the canvas of its own (\"a star left of a heart\": the star's "
                        "prompt on the left half; \"three stars\": one star per part; \"a star\": a medium star in "
                        "the centre of the whole canvas); 0 turns it off")


def sampling_params(args) -> dict:
    params = dict(steps=args.steps, guidance=args.guidance, seed=args.seed, sampler=args.sampler,
                  negative=args.negative, layout=args.layout, width=args.width, height=args.height,
                  batch=getattr(args, "batch", 1))
    SamplingConfig(**params)  # validate before anything loads
    return params


# ---------------- generate ----------------

def cmd_generate(args):
    from .png import output_paths, params_from_png, save_png

    if args.from_png:
        prompt, params = params_from_png(args.from_png)
        params["batch"] = args.batch
    else:
        if not args.prompt:
            raise BadInput("give a PROMPT (or --from-png FILE to regenerate an image)")
        prompt, params = args.prompt, sampling_params(args)
    paths = output_paths(writable_output(args.output), params["batch"])
    if args.trajectory:
        writable_output(args.trajectory)
    pipe = load_pipeline(args.model)
    result = pipe(prompt, trace=bool(args.trajectory), progress=not args.quiet, **params)
    if result.layouts[0]:
        regions = " | ".join(region.prompt for region in result.layouts[0])
        first, last = result.params.layout_start + 1, result.params.layout_start + result.params.layout_steps
        print(f"layout: {regions} (steps {first}-{last} of {result.params.steps}; "
              f"--layout 0 draws the prompt as it is)")
    for image, text, path in zip(result.images, result.infotexts, paths):
        save_png(image, path, text)
        print(f"wrote {path}")
    if args.trajectory:
        from .explain.strip import trajectory_strip

        save_png(trajectory_strip(pipe, result.trace), args.trajectory, result.infotexts[0])
        print(f"wrote {args.trajectory}")


# ---------------- info ----------------

def cmd_info(args):
    info = load_pipeline(args.model).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"model      {info['model']}  (hash {info['hash']})")
    te = info["text_encoder"]
    print(f"text       {te['kind']}: {te['params']:,} params, {te['max_tokens']} tokens x {te['dim']}")
    print(f"unet       {info['unet']['params']:,} params, channels {info['unet']['blocks']}")
    print(f"vae        {info['vae']['params']:,} params, factor {info['vae']['factor']}, "
          f"scaling {info['vae']['scaling_factor']:.4f}")
    print(f"image      {info['image'][0]}x{info['image'][1]}x3  ->  latent {'x'.join(map(str, info['latent']))}")
    print(f"schedule   {info['schedule']}, {info['prediction_type']}; samplers: {', '.join(SAMPLERS)}")


# ---------------- bench, eval, explain: their modules own the details ----------------

def cmd_bench(args):
    from .bench import run_benchmarks

    run_benchmarks(json_out=args.json and writable_output(args.json), quick=args.quick)


def cmd_eval(args):
    from .evaluate.cli import run_eval

    run_eval(args)


def cmd_explain(args):
    from .explain.cli import run_explain

    run_explain(args)


def cmd_train(args):
    from .train.__main__ import run

    print(json.dumps(run(args), indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glassdiff", description="Text-to-image diffusion on a CPU, showing its work.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="prompt -> PNG")
    g.add_argument("prompt", nargs="?")
    g.add_argument("-o", "--output", default="glassdiff.png")
    add_sampling_args(g)
    g.add_argument("--batch", type=int, default=1, help="K images, seeds S..S+K-1")
    g.add_argument("--trajectory", default=None, help="also write the noise-to-image strip here")
    g.add_argument("--from-png", default=None, help="regenerate from a PNG's parameters")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(fn=cmd_generate)

    e = sub.add_parser("explain", help="prompt -> self-contained HTML report of every step")
    e.add_argument("prompt")
    e.add_argument("-o", "--output", default="report.html")
    add_sampling_args(e)
    e.add_argument("--compare", default=None, help="a second prompt whose latent path is plotted beside")
    e.add_argument("--gif", default=None, help="also write the denoising as an animated GIF")
    e.add_argument("--sweep-steps", type=int, default=None,
                   help="steps of the guidance sweep images (default: a fifth of --steps, at least 4)")
    e.set_defaults(fn=cmd_explain)

    v = sub.add_parser("eval", help="GenEval-style prompt-fidelity benchmark")
    from .evaluate.cli import add_eval_args

    add_eval_args(v)
    v.set_defaults(fn=cmd_eval)

    b = sub.add_parser("bench", help="speed against diffusers on the same weights, same run")
    b.add_argument("--json", default=None)
    b.add_argument("--quick", action="store_true", help="fewer repeats")
    b.set_defaults(fn=cmd_bench)

    i = sub.add_parser("info", help="the model's blocks and sizes")
    i.add_argument("--model", default=None)
    i.add_argument("--json", action="store_true")
    i.set_defaults(fn=cmd_info)

    from .train.__main__ import build_parser as train_parser

    t = sub.add_parser("train", help="train the autoencoder or the denoiser")
    train_parser(t)
    t.set_defaults(fn=cmd_train)
    return parser


def main(argv=None) -> int:
    warnings.simplefilter("ignore", FutureWarning)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse's own usage errors already exit 2 with one message
        return int(exit_.code or 0)
    return guarded(lambda: args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
