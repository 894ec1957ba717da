"""`python -m glassdiff.world [N] [--sheet out.png]`: draw N training scenes, report scenes/s, show a sheet."""

import argparse
import random
import time

from . import HELDOUT_COLOR_SHAPE, render, sample_spec, scene_from_spec


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m glassdiff.world")
    parser.add_argument("n", type=int, nargs="?", default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--sheet", default=None, help="write the first 32 scenes with their captions")
    args = parser.parse_args(argv)
    rng = random.Random(0)
    t0 = time.perf_counter()
    drawn = []
    for _ in range(args.n):
        spec = sample_spec(rng)
        drawn.append((render(scene_from_spec(spec, rng, banned_pairs=HELDOUT_COLOR_SHAPE), args.size), spec["prompt"]))
    elapsed = time.perf_counter() - t0
    print(f"{args.n} scenes (spec, caption, placement, {args.size}px render) in {elapsed:.2f} s: "
          f"{args.n / elapsed:.0f} scenes/s")
    if args.sheet:
        from ..train.plots import labelled_grid

        labelled_grid([d[0] for d in drawn[:32]], [d[1] for d in drawn[:32]], columns=8).save(args.sheet)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
