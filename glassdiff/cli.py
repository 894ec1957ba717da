"""glassdiff generate | explain | eval | bench | info | models | serve | train.

Building the parser imports no torch (options.py): `--help` and bad input answer at once, and each command imports
its heavy code when it runs. Exit codes: 0 success, 2 bad input (one line saying what and how to fix it),
130 interrupted, 1 anything else. No traceback for a user's mistake.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from . import __version__
from .config import BadInput, SamplingConfig, check_prompt, notice
from .options import (Parser, Picture, add_eval_args, add_model_args, add_picture_args, add_sampling_args,
                      asked_sampling, distinct_outputs, given_sampling, guarded, load_pipeline, model_path,
                      picture_inputs, read_picture_args, sampling_config, writable_output)

SLOW_SECONDS = 30  # a request estimated to take longer is announced before it starts


# ---------------- generate ----------------

@dataclasses.dataclass(frozen=True)
class Request:
    prompt: str
    cfg: SamplingConfig
    keep: int | None = None  # redrawing one image of a batch: the batch is drawn again and this one kept
    made_by: str | None = None  # the model hash an image's parameters name
    picture: Picture | None = None


def generate_request(args) -> Request:
    """The prompt and settings: from the command line, or from an image's parameters with the options given on top
    (as A1111's "send to txt2img" and then an edit: `--from-png a.png --steps 30` changes the steps alone)."""
    given = given_sampling(args)
    if not args.from_png:
        if args.prompt is None:
            raise BadInput("give a PROMPT (or --from-png FILE to redraw an image from its parameters)")
        picture = read_picture_args(args.init_image, args.strength, args.mask)
        return Request(check_prompt(args.prompt), asked_sampling(args, picture), picture=picture)
    from .png import params_from_png

    read = params_from_png(args.from_png)
    for note in read.notes:
        notice(f"{args.from_png}: {note}")
    params, keep = {**read.params, **given}, None
    if read.batch_size > 1 and not {"seed", "batch"} & given.keys():
        if not 0 <= read.batch_pos < read.batch_size:
            raise BadInput(f"{args.from_png}: Batch pos {read.batch_pos} is outside its batch of {read.batch_size}")
        # drawn in a batch: draw that batch again and keep this image (batched arithmetic can differ in the last bit)
        params.update(seed=params.get("seed", 0) - read.batch_pos, batch=read.batch_size)
        keep = read.batch_pos
    prompt = read.prompt if args.prompt is None else args.prompt
    if args.init_image:  # another picture, at the recorded strength unless --strength says
        recorded = read.picture.get("Denoising strength")
        strength = float(recorded) if args.strength is None and recorded is not None else args.strength
        picture = read_picture_args(args.init_image, strength, args.mask)
    else:
        picture = _picture_beside(args.from_png, read.picture, args.strength, args.mask)
    return Request(check_prompt(prompt), sampling_config(params), keep, read.model_hash, picture)


def _picture_beside(png: str, fields: dict, strength: float | None, mask: str | None) -> Picture | None:
    """The picture (and mask) an image's parameters name, found beside the image, hashes checked."""
    if "Init image" not in fields:
        if "Init image hash" in fields:
            raise BadInput(f"{png} was drawn from a picture sent to the server, which it does not name: give that "
                           f"picture as --init-image (and its mask as --mask)")
        return read_picture_args(None, strength, mask)
    import os

    from .forward import file_hash

    folder = os.path.dirname(os.path.abspath(png))
    paths = {key: os.path.join(folder, fields[key]) for key in ("Init image", "Mask") if key in fields}
    for key, path in paths.items():
        if not os.path.isfile(path):
            raise BadInput(f"{png} was drawn from the {key.lower()} {fields[key]}, which is not beside it: put it "
                           f"there, or give {'--init-image' if key == 'Init image' else '--mask'}")
        if fields.get(f"{key} hash") not in (None, file_hash(path)):
            notice(f"{path} is not the file {png} was drawn from (its hash differs): the image will differ")
    strength = float(fields.get("Denoising strength", 0.6)) if strength is None else strength
    return read_picture_args(paths["Init image"], strength, mask or paths.get("Mask"))


def cmd_generate(args):
    from .io import is_stream
    from .png import image_format, output_paths

    request = generate_request(args)
    cfg = request.cfg
    images = 1 if request.keep is not None else cfg.batch
    if args.output == "-" and images > 1:
        raise BadInput("-o - writes one image to standard output; give a file name for a batch (out.png: "
                       "out-0.png, out-1.png, ...)")
    paths = output_paths(writable_output(args.output), images)
    extra = [writable_output(args.trajectory)] if args.trajectory is not None else []
    for path in distinct_outputs(paths + extra):
        image_format(path)
    say = _say(to_stderr=any(is_stream(path) for path in paths + extra))
    model_path(args)
    pipe = load_pipeline(args)
    pipe.one_shot = True
    if request.made_by and request.made_by != pipe.model_hash:
        notice(f"{args.from_png} was drawn by the model with hash {request.made_by}; this one's is "
               f"{pipe.model_hash}, so the image will differ (--model chooses another)")
    height, width = pipe.size(cfg)
    seconds = pipe.image_seconds(cfg, height, width) * cfg.batch
    if seconds > SLOW_SECONDS:
        notice(f"{cfg.batch} image(s) of {width}x{height} in {cfg.steps} steps: about {_duration(seconds)} on two "
               f"cores (a rough estimate; the bar shows the pace); Ctrl-C stops, leaving only finished images")
    trace = _draw(pipe, request, paths, args, say, height, width)
    if args.trajectory:
        from .explain.strip import trajectory_strip
        from .png import save_png

        save_png(trajectory_strip(pipe, trace[0], image=trace[1]), args.trajectory, trace[2])
        say(f"wrote {args.trajectory}")


def _draw(pipe, request: Request, paths: list[str], args, say, height: int, width: int):
    """Draw and write the images, a large batch in chunks (the same seeds, images written as each chunk ends);
    returns the first chunk's trace, the kept image's place in it, and its parameters."""
    from .png import save_png
    from .sampling import ProgressBar

    cfg = request.cfg
    chunk = cfg.batch if request.keep is not None else pipe.chunk_size(cfg, height, width)
    bar = None if args.quiet else ProgressBar(total=cfg.steps * -(-cfg.batch // chunk))
    trace, picture_fields = None, _picture_fields(request.picture)  # the files hashed once, not per image
    try:
        for start in range(0, cfg.batch, chunk):
            part = dataclasses.replace(cfg, seed=cfg.seed + start, batch=min(chunk, cfg.batch - start))
            if bar and chunk < cfg.batch:
                bar.describe(f"images {start + 1}-{start + part.batch} of {cfg.batch}")
            result = pipe(request.prompt, part, trace=bool(args.trajectory) and start == 0,
                          observers=(bar,) if bar else (), **picture_inputs(request.picture))
            if start == 0:
                _say_layout(result, say)
                keep = request.keep or 0
                trace = (result.trace, keep, result.infotexts[keep])
            for k, (image, text) in enumerate(zip(result.images, result.infotexts)):
                if request.keep is None or k == request.keep:
                    path = paths[0 if request.keep is not None else start + k]
                    save_png(image, path, text + picture_fields)
                    say(f"wrote {path}")
    finally:
        if bar:
            bar.close()
    return trace


def _picture_fields(picture: Picture | None) -> str:
    """What a picture-started image's parameters add to the settings line: the strength, files and hashes."""
    if picture is None:
        return ""
    import os

    from .forward import file_hash, parameter_fields

    mask = picture.mask_path
    return ", " + parameter_fields(picture.strength, file_hash(picture.path), mask and file_hash(mask),
                                   os.path.basename(picture.path), mask and os.path.basename(mask))


def _say_layout(result, say):
    grounding = result.groundings[0]
    if grounding is not None and result.read_as[0] != grounding.prompt:
        say(f"read as {grounding.summary()}; --layout 0 draws your words as written")
    if result.plans[0]:
        regions = " | ".join(region.prompt for region in result.plans[0])
        first, last = result.config.layout_start + 1, result.config.layout_start + result.config.layout_steps
        say(f"layout: {regions} (steps {first}-{last} of {result.config.steps}; --layout 0 draws the prompt as it is)")


def _say(to_stderr: bool):
    """Status lines on stdout, or on stderr when an image goes to standard output or a stream."""
    return lambda line: print(line, file=sys.stderr if to_stderr else sys.stdout)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


# ---------------- info ----------------

def cmd_info(args):
    from .config import SAMPLERS

    pipe = load_pipeline(args)
    info = {**pipe.info(), "engine_generate": pipe.engine_in_use(one_shot=True)}  # generate's single call
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"model      {info['model']}  (hash {info['hash']})")
    te = info["text_encoder"]
    print(f"text       {te['kind']}: {te['params']:,} params, {te['max_tokens']} tokens x {te['dim']}")
    second = "; and a second for image-to-image below strength 1" if info["unet"]["img2img"] else ""
    print(f"unet       {info['unet']['params']:,} params, channels {info['unet']['blocks']}{second}")
    print(f"vae        {info['vae']['params']:,} params, factor {info['vae']['factor']}, "
          f"scaling {info['vae']['scaling_factor']:.4f}")
    print(f"image      {info['image'][0]}x{info['image'][1]}x3  ->  latent {'x'.join(map(str, info['latent']))}")
    print(f"schedule   {info['schedule']}, {info['prediction_type']}; samplers: {', '.join(SAMPLERS)}")
    print(f"engine     {info['engine']}, {info['engine_generate']} for generate (--engine openvino: OpenVINO, any "
          f"model; onnx: ONNX Runtime, glassdiff's models; torch: PyTorch, the reference)")


def cmd_models(args):
    from .models import list_models, models_dir

    entries = list_models(args.models)
    if args.json:
        print(json.dumps([dataclasses.asdict(entry) for entry in entries], indent=2))
        return
    print(f"models folder: {models_dir(args.models)}")
    print(f"{'name':<28}{'kind':<11}{'prediction':<14}{'size':>6}{'parameters':>14}{'on disk':>10}")
    for e in entries:
        size = f"{e.native}" if e.native else "?"
        print(f"{e.name:<28}{e.kind:<11}{e.prediction:<14}{size:>6}{e.params:>14,}{e.bytes / 2**20:>8.0f} MB")


# ---------------- bench, eval, explain, train: their modules own the details ----------------

def cmd_bench(args):
    if args.json:
        writable_output(args.json)
    from .bench import run_benchmarks, run_sd_benchmarks, run_student_benchmarks

    if args.student:
        run_student_benchmarks(args.student, json_out=args.json)
    elif args.sd:
        run_sd_benchmarks(json_out=args.json)
    else:
        run_benchmarks(json_out=args.json, quick=args.quick)


def cmd_serve(args):
    if not 0 < args.port < 65536:
        raise BadInput(f"--port must be between 1 and 65535, got {args.port}")
    if args.queue < 0:
        raise BadInput(f"--queue must be 0 or more, got {args.queue}")
    from .server import serve

    serve(args.host, args.port, args.models, args.outputs, args.queue, args.token, args.api_auth, args.max_seconds)


def cmd_eval(args):
    from .evaluate.cli import run_eval

    run_eval(args)


def cmd_explain(args):
    from .explain.cli import run_explain

    run_explain(args)


def build_parser() -> Parser:
    parser = Parser(prog="glassdiff", description="Text-to-image diffusion on a CPU, showing its work.")
    parser.add_argument("--version", action="version", version=f"glassdiff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="prompt -> image (PNG, JPEG or WebP, with its parameters)")
    g.add_argument("prompt", nargs="?")
    g.add_argument("-o", "--output", default="glassdiff.png",
                   help="image file (.png, .jpg, .webp), or - for standard output; a link is followed")
    add_sampling_args(g)
    g.add_argument("--batch", type=int, default=None, help="K images, seeds S..S+K-1 (drawn in chunks)")
    g.add_argument("--trajectory", default=None, help="also write the noise-to-image strip here")
    g.add_argument("--from-png", default=None,
                   help="redraw an image from its parameters (glassdiff's or A1111's); options given change them")
    add_picture_args(g)
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(fn=cmd_generate)

    e = sub.add_parser("explain", help="prompt -> self-contained HTML report of every step")
    e.add_argument("prompt", nargs="?")
    e.add_argument("-o", "--output", default="report.html")
    add_sampling_args(e)
    e.add_argument("--compare", default=None, help="a second prompt whose latent path is plotted beside")
    e.add_argument("--student", default=None, help="a student distilled from the model (glassdiff train distill): "
                                                   "its 1, 2 and 4 steps beside the model's run")
    e.add_argument("--gif", default=None, help="also write the denoising as an animated GIF")
    e.add_argument("--sweep-steps", type=int, default=None,
                   help="steps of the guidance sweep images (default: a fifth of --steps, at least 4)")
    add_picture_args(e)
    e.add_argument("--forward", default=None, metavar="PICTURE",
                   help="instead of a prompt: this picture diffused into noise, and where --strength starts")
    e.set_defaults(fn=cmd_explain)

    v = sub.add_parser("eval", help="GenEval-style prompt-fidelity benchmark")
    add_eval_args(v)
    v.set_defaults(fn=cmd_eval)

    b = sub.add_parser("bench", help="speed against diffusers on the same weights, same run; start-up times")
    b.add_argument("--json", default=None)
    b.add_argument("--quick", action="store_true", help="fewer repeats")
    b.add_argument("--sd", action="store_true", help="instead: SD 1.5's architecture with random weights (built once, "
                                                     "2 GB in the cache): seconds per guided step at 256 and 512 "
                                                     "pixels, and peak memory, against diffusers (about 10 minutes)")
    b.add_argument("--student", default=None, help="instead: a distilled student (glassdiff train distill) at 1, 2 "
                                                    "and 4 steps against its teacher, the default model, at its "
                                                    "default sampling")
    b.set_defaults(fn=cmd_bench)

    i = sub.add_parser("info", help="the model's blocks and sizes")
    add_model_args(i)
    i.add_argument("--json", action="store_true")
    i.set_defaults(fn=cmd_info)

    m = sub.add_parser("models", help="the models glassdiff can run: the embedded one and those in the models folder")
    m.add_argument("--models", default=None, help="the models folder (default: $GLASSDIFF_MODELS or "
                                                  "~/.local/share/glassdiff/models)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(fn=cmd_models)

    s = sub.add_parser("serve", help="a page to watch the model draw, live, and A1111's HTTP API (/sdapi/v1)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (another than loopback needs --token or "
                                                       "--api-auth)")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--models", default=None, help="the models folder offered in the picker (default: "
                                                  "$GLASSDIFF_MODELS or ~/.local/share/glassdiff/models)")
    s.add_argument("--outputs", default="outputs", help="where the history's PNGs are written (default: outputs)")
    s.add_argument("--queue", type=int, default=8, help="requests that may wait while one runs; more get 503")
    s.add_argument("--max-seconds", type=float, default=300.0,
                   help="refuse (422) a request estimated to take longer than this (default 300)")
    auth = s.add_mutually_exclusive_group()
    auth.add_argument("--token", default=None, help="every route but /healthz needs 'Authorization: Bearer T'")
    auth.add_argument("--api-auth", default=None, help="every route but /healthz needs HTTP Basic USER:PASS")
    s.set_defaults(fn=cmd_serve)

    # parsed by the training code's own parser when it runs (`glassdiff train --help` lists the stages)
    sub.add_parser("train", help="train the autoencoder or the denoiser (glassdiff train --help)", add_help=False)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["train"]:
            from .train.__main__ import main as train_main

            return train_main(argv[1:], prog="glassdiff train")
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exit_:  # usage errors: one line already printed, exit 2
            return int(exit_.code or 0)
        return guarded(lambda: args.fn(args))
    except KeyboardInterrupt:
        print("glassdiff: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
