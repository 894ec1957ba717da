"""The fast path: glassdiff's own UNets run by ONNX Runtime instead of PyTorch.

A small UNet on a 16x16 latent does little arithmetic per step; most of PyTorch's time goes to dispatching
hundreds of small operators. ONNX Runtime runs the same graph, exported once per model (cached under
$GLASSDIFF_CACHE/onnx, named by the model's hash), with its operators fused. The loop does not change: the
denoiser is the same callable (x_in, t, context) -> output, so StepRecords hold the fast UNet's own outputs.
PyTorch's eager UNet stays the reference (tests compare against it; images agree within 1/255) and is what the
explainer runs, since attention maps need PyTorch's attention processors. README, "Performance", has the figures.

Engines: "torch" (the reference), "onnx" (glassdiff's own models only), or "auto": onnx for glassdiff's own models
when onnxruntime is installed, torch for Stable Diffusion's (wide UNets are compute-bound, where PyTorch's oneDNN
kernels already keep the CPU busy; their export would be gigabytes) and wherever the export fails (with a notice).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from .config import ENGINES, BadInput, notice
from .denoiser import unet_input

ENV = "GLASSDIFF_ENGINE"


def onnxruntime_installed() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def chosen_engine(engine: str, own_model: bool) -> str:
    """The engine a pipeline runs: `engine` as asked ($GLASSDIFF_ENGINE when "auto": a preference, which a Stable
    Diffusion model, running on PyTorch, passes over), auto resolved."""
    from_env = engine == "auto"
    engine = os.environ.get(ENV, "auto") if from_env else engine
    if engine not in ENGINES:
        raise BadInput(f"unknown engine {engine!r} (from --engine or ${ENV}); choose one of {', '.join(ENGINES)}")
    if engine == "onnx" and not own_model and from_env:
        return "torch"
    if engine == "onnx" and not own_model:
        raise BadInput("--engine onnx runs glassdiff's own models; a Stable Diffusion model runs on --engine torch "
                       "(or auto)")
    if engine == "onnx" and not onnxruntime_installed():
        raise BadInput("--engine onnx needs onnxruntime: pip install onnxruntime, or use --engine torch")
    if engine == "auto":
        return "onnx" if own_model and onnxruntime_installed() else "torch"
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


def onnx_path(model_hash: str) -> str:
    from .checkpoints import cache_dir

    return os.path.join(cache_dir(), "onnx", f"{model_hash}-torch{torch.__version__.split('+')[0]}-unet.onnx")


def onnx_denoiser(unet, model_hash: str, latent_size: int, context_shape: tuple[int, int]) -> OnnxDenoiser | None:
    """The model's UNet in ONNX Runtime, exported on first use (atomically, into the cache); None, with a notice,
    where that fails (the caller runs PyTorch's)."""
    path = onnx_path(model_hash)
    try:
        if not os.path.exists(path):
            export_unet(unet, path, latent_size, context_shape)
        return OnnxDenoiser(path, unet.config.in_channels)
    except Exception as err:  # noqa: BLE001 - any failure of the fast path falls back to the reference path
        notice(f"the ONNX Runtime UNet is not available ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
               f"running PyTorch's (--engine torch says so without trying)")
        return None


class _Positional(torch.nn.Module):
    """The UNet with positional inputs and a plain tensor out, as the exporter traces it."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, context):
        return self.unet(x, t, encoder_hidden_states=context, return_dict=False)[0]


def export_unet(unet, path: str, latent_size: int, context_shape: tuple[int, int]):
    """Trace the UNet (a copy, in PyTorch's default layout) to ONNX with any batch, latent size and prompt length."""
    import warnings

    from .io import atomic_path

    notice(f"preparing this model's UNet for ONNX Runtime, once (a few seconds; cached in {os.path.dirname(path)})")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    module = _Positional(copy.deepcopy(unet).to(memory_format=torch.contiguous_format)).eval()
    example = (torch.randn(2, unet.config.in_channels, latent_size, latent_size), torch.full((2,), 500.0),
               torch.randn(2, *context_shape))
    axes = {"x": {0: "batch", 2: "height", 3: "width"}, "t": {0: "batch"}, "context": {0: "batch", 1: "tokens"},
            "out": {0: "batch", 2: "height", 3: "width"}}
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python branches the UNet takes the same way
        torch.onnx.export(module, example, tmp, input_names=["x", "t", "context"], output_names=["out"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
