"""`glassdiff eval`: generate (or read) images for a prompt file, judge them, report per task."""

from __future__ import annotations

import json
import os
import time

from PIL import Image

from ..config import BadInput
from .detect import detect
from .prompts import load_prompts
from .score import FAILURE_KINDS, TAGS, judge


VALIDATION_BLURS = (0.0, 0.7)  # crisp renders, and renders as soft as generated ones


def read_geneval_folder(folder: str) -> list[tuple[dict, list[Image.Image], list[str]]]:
    """[(spec, images, paths)] from <folder>/<index>/metadata.jsonl and samples/*.png."""
    from .score import validate_spec

    if not os.path.isdir(folder):
        raise BadInput(f"images folder {folder} does not exist")
    entries = sorted((d for d in os.listdir(folder) if d.isdigit()), key=int)
    if not entries:
        raise BadInput(f"{folder} has no numbered prompt folders (<index>/metadata.jsonl + samples/)")
    out = []
    for entry in entries:
        meta = os.path.join(folder, entry, "metadata.jsonl")
        try:
            with open(meta) as f:
                spec = validate_spec(json.loads(f.readline()), meta)
        except OSError as err:
            raise BadInput(f"{meta}: missing or unreadable ({err.strerror})") from err
        except ValueError as err:
            raise BadInput(f"{meta}: malformed JSON ({err})") from err
        samples = os.path.join(folder, entry, "samples")
        names = sorted(n for n in os.listdir(samples) if n.endswith(".png")) if os.path.isdir(samples) else []
        if not names:
            raise BadInput(f"{samples}: no images for prompt {entry} ({spec.get('prompt', '')!r})")
        images, paths = [], []
        for name in names:
            path = os.path.join(samples, name)
            try:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            except OSError as err:
                raise BadInput(f"{path}: not a readable image ({err})") from err
            paths.append(path)
        out.append((spec, images, paths))
    return out


def write_geneval_folder(folder: str, judged: list[tuple[dict, list[Image.Image], list[str]]]):
    for index, (spec, images, _) in enumerate(judged):
        samples = os.path.join(folder, f"{index:05d}", "samples")
        os.makedirs(samples, exist_ok=True)
        with open(os.path.join(folder, f"{index:05d}", "metadata.jsonl"), "w") as f:
            f.write(json.dumps(spec) + "\n")
        for k, image in enumerate(images):
            image.save(os.path.join(samples, f"{k:05d}.png"))


def generate_for(pipe, specs: list[dict], cfg, chunk: int = 16):
    """[(spec, images, [])] generated with seeds seed..seed+batch-1 for every prompt, several prompts per call."""
    import warnings

    from tqdm import tqdm

    from ..config import Notice

    out, reworded, unknown = [], 0, 0
    for i in tqdm(range(0, len(specs), chunk), desc="generating", dynamic_ncols=True):
        group = specs[i:i + chunk]
        with warnings.catch_warnings():  # one line for the whole set below, not one per prompt
            warnings.simplefilter("ignore", Notice)
            result = pipe([s["prompt"] for s in group], cfg)
        for j, spec in enumerate(group):
            out.append((spec, result.images[j * cfg.batch:(j + 1) * cfg.batch], []))
        reworded += sum(read != spec["prompt"] for read, spec in zip(result.read_as, group))
        unknown += sum(bool(g and g.unknown) for g in result.groundings)
    if reworded or unknown:
        print(f"grounding: {reworded} of {len(specs)} prompts read as the world's own wording; {unknown} hold words "
              f"this model's world has no meaning for (glassdiff generate names them)")
    return out


def score_all(judged) -> dict:
    """Per-task scores, the overall score (unweighted mean of tasks present), and every verdict."""
    t0 = time.time()
    verdicts = []
    for spec, images, _ in judged:
        for k, image in enumerate(images):
            verdicts.append((spec, k, image, judge(spec, detect(image))))
    elapsed = time.time() - t0
    by_tag: dict[str, list[bool]] = {}
    for spec, _, _, verdict in verdicts:
        by_tag.setdefault(spec.get("tag", "untagged"), []).append(verdict.passed)
    tasks = {tag: sum(v) / len(v) for tag, v in by_tag.items()}
    ordered = {t: tasks[t] for t in TAGS if t in tasks} | {t: s for t, s in tasks.items() if t not in TAGS}
    return {"tasks": ordered, "overall": sum(ordered.values()) / len(ordered), "images": len(verdicts),
            "counts": {t: len(v) for t, v in by_tag.items()}, "failures": failure_counts(verdicts),
            "judged_per_s": len(verdicts) / max(elapsed, 1e-9), "verdicts": verdicts}


def failure_counts(verdicts) -> dict[str, dict[str, int]]:
    """{task: {failure kind: failed images}}, kinds in FAILURE_KINDS order, only those that occur."""
    counts: dict[str, dict[str, int]] = {}
    for spec, _, _, verdict in verdicts:
        if not verdict.passed:
            task = counts.setdefault(spec.get("tag", "untagged"), dict.fromkeys(FAILURE_KINDS, 0))
            task[verdict.kind] += 1
    return {t: {k: n for k, n in kinds.items() if n} for t, kinds in counts.items()}


def print_table(name: str, report: dict):
    print(f"\n{name}: {report['images']} images")
    print(f"  {'task':<15}{'score':>7}{'images':>8}  failed because")
    for tag, score in report["tasks"].items():
        why = ", ".join(f"{kind} {n}" for kind, n in report["failures"].get(tag, {}).items())
        print(f"  {tag:<15}{score:7.3f}{report['counts'][tag]:8d}  {why}")
    print(f"  {'overall':<15}{report['overall']:7.3f}")


def contact_sheet(verdicts, path: str, n_fail: int = 40, n_pass: int = 24):
    from ..png import save_png
    from ..train.plots import labelled_grid

    fails = [v for v in verdicts if not v[3].passed][:n_fail]
    passes = [v for v in verdicts if v[3].passed][:n_pass]
    chosen = passes + fails
    if not chosen:
        return
    labels = [f"PASS {s['prompt']}" if v.passed else f"FAIL {s['prompt']}: {v.reason}" for s, _, _, v in chosen]
    sheet = labelled_grid([im for _, _, im, _ in chosen], labels, columns=8, scale=2, label_height=40)
    save_png(sheet, path, "glassdiff eval contact sheet: passes first, then failures with their reasons")


def run_eval(args):
    import dataclasses

    from ..options import asked_sampling, load_pipeline, writable_output
    from .validate import validate

    for path in (args.json, args.sheet):
        if path:
            writable_output(path)
    if args.images_per_prompt < 1:
        raise BadInput("--images-per-prompt must be at least 1")
    cfg = dataclasses.replace(asked_sampling(args), batch=args.images_per_prompt)
    if args.images:
        sets = {os.path.basename(os.path.normpath(args.images)): read_geneval_folder(args.images)}
        model_hash = None
    else:
        names = [args.prompts] if args.prompts else ["seen", "heldout"]
        prompt_sets = {os.path.splitext(os.path.basename(n))[0]: load_prompts(n) for n in names}
        pipe = load_pipeline(args)
        model_hash = pipe.model_hash
        sets = {name: generate_for(pipe, specs, cfg) for name, specs in prompt_sets.items()}
        if args.save_images:
            for name, judged in sets.items():
                write_geneval_folder(os.path.join(args.save_images, name), judged)
    reports = {name: score_all(judged) for name, judged in sets.items()}
    for name, report in reports.items():
        print_table(name, report)
    detector = [validate(args.validate, blur=blur) for blur in VALIDATION_BLURS] if args.validate else None
    for check in detector or []:
        print(f"\ndetector validation on {check['renders']} fresh renders (blur {check['blur']}):",
              ", ".join(f"{k} {v:.4f}" for k, v in check["accuracy"].items()))
    if args.sheet:
        contact_sheet([v for r in reports.values() for v in r["verdicts"]], args.sheet)
        print(f"wrote {args.sheet}")
    if args.json:
        from ..io import atomic_path

        payload = {"model_hash": model_hash, "images_per_prompt": args.images_per_prompt,
                   "sampling": dataclasses.asdict(cfg),
                   "sets": {n: {k: v for k, v in r.items() if k != "verdicts"} for n, r in reports.items()},
                   "detector_validation": detector}
        with atomic_path(args.json) as tmp:
            with open(tmp, "w") as f:
                json.dump(payload, f, indent=2)
        print(f"wrote {args.json}")
