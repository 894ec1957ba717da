"""The fast paths: a UNet run by ONNX Runtime or OpenVINO instead of PyTorch.

A small UNet on a 16x16 latent does little arithmetic per step; most of PyTorch's time goes to dispatching
hundreds of small operators. ONNX Runtime runs the same graph, exported once per model (cached under
$GLASSDIFF_CACHE/onnx, named by the model's hash), with its operators fused. The loop does not change: the
denoiser is the same callable (x_in, t, context) -> output, so StepRecords hold the fast UNet's own outputs.
PyTorch's eager UNet stays the reference (tests compare against it; images agree within 1/255) and is what the
explainer runs, since attention maps need PyTorch's attention processors. README, "Performance", has the figures.

Engines: "torch" (the reference); "onnx" (glassdiff's own models only); "openvino" (any model: OpenVINO's CPU
plugin runs Stable Diffusion's wide UNets faster than PyTorch does; converted once per model and cached, in fp32);
"auto": onnx for glassdiff's own models when onnxruntime is installed, torch for Stable Diffusion's (OpenVINO's
compiled copy of the weights more than doubles the peak memory, and its first use converts for a minute: asked
for, not a default). Wherever an engine cannot load or convert a model, generation runs PyTorch's UNet, with a
notice.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from .config import ENGINES, BadInput, notice
from .denoiser import unet_input

ENV = "GLASSDIFF_ENGINE"
PACKAGES = {"onnx": "onnxruntime", "openvino": "openvino"}  # what each fast engine needs installed
NAMES = {"onnx": "ONNX Runtime", "openvino": "OpenVINO"}
PER_SHAPE_BYTES = 2**28  # OpenVINO compiles a UNet whose weights take at most this once per input shape


def installed(engine: str) -> bool:
    """Whether the engine's runtime can be imported ("onnx": onnxruntime, "openvino": openvino)."""
    import importlib.util

    return engine == "torch" or importlib.util.find_spec(PACKAGES[engine]) is not None


def chosen_engine(engine: str, own_model: bool, one_shot: bool = False) -> str:
    """The engine a pipeline runs: `engine` as asked ($GLASSDIFF_ENGINE when "auto": a preference, which a Stable
    Diffusion model, running on PyTorch, passes over), auto resolved: for glassdiff's own models OpenVINO, the
    fastest a step, or ONNX Runtime for a `one_shot` process (one call: OpenVINO compiles each new input shape)."""
    from_env = engine == "auto"
    engine = os.environ.get(ENV, "auto") if from_env else engine
    if engine not in ENGINES:
        raise BadInput(f"unknown engine {engine!r} (from --engine or ${ENV}); choose one of {', '.join(ENGINES)}")
    if engine == "onnx" and not own_model and from_env:
        return "torch"
    if engine == "onnx" and not own_model:
        raise BadInput("--engine onnx runs glassdiff's own models; a Stable Diffusion model runs on --engine torch "
                       "(or auto)")
    if engine != "auto" and not installed(engine):
        package = PACKAGES[engine]
        raise BadInput(f"--engine {engine} needs {package}: pip install {package}, or use --engine torch")
    if engine == "auto":
        preferred = ("onnx", "openvino") if one_shot else ("openvino", "onnx")
        return next((e for e in preferred if installed(e)), "torch") if own_model else "torch"
    return engine


class OnnxDenoiser:
    """The sampling loop's denoiser, run by an ONNX Runtime session (the coordinate planes appended as Denoiser
    appends them)."""

    def __init__(self, path: str, in_channels: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.in_channels = in_channels

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feed = {"x": _array(unet_input(x_in, self.in_channels)), "t": _array(t.to(torch.float32)),
                "context": _array(context)}
        return torch.from_numpy(self.session.run(None, feed)[0])


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to(torch.float32).numpy())


class OpenVinoDenoiser:
    """The sampling loop's denoiser, run by OpenVINO's CPU plugin in fp32. A small UNet (the default model's) is
    compiled once per input shape, which runs its step faster than one compiled for any shape; a large one (SD's)
    once for any shape, as each compiled copy holds its own repacked weights."""

    def __init__(self, path: str, in_channels: int):
        import openvino as ov

        self.core, self.path, self.in_channels = ov.Core(), path, in_channels
        self.settings = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                         "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        self.per_shape = os.path.getsize(path.removesuffix(".xml") + ".bin") <= PER_SHAPE_BYTES
        self.requests = {}  # input shapes (or None: any) -> infer request
        if not self.per_shape:
            self.requests[None] = self._compile(None)

    def _compile(self, shapes):
        model = self.core.read_model(self.path)
        if shapes:
            model.reshape(dict(zip(model.inputs, shapes)))
        return self.core.compile_model(model, "CPU", self.settings).create_infer_request()

    def __call__(self, x_in: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        inputs = [_array(unet_input(x_in, self.in_channels)), _array(t.to(torch.float32)), _array(context)]
        shapes = tuple(a.shape for a in inputs) if self.per_shape else None
        if shapes not in self.requests:
            self.requests[shapes] = self._compile(shapes)
        out = self.requests[shapes].infer(inputs)
        return torch.from_numpy(out[0].copy())  # the request reuses its output buffer at the next call


def cached_path(engine: str, model_hash: str) -> str:
    """Where an engine's copy of a model's UNet is cached, named by the model and the versions that made it."""
    from .checkpoints import cache_dir

    versions = f"torch{torch.__version__.split('+')[0]}"
    if engine == "openvino":
        import openvino

        versions += f"-openvino{openvino.__version__.split('-')[0]}"
    suffix = "xml" if engine == "openvino" else "onnx"
    return os.path.join(cache_dir(), engine, f"{model_hash}-{versions}-unet.{suffix}")


def fast_denoiser(engine: str, unet, model_hash: str, latent_size: int, context_shape: tuple[int, int]):
    """The model's UNet in the engine's runtime, converted on first use (atomically, into the cache); None, with a
    notice, where that fails (the caller runs PyTorch's)."""
    name, export, runner = _runtime(engine)
    path = cached_path(engine, model_hash)
    try:
        if not os.path.exists(path):
            export(unet, path, latent_size, context_shape)
        return runner(path, unet.config.in_channels)
    except Exception as err:  # noqa: BLE001 - any failure of the fast path falls back to the reference path
        notice(f"the {name} UNet is not available ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
               f"running PyTorch's (--engine torch says so without trying)")
        return None


class _Positional(torch.nn.Module):
    """The UNet with positional inputs and a plain tensor out, as the exporter traces it."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, context):
        return self.unet(x, t, encoder_hidden_states=context, return_dict=False)[0]


def _traceable(unet) -> _Positional:
    """The UNet for a tracer, in PyTorch's default layout (a copy where it runs channels-last)."""
    if any(p.dim() == 4 and not p.is_contiguous() for p in unet.parameters()):
        unet = copy.deepcopy(unet).to(memory_format=torch.contiguous_format)
    return _Positional(unet).eval()


def _example(unet, latent_size: int, context_shape: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    return (torch.randn(2, unet.config.in_channels, latent_size, latent_size), torch.full((2,), 500.0),
            torch.randn(2, *context_shape))


def export_unet(unet, path: str, latent_size: int, context_shape: tuple[int, int]):
    """Trace the UNet to ONNX with any batch, latent size and prompt length."""
    import warnings

    from .io import atomic_path

    notice(f"preparing this model's UNet for ONNX Runtime, once (a few seconds; cached in {os.path.dirname(path)})")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    module, example = _traceable(unet), _example(unet, latent_size, context_shape)
    axes = {"x": {0: "batch", 2: "height", 3: "width"}, "t": {0: "batch"}, "context": {0: "batch", 1: "tokens"},
            "out": {0: "batch", 2: "height", 3: "width"}}
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python branches the UNet takes the same way
        torch.onnx.export(module, example, tmp, input_names=["x", "t", "context"], output_names=["out"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)


def export_openvino(unet, path: str, latent_size: int, context_shape: tuple[int, int]):
    """Convert the UNet to OpenVINO's format (free shapes), traced on a small latent; its .bin is written before its
    .xml, each renamed into place, so the .xml's presence means both are whole. Everything is stored in fp32:
    OpenVINO's fp16 storage also rounds the traced graph's own constants (the timestep embedding's frequencies),
    which moved the default model's pixels by 3/255."""
    import shutil
    import tempfile
    import warnings

    import openvino as ov

    params = sum(p.numel() for p in unet.parameters())
    notice(f"preparing this model's UNet for OpenVINO, once ({'a few seconds' if params < 1e8 else 'a minute or two'}"
           f"; cached in {os.path.dirname(path)})")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    module, example = _traceable(unet), _example(unet, min(latent_size, 16), context_shape)
    scratch = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".converting-")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ov.convert_model(module, example_input=example)
        ov.save_model(model, os.path.join(scratch, "unet.xml"), compress_to_fp16=False)
        stem = path.removesuffix(".xml")
        os.replace(os.path.join(scratch, "unet.bin"), stem + ".bin")
        os.replace(os.path.join(scratch, "unet.xml"), path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _runtime(engine: str):
    """The engine's name, converter and denoiser."""
    converters = {"onnx": (export_unet, OnnxDenoiser), "openvino": (export_openvino, OpenVinoDenoiser)}
    return NAMES[engine], *converters[engine]
