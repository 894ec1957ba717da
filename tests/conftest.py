import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# PyTorch's eager UNet is the reference the tests compare against; tests/test_engine.py runs the fast path
os.environ.setdefault("GLASSDIFF_ENGINE", "torch")


@pytest.fixture(scope="session")
def text_encoder():
    from glassdiff.text import TextEncoder

    return TextEncoder()


@pytest.fixture(scope="session")
def tiny_pipe(text_encoder):
    """A random tiny model with the real text encoder: 16x16 images, 8x8x4 latents."""
    from glassdiff.autoencoder import build_autoencoder
    from glassdiff.config import autoencoder_preset, scheduler_preset, unet_preset
    from glassdiff.denoiser import build_unet
    from glassdiff.pipeline import Pipeline

    torch.manual_seed(0)
    unet = build_unet(unet_preset("tiny", text_encoder.dim))
    vae = build_autoencoder(autoencoder_preset("tiny"))
    return Pipeline(unet, vae, text_encoder, scheduler_preset())


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_pipe, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny")
    tiny_pipe.save(path)
    return path


@pytest.fixture
def one_thread():
    """Float sums depend on the thread count: every run being compared uses one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
