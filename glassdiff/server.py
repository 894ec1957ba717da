"""glassdiff serve: a page to watch the model draw, live, and A1111's HTTP API (/sdapi/v1), in one uvicorn process.

One generation owns the CPU at a time: every piece of work that runs the model runs on one thread (torch's
OpenMP workers belong to the thread that calls them: work spread over several threads ran slower:
README, "Performance");
the others wait in a bounded queue, and past it a request gets 503 with Retry-After. Every job has a cancel flag
that the sampling loop reads after each step: an interrupt, or a client that goes away, stops it within one step,
and a stopped job writes nothing. Images go to --outputs as PNGs (the history), never kept in memory. A model is
chosen by its name in --models; a client's path is never opened.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import io
import json
import os
import queue
import re
import secrets
import threading
import time

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .config import A1111_SAMPLERS, MAX_GUIDANCE, MAX_SEED, MAX_STEPS, SAMPLERS, BadInput, SamplingConfig

MAX_PROMPT = 2000  # characters
MAX_BODY = 16 * 2**20  # bytes: a base64 PNG for png-info, or a picture and its mask for img2img, fits
MAX_PICTURE = 2048  # pixels a side of a picture to start from
MAX_IMAGES = 16  # batch_size x n_iter per request
STATIC = os.path.join(os.path.dirname(__file__), "static")
NAME = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}\.png$")


class Busy(Exception):
    """The queue is full."""


class Cancelled(Exception):
    """The job's client interrupted it or went away."""


@dataclasses.dataclass
class Job:
    steps: int  # the steps of the whole job (every call of it)
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    step: int = 0
    started: float = dataclasses.field(default_factory=time.perf_counter)
    preview: bytes | None = None  # PNG of a recent x0_pred
    wanted: bool = False  # /progress asked for a preview: the next step draws one


class MainThreadExecutor(concurrent.futures.Executor):
    """Runs the submitted work, one piece at a time, on the thread that calls run() (the main thread, in `glassdiff
    serve`, where torch runs fastest: README's performance section has the figures)."""

    def __init__(self):
        self.work: queue.Queue = queue.Queue()

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        self.work.put((future, fn, args, kwargs))
        return future

    def run(self, until):
        """Run work until `until()` is true."""
        while not until():
            try:
                future, fn, args, kwargs = self.work.get(timeout=0.2)
            except queue.Empty:
                continue
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - the future carries it to the request
                future.set_exception(err)
            except BaseException as err:  # Ctrl-C: the request hears of it, and the server stops
                future.set_exception(err)
                raise
            else:
                future.set_result(result)


class Worker:
    """The model in use, the CPU's one thread, the bounded queue and the running job's progress."""

    def __init__(self, models_dir: str | None, outputs: str, queue_size: int, max_seconds: float = 300.0,
                 cpu: concurrent.futures.Executor | None = None):
        self.models_dir, self.outputs, self.queue_size = models_dir, outputs, queue_size
        self.max_seconds = max_seconds
        self.cpu = cpu or concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="glassdiff-cpu")
        self.count_lock = threading.Lock()
        self.admitted = 0
        self.model_name, self.pipe = None, None
        self.job: Job | None = None
        os.makedirs(outputs, exist_ok=True)

    # ---------- admission ----------

    def admit(self):
        with self.count_lock:
            if self.admitted >= self.queue_size + 1:  # the one running and the queue
                raise Busy()
            self.admitted += 1

    def leave(self):
        with self.count_lock:
            self.admitted -= 1

    # ---------- models ----------

    def names(self) -> list[str]:
        from .models import list_models

        return [entry.name for entry in list_models(self.models_dir)]

    def use(self, name: str | None):
        """Load the named model if it is not the one in use (on the CPU's thread); a failure keeps the old one."""
        from .models import DEFAULT, resolve
        from .pipeline import Pipeline

        name = name or self.model_name or DEFAULT
        if name == self.model_name and self.pipe is not None:
            return self.pipe
        if name not in self.names():
            raise BadInput(f"unknown model {name!r}; GET /sdapi/v1/sd-models lists them")
        pipe = Pipeline.load(resolve(name, self.models_dir))
        self.model_name, self.pipe = name, pipe
        return pipe

    def own_sampling(self, name: str | None) -> dict:
        """The sampling the named model's folder asks for (the one in use where None); {} for an unknown name,
        which use() refuses."""
        from .folders import model_sampling
        from .models import DEFAULT, resolve

        name = name or self.model_name or DEFAULT
        if name == self.model_name and self.pipe is not None:
            return self.pipe.sampling  # read when it was loaded: no listing of the models folder per request
        return model_sampling(resolve(name, self.models_dir)) if name in self.names() else {}

    def student(self, name: str):
        """A distilled student among the server's models, for the explainer (loaded for the request, on PyTorch)."""
        from .explain.cli import load_student

        if name not in self.names():
            raise BadInput(f"student: unknown model {name!r}; GET /sdapi/v1/sd-models lists them")
        return load_student(name, self.models_dir)

    # ---------- generation ----------

    def generate(self, prompt: str, cfg: SamplingConfig, model: str | None, job: Job, on_step=None,
                 picture: Picture | None = None):
        """Images and their parameters texts for one call of the pipeline, honouring the job's cancel flag (on the
        CPU's thread); a picture starts it from an image (its fields end each parameters text)."""
        pipe = self.use(model)
        self.check_cost(pipe, cfg, job)
        self.job = job
        try:
            result = pipe(prompt, cfg, observers=(self._observer(pipe, job, on_step),),
                          **(picture.inputs if picture else {}))
        finally:
            self.job = None
        if picture:
            result.infotexts[:] = [f"{text}, {picture.fields}" for text in result.infotexts]
        return result

    def check_cost(self, pipe, cfg: SamplingConfig, job: Job):
        """Refuse a request estimated to run past --max-seconds (the whole job: every call of it)."""
        height, width = pipe.size(cfg)
        seconds = pipe.image_seconds(cfg, height, width) * cfg.batch * max(1, job.steps // cfg.steps)
        if seconds > self.max_seconds:
            raise BadInput(f"this request would take about {seconds:.0f} s, over this server's limit of "
                           f"{self.max_seconds:.0f} s: ask for fewer steps, fewer images or a smaller size")

    def _observer(self, pipe, job: Job, on_step):
        from .preview import preview

        def observe(record):
            job.step += 1
            if on_step or job.wanted:  # a stream shows every step; a poll gets the step after it asked
                job.preview, job.wanted = png_bytes(preview(pipe, record.x0_pred)), False
            if on_step:
                on_step(job)
            if job.cancel.is_set():
                raise Cancelled()
        return observe

    def save_bytes(self, png: bytes) -> str:
        """Write a PNG of the history (atomically); returns its file name."""
        from .io import atomic_path

        name = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4) + ".png"
        with atomic_path(os.path.join(self.outputs, name)) as tmp, open(tmp, "wb") as f:
            f.write(png)
        return name

    def history(self, limit: int = 60) -> list[dict]:
        from .png import params_from_png

        names = sorted((n for n in os.listdir(self.outputs) if NAME.match(n)), reverse=True)[:limit]
        out = []
        for name in names:
            try:
                read = params_from_png(os.path.join(self.outputs, name))
                out.append({"name": name, "prompt": read.prompt, "params": read.params})
            except BadInput:
                continue
        return out


def png_bytes(image, text: str | None = None) -> bytes:
    """The PNG as `glassdiff generate` writes it (the same bytes for the same image and parameters)."""
    from PIL import PngImagePlugin

    buffer = io.BytesIO()
    info = None
    if text is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", text)
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


# ---------------- pictures sent to start from ----------------

def base64_bytes(data: str, field: str) -> bytes:
    """The bytes of base64 text, bare or a data: URL; anything else is one line naming the field."""
    try:
        return base64.b64decode(data.split(",", 1)[1] if data.startswith("data:") else data, validate=True)
    except ValueError as err:
        raise BadInput(f"{field}: not base64 ({err}); send a base64 PNG, JPEG or WebP") from err


def decoded_image(data: str, field: str):
    """(image, its bytes) from base64, at most MAX_PICTURE pixels a side; anything else is one line naming the
    field."""
    from PIL import Image

    content = base64_bytes(data, field)
    try:
        with Image.open(io.BytesIO(content)) as image:
            size = image.size
            if max(size) <= MAX_PICTURE:
                image.load()
                return image.copy(), content
    except (ValueError, OSError, Image.DecompressionBombError) as err:
        raise BadInput(f"{field}: not a base64 image ({err}); send a PNG, JPEG or WebP") from err
    raise BadInput(f"{field}: {size[0]}x{size[1]} is over {MAX_PICTURE} pixels a side; send a smaller picture")


@dataclasses.dataclass(frozen=True)
class Picture:
    """A picture-started request: the pipeline's arguments, and what its parameters text adds."""
    inputs: dict  # init_image, strength, mask
    fields: str
    size: tuple[int, int]  # (width, height) of the picture


def read_picture(init: str, strength: float, mask: str | None, mask_blur: float = 0,
                 invert: bool = False) -> Picture:
    from PIL import ImageOps

    from .forward import blur_mask, data_hash, parameter_fields

    picture, content = decoded_image(init, "init image")
    inputs, mask_hash = {"init_image": picture, "strength": strength}, None
    if mask:
        mask_image, mask_content = decoded_image(mask, "mask")
        mask_image = blur_mask(mask_image, mask_blur)
        inputs["mask"] = ImageOps.invert(mask_image) if invert else mask_image
        mask_hash = data_hash(mask_content)
    return Picture(inputs, parameter_fields(strength, data_hash(content), mask_hash), picture.size)


def steps_run(steps: int, picture: Picture | None) -> int:
    """How many steps a request's loop runs: a picture skips the first ones (the strength picks)."""
    from .forward import first_step

    return steps - first_step(steps, picture.inputs["strength"]) if picture else steps


# ---------------- request bodies ----------------

class Txt2Img(BaseModel):
    """A1111's txt2img fields; fields glassdiff does not implement are accepted and named in the reply's info."""

    model_config = ConfigDict(extra="allow")
    prompt: str = Field("", max_length=MAX_PROMPT)
    negative_prompt: str = Field("", max_length=MAX_PROMPT)
    seed: int = Field(-1, ge=-1, le=MAX_SEED)
    steps: int = Field(SamplingConfig().steps, ge=1, le=MAX_STEPS)
    cfg_scale: float = Field(SamplingConfig().guidance, ge=0, le=MAX_GUIDANCE)
    sampler_name: str | None = Field(None, max_length=64)
    sampler_index: str | None = Field(None, max_length=64)
    width: int | None = Field(None, ge=8, le=2048)
    height: int | None = Field(None, ge=8, le=2048)
    batch_size: int = Field(1, ge=1, le=MAX_IMAGES)
    n_iter: int = Field(1, ge=1, le=MAX_IMAGES)
    layout: float = Field(SamplingConfig().layout, ge=0, le=1)


class Img2Img(Txt2Img):
    """A1111's img2img fields: the picture(s), how much to redraw, and the inpainting mask (white = redraw)."""

    init_images: list[str] = Field(..., min_length=1, max_length=MAX_IMAGES)
    denoising_strength: float = Field(0.75, ge=0, le=1)
    mask: str | None = Field(None, max_length=MAX_BODY)
    mask_blur: int = Field(4, ge=0, le=64)
    inpainting_fill: int = Field(1, ge=0, le=3)  # glassdiff redraws from the picture's latent: A1111's 1 (original)
    inpainting_mask_invert: int = Field(0, ge=0, le=1)


class Generate(BaseModel):
    """glassdiff's own fields, for the page's streaming endpoint and the explainer."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT)
    negative: str = Field("", max_length=MAX_PROMPT)
    seed: int = Field(0, ge=-1, le=MAX_SEED)
    steps: int = Field(SamplingConfig().steps, ge=1, le=MAX_STEPS)
    guidance: float = Field(SamplingConfig().guidance, ge=0, le=MAX_GUIDANCE)
    sampler: str = Field(SamplingConfig().sampler, max_length=64)
    width: int | None = Field(None, ge=8, le=2048)
    height: int | None = Field(None, ge=8, le=2048)
    layout: float = Field(SamplingConfig().layout, ge=0, le=1)
    model: str | None = Field(None, max_length=200)
    compare: str | None = Field(None, max_length=MAX_PROMPT)
    init_image: str | None = Field(None, max_length=MAX_BODY)  # base64 or a data: URL: start from this picture
    strength: float = Field(0.6, ge=0, le=1)
    mask: str | None = Field(None, max_length=MAX_BODY)  # white = redraw


class Explain(Generate):
    """The explainer's fields: glassdiff's own, and a distilled student (a model's name) to show beside the run."""

    student: str | None = Field(None, max_length=200)


class Options(BaseModel):
    model_config = ConfigDict(extra="allow")
    sd_model_checkpoint: str | None = Field(None, max_length=200)


class PngInfo(BaseModel):
    image: str = Field(..., max_length=MAX_BODY)


def _size(width: int | None, height: int | None, picture: Picture | None) -> dict:
    """The size asked for; with a picture and no size, the picture's (as `glassdiff generate --init-image`)."""
    if picture and width is None and height is None:
        width, height = picture.size
    return {"width": width, "height": height}


def _own_or_sent(body: BaseModel, own: dict, fields: dict[str, tuple[str, ...]]) -> dict:
    """The sampling fields (SamplingConfig's names) a request sent, else what the model's folder asks for (a
    distilled student's), else the request's defaults. fields: each name and the body fields that carry it."""
    chosen = {}
    for name, carriers in fields.items():
        sent = [getattr(body, f) for f in carriers if f in body.model_fields_set and getattr(body, f) is not None]
        defaults = [getattr(body, f) for f in carriers if getattr(body, f) is not None]
        chosen[name] = sent[0] if sent else own.get(name, defaults[0] if defaults else None)
    return chosen


def sampling(body: Generate, own: dict, picture: Picture | None = None) -> SamplingConfig:
    from .options import sampling_config

    fields = {"steps": ("steps",), "guidance": ("guidance",), "sampler": ("sampler",), "layout": ("layout",)}
    return sampling_config(dict(**_own_or_sent(body, own, fields), seed=body.seed, negative=body.negative,
                                **_size(body.width, body.height, picture)))


def a1111_sampling(body: Txt2Img, own: dict, picture: Picture | None = None) -> SamplingConfig:
    from .options import sampling_config

    fields = {"steps": ("steps",), "guidance": ("cfg_scale",), "sampler": ("sampler_name", "sampler_index"),
              "layout": ("layout",)}
    chosen = _own_or_sent(body, own, fields)
    chosen["sampler"] = chosen["sampler"] or "DPM++ 2M"
    return sampling_config(dict(**chosen, seed=body.seed, negative=body.negative_prompt, batch=body.batch_size,
                                **_size(body.width, body.height, picture)))


def page_picture(body: Generate) -> Picture | None:
    if body.init_image is None:
        if body.mask is not None:
            raise BadInput("mask: a mask needs a picture to redraw; send init_image too")
        return None
    return read_picture(body.init_image, body.strength, body.mask)


# ---------------- the app ----------------

def create_app(models_dir: str | None = None, outputs: str = "outputs", queue_size: int = 8, token: str | None = None,
               api_auth: str | None = None, max_seconds: float = 300.0,
               cpu: concurrent.futures.Executor | None = None) -> FastAPI:
    """The app; `cpu` runs the model work (by default a thread of its own; `serve` gives the main thread)."""
    worker = Worker(models_dir, outputs, queue_size, max_seconds, cpu)
    app = FastAPI(title="glassdiff", version=_version(), docs_url=None, redoc_url=None,
                  description="Watch a diffusion model draw; A1111's API (/sdapi/v1) for the clients that speak it.")
    app.state.worker = worker
    _guard(app, token, api_auth)
    _errors(app)
    _sdapi(app, worker)
    _own(app, worker)
    _docs(app)
    return app


def _version() -> str:
    from . import __version__

    return __version__


def _guard(app: FastAPI, token: str | None, api_auth: str | None):
    """Bounded bodies everywhere; with --token or --api-auth, every route but /healthz needs it."""
    expected = None
    if token:
        expected = f"Bearer {token}"
    elif api_auth:
        expected = "Basic " + base64.b64encode(api_auth.encode()).decode()

    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
        if expected and request.url.path != "/healthz":
            given = request.headers.get("authorization", "")
            if token and request.query_params.get("token"):
                given = f"Bearer {request.query_params['token']}"
            if not secrets.compare_digest(given.encode(), expected.encode()):
                headers = {"WWW-Authenticate": "Basic" if api_auth else "Bearer"}
                return JSONResponse({"detail": "not authenticated"}, status_code=401, headers=headers)
        return await call_next(request)


def _errors(app: FastAPI):
    @app.exception_handler(BadInput)
    async def bad_input(request: Request, err: BadInput):
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.exception_handler(Busy)
    async def busy(request: Request, err: Busy):
        return JSONResponse({"detail": "busy: the queue is full; try again shortly"}, status_code=503,
                            headers={"Retry-After": "5"})


async def run_job(request: Request, worker: Worker, job: Job, work):
    """Run `work` in a thread while watching the client: if it goes away, the job is cancelled within one step."""
    worker.admit()
    try:
        task = asyncio.get_running_loop().run_in_executor(worker.cpu, work)
        while not task.done():
            await asyncio.wait({task}, timeout=0.1)
            if not task.done() and await request.is_disconnected():
                job.cancel.set()
        return task.result()
    finally:
        worker.leave()


def grounding_payload(result) -> dict:
    """How the shapes world read the prompt: what the model drew, and the words it has no meaning for (nothing
    for a model outside the world)."""
    grounding = result.groundings[0]
    if grounding is None:
        return {}
    return {"read_as": result.read_as[0], "notice": grounding.notice(),
            "unknown_words": [{"words": r.words, "nearest": r.value, "similarity": r.score} for r in grounding.unknown]}


def _sdapi(app: FastAPI, worker: Worker):
    prefix = "/sdapi/v1"

    @app.post(prefix + "/txt2img")
    async def txt2img(body: Txt2Img, request: Request):
        return await a1111_job(body, request, None, sorted(set(body.model_extra or {}) - {"scheduler"}))

    @app.post(prefix + "/img2img")
    async def img2img(body: Img2Img, request: Request):
        """A1111's img2img and inpainting (the mask's white is redrawn; A1111's "original" fill)."""
        picture = await asyncio.to_thread(read_picture, body.init_images[0], body.denoising_strength, body.mask,
                                          body.mask_blur, bool(body.inpainting_mask_invert))
        ignored = set(body.model_extra or {}) - {"scheduler"}
        ignored |= {"init_images[1:]"} if len(body.init_images) > 1 else set()
        ignored |= {"inpainting_fill"} if body.mask and body.inpainting_fill != 1 else set()
        return await a1111_job(body, request, picture, sorted(ignored),
                               {"denoising_strength": body.denoising_strength})

    async def a1111_job(body: Txt2Img, request: Request, picture: Picture | None, ignored: list[str],
                        extra_info: dict | None = None):
        """Run txt2img's or img2img's request: n_iter calls of batch_size images, and A1111's reply."""
        cfg = a1111_sampling(body, worker.own_sampling(None), picture)
        job = Job(steps=steps_run(cfg.steps, picture) * body.n_iter)

        def work():
            images, seeds, texts, read = [], [], [], {}
            for iteration in range(body.n_iter):
                part = dataclasses.replace(cfg, seed=cfg.seed + iteration * cfg.batch)
                result = worker.generate(body.prompt, part, None, job, picture=picture)
                read = grounding_payload(result)
                images += [png_bytes(im, text) for im, text in zip(result.images, result.infotexts)]
                seeds += result.seeds
                texts += result.infotexts
            for png in images:  # the history, once every image of the job is done
                worker.save_bytes(png)
            return images, seeds, texts, read

        try:
            images, seeds, texts, read = await run_job(request, worker, job, work)
        except Cancelled:
            return {"images": [], "parameters": body.model_dump(), "info": json.dumps({"interrupted": True})}
        info = {"prompt": body.prompt, "negative_prompt": body.negative_prompt, "seed": seeds[0], "all_seeds": seeds,
                "steps": cfg.steps, "cfg_scale": cfg.guidance, "sampler_name": cfg.sampler,
                "width": cfg.width, "height": cfg.height, "infotexts": texts,
                "sd_model_name": worker.model_name, "ignored_fields": ignored, **read, **(extra_info or {})}
        return {"images": [base64.b64encode(png).decode() for png in images], "parameters": body.model_dump(),
                "info": json.dumps(info)}

    @app.get(prefix + "/progress")
    async def progress():
        job = worker.job
        if job is None:
            return {"progress": 0.0, "eta_relative": 0.0, "current_image": None, "textinfo": None,
                    "state": {"interrupted": False, "skipped": False, "job_count": 0, "sampling_step": 0,
                              "sampling_steps": 0, "job": ""}}
        job.wanted = True  # previews cost a decode: drawn only when someone looks
        done = job.step / max(job.steps, 1)
        elapsed = time.perf_counter() - job.started
        return {"progress": done, "eta_relative": elapsed / done - elapsed if done else 0.0, "textinfo": None,
                "current_image": base64.b64encode(job.preview).decode() if job.preview else None,
                "state": {"interrupted": job.cancel.is_set(), "skipped": False, "job_count": max(worker.admitted, 1),
                          "sampling_step": job.step, "sampling_steps": job.steps, "job": "txt2img"}}

    @app.post(prefix + "/interrupt")
    async def interrupt():
        if worker.job is not None:
            worker.job.cancel.set()
        return {}

    @app.get(prefix + "/samplers")
    async def samplers():
        names = {ours: theirs for theirs, ours in A1111_SAMPLERS.items()}
        return [{"name": names[s], "aliases": [s], "options": {}} for s in SAMPLERS]

    @app.get(prefix + "/sd-models")
    async def sd_models():
        return [{"title": n, "model_name": n, "hash": None, "sha256": None, "filename": n, "config": None}
                for n in await asyncio.to_thread(worker.names)]

    @app.get(prefix + "/options")
    async def get_options():
        from .models import DEFAULT

        return {"sd_model_checkpoint": worker.model_name or DEFAULT}

    @app.post(prefix + "/options")
    async def set_options(body: Options, request: Request):
        if body.sd_model_checkpoint:
            job = Job(steps=0)

            await run_job(request, worker, job, lambda: worker.use(body.sd_model_checkpoint))
        return {}

    @app.post(prefix + "/png-info")
    async def png_info(body: PngInfo):
        from .png import parse_parameters

        from PIL import Image

        try:
            with Image.open(io.BytesIO(base64_bytes(body.image, "image"))) as image:  # the chunks, not the pixels
                text = image.info.get("parameters") or ""
        except OSError as err:
            raise BadInput(f"image: not a base64 PNG ({err})") from err
        parsed = parse_parameters(text) if text else None
        return {"info": text, "items": {"parameters": text} if text else {},
                "parameters": {"prompt": parsed.prompt, **parsed.params} if parsed else {}}

    @app.get(prefix + "/scripts")
    async def scripts():
        return {"txt2img": [], "img2img": []}


def _own(app: FastAPI, worker: Worker):
    @app.get("/healthz")
    async def healthz():
        return {"ok": True, "model": worker.model_name, "queued": worker.admitted}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        with open(os.path.join(STATIC, "index.html")) as f:
            return f.read()

    @app.get("/glassdiff/models")
    async def models():
        from .models import list_models

        def listed():  # each model's facts, and the sampling its folder asks for (a student's: lcm)
            from .folders import model_sampling

            return [{**{k: v for k, v in dataclasses.asdict(e).items() if k != "path"},
                     "sampling": model_sampling(e.path)} for e in list_models(worker.models_dir)]
        return await asyncio.to_thread(listed)

    @app.get("/glassdiff/config")
    async def config():
        return {"samplers": list(SAMPLERS), "defaults": dataclasses.asdict(SamplingConfig()),
                "max_steps": MAX_STEPS, "max_guidance": MAX_GUIDANCE, "model": worker.model_name}

    @app.post("/glassdiff/generate")
    async def generate(body: Generate, request: Request):
        """Server-sent events: one `step` per step (the image the model expects so far), then `done` or `error`."""
        picture = await asyncio.to_thread(page_picture, body)
        cfg = sampling(body, worker.own_sampling(body.model), picture)
        worker.admit()
        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        job = Job(steps=steps_run(cfg.steps, picture))

        def put(item):
            loop.call_soon_threadsafe(events.put_nowait, item)

        def on_step(job):
            put(("step", {"step": job.step, "steps": job.steps, "elapsed": time.perf_counter() - job.started,
                                 "preview": "data:image/png;base64," + base64.b64encode(job.preview).decode()}))

        def work():
            try:
                result = worker.generate(body.prompt, cfg, body.model, job, on_step, picture)
                png = png_bytes(result.image, result.infotexts[0])
                name = worker.save_bytes(png)
                regions = [{"prompt": r.prompt, "box": list(r.box)} for r in result.plans[0] or []]
                put(("done", {"image": "data:image/png;base64," + base64.b64encode(png).decode(),
                                     "name": name, "parameters": result.infotexts[0], "seed": result.seeds[0],
                                     "seconds": time.perf_counter() - job.started, "regions": regions,
                                     **grounding_payload(result)}))
            except Cancelled:
                put(("cancelled", {}))
            except BadInput as err:
                put(("error", {"detail": str(err)}))
            except Exception as err:  # noqa: BLE001 - the stream says what went wrong instead of ending mute
                put(("error", {"detail": f"{type(err).__name__}: {err}"}))
            finally:
                worker.leave()
                put(None)

        worker.cpu.submit(work)

        async def stream():
            try:
                while True:
                    item = await events.get()
                    if item is None:
                        return
                    kind, data = item
                    yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
            finally:
                job.cancel.set()  # a client that leaves stops the job within one step

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/glassdiff/explain", response_class=HTMLResponse)
    async def explain(body: Explain, request: Request):
        """The explainer's report (the file `glassdiff explain` writes) for these parameters; with `student`, the
        teacher's steps beside the student's 1, 2 and 4 (`glassdiff explain --student`)."""
        from .explain.report import build_report

        picture = await asyncio.to_thread(page_picture, body)
        cfg = sampling(body, worker.own_sampling(body.model), picture)
        job = Job(steps=0)

        def work():
            pipe = worker.use(body.model)
            # a report runs the prompt, a guidance sweep and maybe a second prompt: about three generations
            worker.check_cost(pipe, dataclasses.replace(cfg, steps=min(MAX_STEPS, 3 * cfg.steps)), job)
            student = worker.student(body.student) if body.student else None
            return build_report(pipe, body.prompt, cfg, compare=body.compare or None,
                                picture=picture.inputs if picture else None, student=student)[0]
        return HTMLResponse(await run_job(request, worker, job, work))

    @app.get("/glassdiff/history")
    async def history():
        return await asyncio.to_thread(worker.history)

    @app.get("/glassdiff/outputs/{name}")
    async def output(name: str):
        path = os.path.join(worker.outputs, name)
        if not NAME.match(name) or not os.path.isfile(path):
            return JSONResponse({"detail": "no such image"}, status_code=404)
        return FileResponse(path, media_type="image/png", filename=name)


def _docs(app: FastAPI):
    """FastAPI's /docs, working offline: a plain page over the OpenAPI schema (no script from a CDN)."""
    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs():
        rows = "".join(f"<tr><td><code>{method.upper()}</code></td><td><code>{path}</code></td>"
                       f"<td>{(op.get('summary') or '')}</td></tr>"
                       for path, ops in app.openapi()["paths"].items() for method, op in ops.items())
        return (f"<!doctype html><title>glassdiff API</title><h1>glassdiff API</h1><p>The schema: "
                f"<a href='/openapi.json'>/openapi.json</a></p><table>{rows}</table>")


def check_bind(host: str, token: str | None, api_auth: str | None):
    """Any address but loopback needs --token or --api-auth."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not (token or api_auth):
        raise BadInput(f"binding {host} lets other machines in: give --token T or --api-auth USER:PASS, or bind "
                       f"127.0.0.1")
    if api_auth and ":" not in api_auth:
        raise BadInput("--api-auth takes USER:PASS")


def serve(host: str, port: int, models_dir: str | None, outputs: str, queue_size: int, token: str | None,
          api_auth: str | None, max_seconds: float = 300.0):
    import signal

    import uvicorn

    check_bind(host, token, api_auth)
    cpu = MainThreadExecutor()
    server = uvicorn.Server(uvicorn.Config(create_app(models_dir, outputs, queue_size, token, api_auth, max_seconds,
                                                      cpu), host=host, port=port, log_level="warning"))
    web = threading.Thread(target=server.run, name="glassdiff-http")  # HTTP on a thread, the model on main
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    web.start()
    print(f"glassdiff serve: http://{host}:{port}/  (A1111 API at /sdapi/v1, schema at /openapi.json)", flush=True)
    try:
        cpu.run(until=lambda: not web.is_alive())
    except KeyboardInterrupt:
        server.should_exit = True
        web.join(timeout=30)
        raise
    if not server.started:
        raise BadInput(f"cannot serve on {host}:{port}: the address is in use or not this machine's; "
                       f"choose another --port or --host")
