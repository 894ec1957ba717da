"""glassdiff: text-to-image latent diffusion on a CPU that shows its work."""

__version__ = "0.1.0"


def __getattr__(name):  # lazy: no work at import time
    if name == "Pipeline":
        from .pipeline import Pipeline
        return Pipeline
    raise AttributeError(name)
