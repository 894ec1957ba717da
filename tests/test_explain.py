"""The explainer report: content, size, and a real browser moving its slider."""

import os
import re
import shutil

import pytest

from glassdiff.cli import main
from glassdiff.config import SamplingConfig
from glassdiff.explain.report import build_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def report(tiny_pipe, tmp_path_factory):
    cfg = SamplingConfig(steps=6, guidance=4.0, seed=1, sampler="dpmpp_2m")
    page, result = build_report(tiny_pipe, "a red star in the top left", cfg, compare="a blue circle")
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(page)
    return path, page, result


def test_report_is_self_contained_and_has_every_section(report):
    _, page, _ = report
    for section in ("text", "steps", "words", "guidance", "decoder", "compare", "trajectory"):
        assert f'id="{section}"' in page
    assert "sentence understander" in page and "collage machine" in page and "color-by-numbers machine" in page
    assert not re.search(r"(src|href)=\"https?://", page)  # nothing loaded from the network
    assert "[CLS]" in page and "[PAD]" in page
    assert len(page) < 5_000_000
    assert 'id="layout"' not in page  # one object: nothing planned


@pytest.mark.parametrize("layout", [0.33, 0.0])
def test_report_shows_the_regions_of_a_planned_prompt(tiny_pipe, layout):
    cfg = SamplingConfig(steps=6, guidance=4.0, seed=1, sampler="dpmpp_2m", layout=layout)
    page, result = build_report(tiny_pipe, "a star left of a heart", cfg, sweep_steps=4)
    assert ('id="layout"' in page) == (layout > 0)
    assert ("<code>a medium star on the left</code>" in page and "<code>a medium heart on the right</code>" in page
            and "for 2 of 6 steps" in page) == (layout > 0)
    assert tiny_pipe("a star left of a heart", cfg).latents.equal(result.latents)


def test_report_says_why_a_lone_object_with_no_colour_was_planned(tiny_pipe):
    page, _ = build_report(tiny_pipe, "a star", SamplingConfig(steps=6, guidance=4.0, seed=1, sampler="dpmpp_2m"))
    assert "names one object and no colour" in page and "<code>a medium star in the center</code>" in page
    assert "that prompt steered the image instead" in page and "pieces pasted" not in page
    assert "names two objects" not in page


def test_report_final_image_is_the_generate_image(report, tiny_pipe):
    _, _, result = report
    plain = tiny_pipe("a red star in the top left", steps=6, guidance=4.0, seed=1)
    assert plain.latents.equal(result.latents)


@pytest.mark.slow
def test_slider_in_headless_chromium(report, tmp_path):
    from playwright.sync_api import sync_playwright

    path, _, _ = report
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(path.as_uri())
        label_before = page.inner_text("#step-label")
        image_before = page.get_attribute("#p-x0", "src")
        latent_before = page.get_attribute("#p-x_t", "src")
        page.fill("#step", "0")
        page.dispatch_event("#step", "input")
        assert page.inner_text("#step-label") != label_before
        assert page.inner_text("#step-label").startswith("step 1 of 6")
        assert page.get_attribute("#p-x0", "src") != image_before
        assert page.get_attribute("#p-x_t", "src") != latent_before
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("GLASSDIFF_ARTIFACTS"):
        shutil.copy(shot, os.path.join(os.environ["GLASSDIFF_ARTIFACTS"], "report.png"))


def test_explain_bad_input_exits_2(tiny_model_dir, tmp_path, capsys):
    cases = [
        (["explain", "a star", "-o", str(tmp_path / "missing" / "r.html"), "--model", tiny_model_dir],
         "does not exist"),
        (["explain", "a star", "-o", str(tmp_path / "r.html"), "--steps", "0", "--model", tiny_model_dir], "--steps"),
        (["explain", "a star", "-o", str(tmp_path / "r.html"), "--compare", " ", "--model", tiny_model_dir],
         "--compare"),
        (["explain", "a star", "-o", str(tmp_path / "r.html"), "--steps", "4", "--sweep-steps", "5",
          "--model", tiny_model_dir], "--sweep-steps"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
