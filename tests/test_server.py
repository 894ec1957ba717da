"""glassdiff serve, as users meet it: a real uvicorn on a loopback port, the webuiapi client from PyPI, Debian's
Chromium driven by Playwright, schemathesis over the OpenAPI schema, and a bounded load test. Nothing mocked."""

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from glassdiff.cli import main

GLASSDIFF = os.path.join(os.path.dirname(sys.executable), "glassdiff")
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp_path, *extra):
        self.port, self.outputs = free_port(), tmp_path / "outputs"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([GLASSDIFF, "serve", "--port", str(self.port), "--outputs", str(self.outputs),
                                         *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not start: {self.process.stdout.read()}")

    def rss(self, field: str = "VmRSS") -> int:
        """kB of resident memory (VmHWM: the peak so far)."""
        with open(f"/proc/{self.process.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_model_dir):
    """The tiny model, and a student distilled from it in one step ("tiny-fast")."""
    import shutil

    from glassdiff.train.distill import DistillTrainConfig, train_distill

    folder = tmp_path_factory.mktemp("models")
    shutil.copytree(tiny_model_dir, folder / "tiny")
    run = tmp_path_factory.mktemp("distill")
    train_distill(DistillTrainConfig(out=str(run), teacher=tiny_model_dir, steps=1, batch=4, captions=12,
                                     scenes_per_caption=1, checkpoint_every=2, sample_every=10_000, seed=1))
    shutil.copytree(run / "model", folder / "tiny-fast")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    running = Server(tmp_path_factory.mktemp("served"), "--models", str(models_dir), "--queue", "2")
    yield running
    running.stop()


def decoded(b64: str) -> bytes:
    return base64.b64decode(b64)


# ---------------- the A1111 API through the real client ----------------

def test_webuiapi_generates_the_pixels_and_bytes_of_glassdiff_generate(server, tmp_path):
    import webuiapi

    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port)
    result = api.txt2img(prompt="a red star left of a blue heart", negative_prompt="", seed=3, steps=6, cfg_scale=4,
                         sampler_name="Euler a", width=64, height=64)
    assert len(result.images) == 1 and result.info["all_seeds"] == [3]
    assert "enable_hr" in result.info["ignored_fields"]  # webuiapi's own fields that glassdiff does not implement
    made = tmp_path / "cli.png"
    assert main(["generate", "a red star left of a blue heart", "--seed", "3", "--steps", "6", "--guidance", "4",
                 "--sampler", "Euler a", "-q", "-o", str(made)]) == 0
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(Image.open(made)))
    assert decoded(result.json["images"][0]) == made.read_bytes()
    batch = api.txt2img(prompt="two stars", seed=10, steps=3, sampler_name="DPM++ 2M", width=64, height=64,
                        batch_size=2, n_iter=2)
    assert batch.info["all_seeds"] == [10, 11, 12, 13] and len(batch.images) == 4


def test_webuiapi_lists_samplers_and_models_and_switches_the_model(server):
    import webuiapi

    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port)
    names = {s["name"] for s in api.get_samplers()}
    assert {"Euler a", "DPM++ 2M", "DDIM", "UniPC", "LMS", "Euler"} <= names
    assert set(api.util_get_model_names()) == {"default", "default-fast", "tiny", "tiny-fast"}
    api.util_set_model("tiny")
    assert api.util_get_current_model() == "tiny"
    tiny = api.txt2img(prompt="a star", seed=1, steps=2, width=16, height=16, sampler_name="Euler")
    assert tiny.images[0].size == (16, 16) and json.loads(tiny.json["info"])["sd_model_name"] == "tiny"
    api.util_set_model("default")
    assert api.util_get_current_model() == "default"
    bad = httpx.post(server.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "/etc/passwd"})
    assert bad.status_code == 422 and "unknown model" in bad.json()["detail"]
    assert api.util_get_current_model() == "default"  # the server keeps the model it had


def test_webuiapi_reads_progress_and_interrupts_a_run(server):
    import webuiapi

    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port)
    outcome = {}
    files_before = set(os.listdir(server.outputs))
    run = threading.Thread(target=lambda: outcome.update(result=api.txt2img(
        prompt="a star", seed=1, steps=400, width=64, height=64, sampler_name="Euler")))
    run.start()
    seen = None
    deadline = time.time() + 60
    while time.time() < deadline and not seen:
        progress = api.get_progress()
        if progress["state"]["sampling_step"] >= 2 and progress["current_image"]:
            seen = progress
        time.sleep(0.05)
    assert seen and 0 < seen["progress"] < 1 and seen["eta_relative"] > 0 and seen["state"]["sampling_steps"] == 400
    assert Image.open(io.BytesIO(decoded(seen["current_image"]))).size == (64, 64)
    asked = time.time()
    api.interrupt()
    run.join(timeout=30)
    assert not run.is_alive() and time.time() - asked < 5
    assert outcome["result"].images == [] and outcome["result"].info == {"interrupted": True}
    assert set(os.listdir(server.outputs)) == files_before  # a stopped job leaves no file


def test_png_info_reads_the_parameters(server):
    made = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a heart", "seed": 4, "steps": 2,
                                                             "width": 64, "height": 64}, timeout=60).json()
    info = httpx.post(server.url + "/sdapi/v1/png-info", json={"image": made["images"][0]}).json()
    assert info["info"].startswith("a heart\nSteps: 2,") and info["parameters"]["seed"] == 4


@pytest.mark.parametrize("body, field", [({"steps": 0}, "steps"), ({"steps": 100000}, "steps"),
                                         ({"cfg_scale": 99}, "cfg_scale"), ({"width": 4}, "width"),
                                         ({"seed": 2**64}, "seed"), ({"batch_size": 0}, "batch_size")])
def test_out_of_range_fields_get_422_naming_the_field(server, body, field):
    response = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a star", **body})
    assert response.status_code == 422 and field in json.dumps(response.json()["detail"])


def test_bad_sampler_size_and_cost_get_422(server):
    for body, message in (({"sampler_name": "Heun"}, "unknown sampler"),
                          ({"width": 62}, "not a positive multiple of 4"),
                          ({"width": 1024, "height": 1024, "steps": 1000}, "over this server's limit")):
        response = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a star", **body}, timeout=30)
        assert response.status_code == 422 and message in response.json()["detail"], response.text


# ---------------- image-to-image and inpainting ----------------

@pytest.fixture(scope="module")
def red_circle(tmp_path_factory):
    """A render of "a red circle on the left" and a mask of the right half (white: redraw)."""
    import random

    from glassdiff.world import render, scene_from_spec

    folder = tmp_path_factory.mktemp("pictures")
    spec = {"include": [{"class": "circle", "count": 1, "color": "red", "cell": "left"}]}
    render(scene_from_spec(spec, random.Random(0))).save(folder / "in.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return folder


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_webuiapi_img2img_and_inpainting_draw_the_pixels_of_glassdiff_generate(server, red_circle, tmp_path):
    import webuiapi

    api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port)
    picture, mask = Image.open(red_circle / "in.png"), Image.open(red_circle / "mask.png")
    for mask_image, extra in ((None, []), (mask, ["--mask", str(red_circle / "mask.png")])):
        result = api.img2img(images=[picture], mask_image=mask_image, mask_blur=0, denoising_strength=0.7,
                             prompt="a blue star on the right", seed=5, steps=6, cfg_scale=4, sampler_name="Euler",
                             width=64, height=64)
        text = result.info["infotexts"][0]
        assert result.info["denoising_strength"] == 0.7 and "Denoising strength: 0.7, Init image hash: " in text
        assert ("Mask hash: " in text) == (mask_image is not None)
        # webuiapi sends inpainting_fill 0 ("fill"); glassdiff redraws from the picture's latent, and says so
        assert ("inpainting_fill" in result.info["ignored_fields"]) == (mask_image is not None)
        made = tmp_path / "cli.png"
        assert main(["generate", "a blue star on the right", "--init-image", str(red_circle / "in.png"),
                     "--strength", "0.7", *extra, "--seed", "5", "--steps", "6", "--guidance", "4",
                     "--sampler", "Euler", "-q", "-o", str(made)]) == 0
        assert np.array_equal(np.asarray(result.images[0]), np.asarray(Image.open(made)))


def test_img2img_refuses_bad_pictures_and_strengths_with_422(server):
    small = png_b64(Image.new("RGB", (64, 64), "red"))
    for body, message in (({"init_images": ["not an image"]}, "init image: not base64"),
                          ({"init_images": [small], "mask": base64.b64encode(b"GIF89a").decode()},
                           "mask: not a base64 image"),
                          ({"init_images": [png_b64(Image.new("L", (4000, 8)))]}, "over 2048 pixels a side"),
                          ({"init_images": [small], "denoising_strength": 1.5}, "denoising_strength"),
                          ({"init_images": []}, "init_images")):
        response = httpx.post(server.url + "/sdapi/v1/img2img", json={"prompt": "a star", **body}, timeout=30)
        assert response.status_code == 422 and message in json.dumps(response.json()["detail"]), response.text
    response = httpx.post(server.url + "/glassdiff/generate", json={"prompt": "a star", "mask": small})
    assert response.status_code == 422 and "needs a picture" in response.json()["detail"]


# ---------------- glassdiff's own endpoints ----------------

def stream_events(server, body, stop_after=None):
    events = []
    with httpx.stream("POST", server.url + "/glassdiff/generate", json=body, timeout=60) as response:
        assert response.status_code == 200
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
                if stop_after and len(events) >= stop_after:
                    return events
    return events


def test_the_stream_sends_every_step_then_the_image(server):
    events = stream_events(server, {"prompt": "three stars", "seed": 2, "steps": 5})
    kinds = [kind for kind, _ in events]
    assert kinds == ["step"] * 5 + ["done"]
    assert [data["step"] for _, data in events[:-1]] == [1, 2, 3, 4, 5]
    done = events[-1][1]
    assert len(done["regions"]) == 3 and done["parameters"].startswith("three stars\nSteps: 5,")
    saved = httpx.get(server.url + "/glassdiff/outputs/" + done["name"]).content
    assert saved == base64.b64decode(done["image"].split(",", 1)[1])
    assert httpx.get(server.url + "/glassdiff/outputs/..%2F..%2Fetc%2Fpasswd").status_code == 404
    history = httpx.get(server.url + "/glassdiff/history").json()
    assert history[0]["name"] == done["name"] and history[0]["params"]["seed"] == 2


def test_a_request_that_leaves_out_sampling_gets_what_the_model_folder_asks_for(server):
    own = stream_events(server, {"prompt": "a star left of a heart", "model": "tiny-fast"})[-1][1]["parameters"]
    assert "Steps: 4, Sampler: lcm, CFG scale: 1.0," in own and "Layout: 1.0," in own  # the student's own
    sent = stream_events(server, {"prompt": "a star", "model": "tiny-fast", "steps": 2, "layout": 0.5})[-1][1]
    assert "Steps: 2, Sampler: lcm, CFG scale: 1.0," in sent["parameters"] and "Layout: 0.5," in sent["parameters"]
    assert httpx.post(server.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "tiny-fast"}).status_code == 200
    try:
        reply = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a star", "seed": 1}, timeout=120).json()
        assert "Steps: 4, Sampler: lcm, CFG scale: 1.0," in json.loads(reply["info"])["infotexts"][0]
    finally:
        httpx.post(server.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "default"})
    plain = stream_events(server, {"prompt": "a star", "model": "tiny"})[-1][1]["parameters"]
    assert "Steps: 15, Sampler: dpmpp_2m, CFG scale: 4.0," in plain


def test_the_server_says_what_the_words_were_read_as_and_which_it_lacks(server):
    done = stream_events(server, {"prompt": "a cobalt orb beneath a tile", "steps": 2})[-1][1]
    assert done["read_as"] == "a blue circle below a square" and done["unknown_words"] == []
    assert [region["prompt"] for region in done["regions"]] == ["a medium blue circle at the bottom",
                                                               "a medium square at the top"]
    reply = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a helicopter", "steps": 2}, timeout=60)
    info = json.loads(reply.json()["info"])
    assert reply.status_code == 200 and [w["words"] for w in info["unknown_words"]] == ["helicopter"]
    assert "helicopter: not in this model's world" in info["notice"]


def test_a_client_leaving_mid_stream_frees_the_worker_within_a_step(server):
    files_before = set(os.listdir(server.outputs))
    events = stream_events(server, {"prompt": "a star", "steps": 300, "sampler": "euler"}, stop_after=3)
    step_seconds = events[-1][1]["elapsed"] / events[-1][1]["step"]
    left = time.time()
    while httpx.get(server.url + "/healthz").json()["queued"]:
        assert time.time() - left < 10
        time.sleep(0.02)
    freed = time.time() - left
    print(f"worker freed {freed:.3f} s after the client left (a step takes {step_seconds:.3f} s)")
    assert freed < step_seconds + 0.5  # one step, and the time to notice the closed connection
    assert set(os.listdir(server.outputs)) == files_before


def test_explain_returns_the_report(server):
    response = httpx.post(server.url + "/glassdiff/explain", json={"prompt": "a red star", "steps": 4}, timeout=120)
    assert response.status_code == 200 and 'id="words"' in response.text and "button" in response.text


def test_explain_sets_a_distilled_student_beside_the_run(server):
    asked = {"prompt": "a red star", "steps": 4}
    response = httpx.post(server.url + "/glassdiff/explain", json={**asked, "student": "tiny-fast"}, timeout=300)
    assert response.status_code == 200
    section = response.text[response.text.index('<section id="student">'):]
    assert section.count("<img") == 4 and "the student, 4 steps (lcm, one UNet pass each)" in section
    for student, said in (("tiny", "not a distilled student"), ("/etc", "unknown model")):
        refused = httpx.post(server.url + "/glassdiff/explain", json={**asked, "student": student}, timeout=60)
        assert refused.status_code == 422 and said in refused.json()["detail"]
    refused = httpx.post(server.url + "/glassdiff/generate", json={**asked, "student": "tiny-fast"}, timeout=60)
    assert refused.status_code == 422  # a student belongs to the explainer


def test_docs_and_schema_work_offline(server):
    docs = httpx.get(server.url + "/docs").text
    assert "/sdapi/v1/txt2img" in docs and "cdn" not in docs.lower()
    schema = httpx.get(server.url + "/openapi.json").json()
    assert "/sdapi/v1/progress" in schema["paths"] and "/glassdiff/generate" in schema["paths"]


# ---------------- binding and authentication ----------------

def test_binding_beyond_loopback_needs_a_token():
    done = subprocess.run([GLASSDIFF, "serve", "--host", "0.0.0.0", "--port", str(free_port())], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--token" in done.stderr


@pytest.mark.parametrize("flag, value, client_auth", [
    ("--token", "s3cret", {"headers": {"Authorization": "Bearer s3cret"}}),
    ("--api-auth", "me:pw", {"auth": ("me", "pw")})])
def test_every_route_but_healthz_needs_the_credentials(tmp_path, flag, value, client_auth):
    import webuiapi

    running = Server(tmp_path, flag, value)
    try:
        assert httpx.get(running.url + "/healthz").status_code == 200
        for path in ("/", "/sdapi/v1/samplers", "/openapi.json", "/glassdiff/history"):
            assert httpx.get(running.url + path).status_code == 401
            assert httpx.get(running.url + path, **client_auth).status_code == 200
        if flag == "--api-auth":
            api = webuiapi.WebUIApi(host="127.0.0.1", port=running.port)
            api.set_auth("me", "pw")
            assert api.txt2img(prompt="a star", steps=2, width=64, height=64).images
    finally:
        running.stop()


# ---------------- the page in a real browser ----------------

def test_the_page_draws_live_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(accept_downloads=True)
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready=yes]")  # the samplers and models have arrived
        page.fill("#prompt", "a golden star on top of a violet heart")
        page.fill("#steps", "8")
        page.evaluate("""() => { window.previews = new Set();
            new MutationObserver(() => window.previews.add(document.getElementById('preview').src))
              .observe(document.getElementById('preview'), {attributes: true}); }""")
        page.click("#generate")
        try:
            page.wait_for_function("document.getElementById('final').src.startsWith('data:image/png')", timeout=60000)
        except Exception:
            raise AssertionError(f"no image: status {page.inner_text('#status')!r}, "
                                 f"progress {page.inner_text('#progress-text')!r}") from None
        assert page.evaluate("window.previews.size") >= 7  # at least steps - 1 previews before the image
        assert "first preview after" in page.inner_text("#first-preview")
        assert page.locator("#regions div").count() == 2
        assert "Read as “a yellow star above a purple heart”" in page.inner_text("#read-as")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        with page.expect_download() as download:
            page.click("#download")
        png = tmp_path / "downloaded.png"
        download.value.save_as(png)
        assert Image.open(png).info["parameters"].startswith("a golden star on top of a violet heart\nSteps: 8,")
        page.click("#explain")
        page.wait_for_selector("#explainer:not([hidden])", timeout=120000)
        frame = page.frame_locator("#explainer")
        x0 = frame.locator("#p-x0")
        last = x0.get_attribute("src")
        frame.locator("#step").evaluate("(s) => { s.value = 0; s.dispatchEvent(new Event('input')); }")
        assert x0.get_attribute("src") != last
        focus = frame.locator("#focus-all")
        before = focus.get_attribute("src")
        frame.locator("button.word").nth(2).hover()
        assert focus.get_attribute("src") != before
        page.screenshot(path=str(tmp_path / "explained.png"), full_page=True)
        assert page.locator("#student option").all_inner_texts() == ["none", "default-fast", "tiny-fast"]  # students
        page.select_option("#student", "tiny-fast")
        page.click("#explain")
        page.wait_for_function("document.getElementById('explainer').srcdoc.includes('id=\"student\"')",
                               timeout=120000)
        assert frame.locator("#student img").count() == 4
        page.screenshot(path=str(tmp_path / "explained-student.png"), full_page=True)
        page.locator("#history img").first.click()
        assert page.input_value("#steps") == "8"
        page.select_option("#model", "tiny-fast")  # a student's folder asks for its own sampling
        own = ("sampler", "steps", "guidance", "layout")
        assert [page.input_value(f"#{k}") for k in own] == ["lcm", "4", "1", "1"]
        page.select_option("#model", "default")
        assert [page.input_value(f"#{k}") for k in own] == ["dpmpp_2m", "15", "4", "0.33"]
        browser.close()
    os.makedirs("out", exist_ok=True)
    for name in ("page.png", "explained.png", "explained-student.png"):
        os.replace(tmp_path / name, os.path.join("out", "server-" + name))


def test_the_page_redraws_the_brushed_part_of_a_dropped_picture(server, red_circle, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready=yes]")
        page.set_input_files("#init-file", str(red_circle / "in.png"))
        page.wait_for_selector("#picture-tools:not([hidden])")
        page.fill("#brush", "64")  # a quarter of the picture's width
        box = page.locator("#mask-canvas").bounding_box()
        for across in (0.65, 0.8, 0.95):  # three strokes cover the right half
            page.mouse.move(box["x"] + across * box["width"], box["y"] + 1)
            page.mouse.down()
            page.mouse.move(box["x"] + across * box["width"], box["y"] + box["height"] - 1, steps=8)
            page.mouse.up()
        assert "Only the painted part" in page.inner_text("#mask-note")
        page.fill("#prompt", "a blue star on the right")
        page.fill("#strength", "1")
        page.fill("#steps", "8")
        page.click("#generate")
        page.wait_for_function("document.getElementById('final').src.startsWith('data:image/png')", timeout=60000)
        assert "Denoising strength: 1.0, Init image hash: " in page.inner_text("#parameters")
        assert "Mask hash: " in page.inner_text("#parameters")
        final = page.get_attribute("#final", "src").split(",", 1)[1]
        page.click("#explain")
        page.wait_for_selector("#explainer:not([hidden])", timeout=120000)
        assert page.frame_locator("#explainer").locator("#forward").count() == 1
        page.screenshot(path=str(tmp_path / "img2img.png"), full_page=True)
        browser.close()
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(final))).convert("RGB"), dtype=int)
    picture = np.asarray(Image.open(red_circle / "in.png").convert("RGB"), dtype=int)
    assert np.abs(drawn - picture)[:, :24].mean() < 8  # the unbrushed left is kept (the autoencoder's round trip)
    assert np.abs(drawn - picture)[:, 40:].mean() > 2 * np.abs(drawn - picture)[:, :24].mean()  # the right redrawn
    os.makedirs("out", exist_ok=True)
    os.replace(tmp_path / "img2img.png", os.path.join("out", "server-img2img.png"))


# ---------------- generated requests, load, memory ----------------

def test_schemathesis_finds_no_server_error_and_no_hang(tmp_path, models_dir):
    running = Server(tmp_path, "--models", str(models_dir), "--max-seconds", "3", "--queue", "1")
    try:
        done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "schemathesis"), "run",
                               running.url + "/openapi.json", "--checks", "not_a_server_error", "--max-examples", "12",
                               "--phases", "coverage,fuzzing",
                               "--request-timeout", "60", "--max-response-time", "60", "--seed", "1",
                               "--exclude-path", "/sdapi/v1/interrupt"],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:]
    finally:
        running.stop()


def test_fifty_clients_get_200_or_503_and_healthz_answers_throughout(tmp_path):
    running = Server(tmp_path, "--queue", "4")
    try:
        idle = running.rss()
        body = {"prompt": "a red circle", "steps": 4, "width": 64, "height": 64}
        assert httpx.post(running.url + "/sdapi/v1/txt2img", json=body, timeout=60).status_code == 200
        one = running.rss("VmHWM")
        statuses, health, stop = [], [], threading.Event()

        def client(k):
            response = httpx.post(running.url + "/sdapi/v1/txt2img", json={**body, "seed": k}, timeout=120)
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert response.headers["retry-after"]

        def watch():
            while not stop.is_set():
                started = time.time()
                health.append((httpx.get(running.url + "/healthz", timeout=5).status_code, time.time() - started))
                time.sleep(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        clients = [threading.Thread(target=client, args=(k,)) for k in range(50)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=180)
        stop.set()
        watcher.join()
        assert not any(c.is_alive() for c in clients)
        assert len(statuses) == 50 and set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses
        assert health and all(code == 200 and seconds < 2 for code, seconds in health)
        peak = running.rss("VmHWM")
        print(f"idle {idle} kB, one generation's peak {one} kB, under load {peak} kB")
        assert peak <= 1.5 * one
    finally:
        running.stop()


def test_two_hundred_generations_hold_no_more_memory_than_five(tmp_path):
    running = Server(tmp_path)
    try:
        with httpx.Client(timeout=60) as client:
            body = {"prompt": "a blue square", "steps": 1, "width": 64, "height": 64}
            for k in range(200):
                assert client.post(running.url + "/sdapi/v1/txt2img", json={**body, "seed": k}).status_code == 200
                if k == 4:
                    after_five = running.rss()
        after_200 = running.rss()
        print(f"resident after 5 generations {after_five} kB, after 200 {after_200} kB")
        assert after_200 <= after_five * 1.03
    finally:
        running.stop()
