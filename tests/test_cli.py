"""The command line: generate, --from-png, info, and every bad-input case (exit 2, one line, no file)."""

import json

import pytest
from PIL import Image

from glassdiff.cli import main


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_writes_png_with_parameters_and_regenerates_from_it(tiny_model_dir, tmp_path, capsys):
    first = tmp_path / "a.png"
    code, out, _ = run(["generate", "a red circle", "-o", str(first), "--model", tiny_model_dir, "--steps", "3",
                        "--seed", "5", "--sampler", "euler", "--guidance", "2.5", "--negative", "blue", "-q",
                        "--trajectory", str(tmp_path / "strip.png")], capsys)
    assert code == 0 and "wrote" in out
    params = Image.open(first).info["parameters"]
    assert params.splitlines()[0] == "a red circle"
    assert "Negative prompt: blue" in params
    assert "Steps: 3, Sampler: euler, CFG scale: 2.5, Seed: 5, Size: 16x16" in params
    again = tmp_path / "b.png"
    code, _, _ = run(["generate", "--from-png", str(first), "-o", str(again), "--model", tiny_model_dir, "-q"], capsys)
    assert code == 0
    assert Image.open(first).tobytes() == Image.open(again).tobytes()
    strip = Image.open(tmp_path / "strip.png")
    assert strip.width > 4 * strip.height


def test_layout_share_travels_in_the_png_and_regenerates_the_same_image(tiny_model_dir, tmp_path, capsys):
    paths = [tmp_path / f"{name}.png" for name in ("half", "again", "none")]
    common = ["--model", tiny_model_dir, "--steps", "4", "-q"]
    code, out, _ = run(["generate", "a star above a heart", "-o", str(paths[0]), "--layout", "0.5", *common], capsys)
    assert code == 0
    assert "layout: a medium star at the top | a medium heart at the bottom (steps 2-3 of 4;" in out
    assert "Layout: 0.5," in Image.open(paths[0]).info["parameters"]
    assert run(["generate", "--from-png", str(paths[0]), "-o", str(paths[1]), *common], capsys)[0] == 0
    assert run(["generate", "a star above a heart", "-o", str(paths[2]), "--layout", "0", *common], capsys)[0] == 0
    assert Image.open(paths[0]).tobytes() == Image.open(paths[1]).tobytes()
    assert Image.open(paths[0]).tobytes() != Image.open(paths[2]).tobytes()


def test_generate_batch_writes_one_file_per_seed(tiny_model_dir, tmp_path, capsys):
    code, _, _ = run(["generate", "two stars", "-o", str(tmp_path / "s.png"), "--batch", "3", "--steps", "2",
                      "--model", tiny_model_dir, "-q"], capsys)
    assert code == 0
    seeds = [Image.open(tmp_path / f"s-{k}.png").info["parameters"].split("Seed: ")[1].split(",")[0] for k in range(3)]
    assert seeds == ["0", "1", "2"]


def test_info_reports_blocks(tiny_model_dir, capsys, monkeypatch):
    code, out, _ = run(["info", "--model", tiny_model_dir, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["latent"] == [8, 8, 8] and info["image"] == [16, 16, 3]
    assert info["unet"]["params"] > 0 and info["text_encoder"]["kind"] == "minilm"
    assert info["engine"] == "torch"  # the tests' environment asks for the reference
    code, out, _ = run(["info", "--model", tiny_model_dir, "--json", "--engine", "onnx"], capsys)
    assert json.loads(out)["engine"] == "onnx"
    monkeypatch.delenv("GLASSDIFF_ENGINE", raising=False)
    code, out, _ = run(["info", "--model", tiny_model_dir, "--json"], capsys)
    assert (json.loads(out)["engine"], json.loads(out)["engine_generate"]) == ("openvino", "onnx")


@pytest.mark.parametrize("extra, message", [
    (["--sampler", "nope"], "unknown sampler"),
    (["--steps", "0"], "--steps must be between 1 and 1000"),
    (["--steps", "1001"], "--steps must be between 1 and 1000"),
    (["--guidance", "nan"], "--guidance must be a finite number"),
    (["--guidance", "inf"], "--guidance must be a finite number"),
    (["--width", "17"], "not a positive multiple of 2"),
    (["--width", "4096", "--height", "4096"], "too large"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--layout", "1.5"], "--layout must be a share of the steps between 0 and 1"),
    (["--layout", "nan"], "--layout must be a share of the steps between 0 and 1"),
])
def test_generate_bad_sampling_input(tiny_model_dir, tmp_path, capsys, extra, message):
    code, _, err = run(["generate", "a star", "-o", str(tmp_path / "x.png"), "--model", tiny_model_dir, "-q", *extra],
                       capsys)
    assert code == 2 and message in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_generate_bad_model_and_output(tiny_model_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    missing = tmp_path / "missing"
    shutil.copytree(tiny_model_dir, missing)
    (missing / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    out = tmp_path / "out"
    out.mkdir()
    cases = [
        (["--model", str(tmp_path / "nowhere")], "does not exist"),
        (["--model", str(tmp_path)], "model_index.json"),
        (["--model", str(broken)], "cannot load model"),
        (["--model", str(missing)], "cannot load model"),
        (["--model", tiny_model_dir, "-o", str(tmp_path / "no" / "dir" / "x.png")], "does not exist"),
        (["--model", tiny_model_dir, "-o", str(out)], "is a folder"),
    ]
    for extra, message in cases:
        argv = ["generate", "a star", "-q"] + (extra if "-o" in extra else extra + ["-o", str(out / "x.png")])
        code, _, err = run(argv, capsys)
        assert code == 2 and message in err, (extra, err)
        assert "Traceback" not in err and err.count("\n") == 1
    assert not list(out.iterdir())


def test_unwritable_output_folder(tiny_model_dir, tmp_path, capsys):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: write to a path under a file instead
            target = tmp_path / "file.txt"
            target.write_text("x")
            path, message = str(target / "x.png"), "does not exist"
        else:
            path, message = str(locked / "x.png"), "not writable"
        code, _, err = run(["generate", "a star", "-q", "--model", tiny_model_dir, "-o", path], capsys)
        assert code == 2 and message in err
    finally:
        locked.chmod(0o700)


def test_from_png_without_parameters(tmp_path, capsys):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    code, _, err = run(["generate", "--from-png", str(plain), "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and "has no generation parameters" in err
