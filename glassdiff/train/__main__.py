"""`python -m glassdiff.train STAGE [--option value ...]`, also under torchrun."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing


def _stages():
    from .autoencoder import AutoencoderTrainConfig, train_autoencoder
    from .denoiser import DenoiserTrainConfig, train_denoiser
    from .distill import DistillTrainConfig, train_distill

    return {"autoencoder": (AutoencoderTrainConfig, train_autoencoder),
            "denoiser": (DenoiserTrainConfig, train_denoiser), "distill": (DistillTrainConfig, train_distill)}


def _add_fields(parser: argparse.ArgumentParser, cls):
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
            parser.add_argument(flag, type=base, default=field.default, help=f"default {field.default}")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="glassdiff train")
    sub = parser.add_subparsers(dest="stage", required=True)
    for name, (cls, _fn) in _stages().items():
        _add_fields(sub.add_parser(name, help=f"train the {name}"), cls)
    return parser


def run(args: argparse.Namespace) -> dict:
    cls, fn = _stages()[args.stage]
    cfg = cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
    return fn(cfg)


def main(argv=None, prog: str = "python -m glassdiff.train") -> int:
    from ..options import Parser, guarded

    try:
        args = build_parser(Parser(prog=prog)).parse_args(argv)
    except SystemExit as exit_:  # argparse's usage errors: one message, exit 2
        return int(exit_.code or 0)
    return guarded(lambda: print(json.dumps(run(args))))  # one line per rank under torchrun


if __name__ == "__main__":
    sys.exit(main())
