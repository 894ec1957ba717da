"""Distillation (train/distill.py): a student of a teacher folder, resumable, sampled by the lcm sampler in one UNet
pass a step."""

import json
import os
import subprocess
import sys

import pytest
import torch

from glassdiff.config import BadInput
from glassdiff.train.distill import DistillTrainConfig, boundary, train_distill

TINY = dict(batch=4, captions=12, scenes_per_caption=1, checkpoint_every=2, sample_every=10_000, seed=1)


def test_a_stopped_and_resumed_distillation_ends_where_an_uninterrupted_one_ends(tiny_model_dir, tmp_path, one_thread):
    whole = train_distill(DistillTrainConfig(out=str(tmp_path / "whole"), teacher=tiny_model_dir, steps=4, **TINY))
    parts = DistillTrainConfig(out=str(tmp_path / "parts"), teacher=tiny_model_dir, steps=4, stop_after=2, **TINY)
    train_distill(parts)
    resumed = train_distill(DistillTrainConfig(**{**parts.__dict__, "stop_after": 0, "resume": True}))
    assert resumed["weights_digest"] == whole["weights_digest"]
    with open(tmp_path / "whole" / "model" / "training.json") as f:
        record = json.load(f)
    assert record["distill_steps"] == 4 and record["sampling"] == {"sampler": "lcm", "steps": 4, "guidance": 1.0,
                                                                       "layout": 1.0}
    from glassdiff.pipeline import Pipeline

    assert record["distilled_from"] == Pipeline.load(tiny_model_dir).model_hash  # the teacher's, not the student's
    assert os.path.exists(tmp_path / "whole" / "loss.png")


@pytest.mark.slow
def test_two_process_ddp_distillation_ends_where_one_process_ends(tiny_model_dir, tmp_path, one_thread):
    out, fast = str(tmp_path / "ddp"), {**TINY, "lr": 1e-3, "warmup": 1}  # steps that move the weights well past atol
    args = ["--out", out, "--teacher", tiny_model_dir, "--steps", "3"] + [f"--{k.replace('_', '-')}={v}"
                                                                          for k, v in fast.items()]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29519", "-m", "glassdiff.train", "distill", *args],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in results) == [0, 1] and all(r["world_size"] == 2 for r in results)
    assert results[0]["weights_digest"] == results[1]["weights_digest"]
    one = train_distill(DistillTrainConfig(out=str(tmp_path / "one"), teacher=tiny_model_dir, steps=3, **fast))
    assert one["world_size"] == 1
    from diffusers import UNet2DConditionModel

    ddp_unet, one_unet, teacher_unet = (UNet2DConditionModel.from_pretrained(folder, subfolder="unet") for folder in
                                        (os.path.join(out, "model"), str(tmp_path / "one" / "model"), tiny_model_dir))
    moved = max((a - b).abs().max().item() for a, b in zip(one_unet.parameters(), teacher_unet.parameters()))
    assert moved > 1e-3
    for (name, ddp_weight), one_weight in zip(ddp_unet.state_dict().items(), one_unet.state_dict().values()):
        # Adam turns float-order noise in a near-zero gradient into a step-sized difference: a tenth of the step
        torch.testing.assert_close(ddp_weight, one_weight, atol=1e-4, rtol=1e-3,
                                   msg=lambda detail, name=name: f"{name}: {detail}")


def test_the_student_draws_in_one_unet_pass_a_step_with_the_lcm_sampler(tiny_model_dir, tmp_path):
    from glassdiff.pipeline import Pipeline

    train_distill(DistillTrainConfig(out=str(tmp_path / "d"), teacher=tiny_model_dir, steps=2, **TINY))
    student = Pipeline.load(str(tmp_path / "d" / "model"))
    student.engine = "torch"
    calls = []
    real = student.unet.forward
    student.unet.forward = lambda x, *a, **k: calls.append(len(x)) or real(x, *a, **k)
    for steps in (1, 4):
        calls.clear()
        result = student("a red star", seed=0, steps=steps, sampler="lcm", guidance=1.0, layout=0.0, trace=True)
        assert calls == [1] * steps  # one image, one pass a step: no guided pair
        assert len(result.trace) == steps and all(r.eps_uncond is None for r in result.trace)
    torch.testing.assert_close(result.trace[-1].x0_pred, result.latents, atol=1e-3, rtol=1e-3)


def test_the_boundary_condition_keeps_x_at_time_zero_and_predicts_x0_elsewhere():
    c_skip, c_out = boundary(torch.tensor([0, 19, 999]))
    assert c_skip[0].item() == 1.0 and c_out[0].item() == 0.0
    assert c_out[1].item() > 0.999 and c_skip[2].item() < 1e-6


def test_a_missing_teacher_or_an_impossible_anneal_is_one_line(tiny_model_dir, tmp_path):
    with pytest.raises(BadInput, match="no such model folder"):
        train_distill(DistillTrainConfig(out=str(tmp_path / "d"), teacher=str(tmp_path / "nothing"), steps=1))
    for anneal, anneal_to in ((5, 0.1), (-1, 0.1), (2, 0.0)):
        with pytest.raises(BadInput, match="--anneal"):
            train_distill(DistillTrainConfig(out=str(tmp_path / "d"), teacher=tiny_model_dir, steps=4, anneal=anneal,
                                             anneal_to=anneal_to))


def test_the_student_folder_asks_for_its_own_sampling_and_options_given_win(tiny_model_dir, tmp_path, monkeypatch):
    from PIL import Image

    from glassdiff.cli import main
    from glassdiff.pipeline import Pipeline

    train_distill(DistillTrainConfig(out=str(tmp_path / "d"), teacher=tiny_model_dir, steps=1, **TINY))
    student = str(tmp_path / "d" / "model")
    assert Pipeline.load(student)("a star", seed=0).config.sampler == "lcm"
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "a red star", "--model", student, "-o", "own.png", "-q"]) == 0
    assert main(["generate", "a red star", "--model", student, "--steps", "2", "-o", "two.png", "-q"]) == 0
    assert "Steps: 4, Sampler: lcm, CFG scale: 1.0" in Image.open("own.png").info["parameters"]
    assert "Steps: 2, Sampler: lcm, CFG scale: 1.0" in Image.open("two.png").info["parameters"]
    assert Pipeline.load(tiny_model_dir)("a star", seed=0, steps=2).config.sampler == "dpmpp_2m"


def test_the_report_shows_the_teacher_beside_its_student(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from glassdiff.cli import main

    train_distill(DistillTrainConfig(out=str(tmp_path / "d"), teacher=tiny_model_dir, steps=1, **TINY))
    monkeypatch.chdir(tmp_path)
    common = ["explain", "a red star left of a blue heart", "--model", tiny_model_dir, "--steps", "6"]
    assert main([*common, "--student", str(tmp_path / "d" / "model"), "-o", "report.html"]) == 0
    page = (tmp_path / "report.html").read_text()
    student = page[page.index('<section id="student">'):]
    assert student.count("<img") == 4 and "the student, 4 steps (lcm, one UNet pass each)" in student
    assert main([*common, "--student", tiny_model_dir, "-o", "no.html"]) == 2
    assert "not a distilled student" in capsys.readouterr().err and not (tmp_path / "no.html").exists()


def test_the_bench_times_the_student_beside_its_teacher(tiny_model_dir, tmp_path):
    from glassdiff.bench import run_student_benchmarks

    train_distill(DistillTrainConfig(out=str(tmp_path / "d"), teacher=tiny_model_dir, steps=1, **TINY))
    rows = run_student_benchmarks(str(tmp_path / "d" / "model"), json_out=str(tmp_path / "b.json"), repeats=1)
    assert [r["name"] for r in rows] == ["one image, teacher, 15 steps", "one image, student, 1 step",
                                         "one image, student, 2 steps", "one image, student, 4 steps"]
    assert rows[0]["share_of_teacher"] == 1.0 and all(r["seconds"] > 0 for r in rows)
    assert json.loads((tmp_path / "b.json").read_text())[3]["name"].endswith("4 steps")


def test_eval_scores_a_student_with_its_own_sampling(tiny_model_dir, tmp_path, monkeypatch):
    from glassdiff.cli import main

    train_distill(DistillTrainConfig(out=str(tmp_path / "d"), teacher=tiny_model_dir, steps=1, **TINY))
    prompts = tmp_path / "two.jsonl"
    prompts.write_text('{"tag": "single_object", "include": [{"class": "star", "count": 1}], "prompt": "a star"}\n'
                       '{"tag": "colors", "include": [{"class": "heart", "count": 1, "color": "red"}], '
                       '"prompt": "a red heart"}\n')
    common = ["eval", "--model", str(tmp_path / "d" / "model"), "--prompts", str(prompts), "--validate", "0"]
    assert main([*common, "--json", str(tmp_path / "own.json")]) == 0
    assert main([*common, "--steps", "2", "--json", str(tmp_path / "two.json")]) == 0
    own, two = (json.loads((tmp_path / name).read_text())["sampling"] for name in ("own.json", "two.json"))
    assert (own["sampler"], own["steps"], own["guidance"], own["layout"]) == ("lcm", 4, 1.0, 1.0)
    assert (two["sampler"], two["steps"]) == ("lcm", 2)


def test_a_student_shipped_inside_its_teacher_outlives_the_teachers_next_ship_and_is_named_default_fast(
        tiny_model_dir, tmp_path, monkeypatch):
    from glassdiff import models
    from glassdiff.pipeline import Pipeline
    from glassdiff.train.ship import ship

    teacher = str(tmp_path / "weights")
    ship(tiny_model_dir, teacher)
    train_distill(DistillTrainConfig(out=str(tmp_path / "d"), teacher=teacher, steps=1, **TINY))
    ship(str(tmp_path / "d" / "model"), os.path.join(teacher, "fast"))
    (tmp_path / "weights" / "fast" / "MODEL_CARD.md").write_text("the student's card")
    ship(tiny_model_dir, teacher)  # the teacher again: its folder is written anew
    assert (tmp_path / "weights" / "fast" / "MODEL_CARD.md").read_text() == "the student's card"
    monkeypatch.setattr(models, "embedded_dir", lambda: teacher)
    assert [e.name for e in models.list_models(str(tmp_path / "no-models"))] == ["default", "default-fast"]
    assert models.resolve("default-fast") == os.path.join(teacher, "fast")
    assert Pipeline.load(models.resolve("default-fast")).sampling == {"sampler": "lcm", "steps": 4, "guidance": 1.0,
                                                                      "layout": 1.0}
