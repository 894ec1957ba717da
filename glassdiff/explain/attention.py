"""Words to pixels: the UNet's cross-attention, recorded during a real run (DAAM-style).

Each cross-attention layer keeps its own processor for its output (so the
image is bit-identical with or without recording); beside it we compute the
softmax(q k^T / sqrt(d)) it used, average over heads, upsample every layer to
the latent's size and sum over layers. One map per step, token and image,
for the prompted half of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _RecordingProcessor:
    def __init__(self, inner, sink, images: int):
        self.inner, self.sink, self.images = inner, sink, images

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        out = self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        if encoder_hidden_states is not None:
            # the prompted rows come last in the UNet's batch: only they are worth the extra q k^T
            hidden_states, encoder_hidden_states = hidden_states[-self.images:], encoder_hidden_states[-self.images:]
            batch, n_query, _ = hidden_states.shape
            q = attn.to_q(hidden_states).view(batch, n_query, attn.heads, -1).transpose(1, 2)
            k = attn.to_k(encoder_hidden_states).view(batch, encoder_hidden_states.shape[1], attn.heads, -1)
            probs = (q @ k.permute(0, 2, 3, 1) * attn.scale).softmax(dim=-1)  # (B, heads, N, L)
            self.sink(probs.mean(dim=1))  # (B, N, L)
        return out


class AttentionRecorder:
    """Installs recording processors on a UNet's cross-attention layers; `detach()` restores them."""

    def __init__(self, unet, tokens: list[str], images: int = 1, mask=None):
        """mask: 1 for the prompt's own tokens, 0 for padding (which has no word to show: CLIP for SD 2.x pads
        with "!"); without it, padding is known by its token."""
        self.unet, self.tokens = unet, tokens
        self.real = [bool(m) for m in mask] if mask is not None else [True] * len(tokens)
        self.clip = "<|startoftext|>" in tokens
        self.original = unet.attn_processors
        self.pending: list[torch.Tensor] = []
        self.per_step: list[torch.Tensor] = []  # each (B, L, h, w)
        unet.set_attn_processor({name: _RecordingProcessor(proc, self.pending.append, images)
                                 if "attn2" in name else proc for name, proc in self.original.items()})

    def detach(self):
        self.unet.set_attn_processor(self.original)

    def on_step(self, record) -> None:
        height, width = record.x_t.shape[-2:]
        if record.eps_cond is None or record.regional:
            # guidance 0: the prompt is never read, so no word steers anything; a layout step reads the regions'
            # prompts, not this one
            self.pending.clear()
            self.per_step.append(torch.zeros(record.x_t.shape[0], len(self.tokens), height, width))
            return
        total = torch.zeros(())
        for probs in self.pending:
            scale = round((height * width / probs.shape[1]) ** 0.5)
            grid = probs.transpose(1, 2).reshape(probs.shape[0], probs.shape[2], height // scale, width // scale)
            total = total + F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)
        self.pending.clear()
        self.per_step.append(total)

    def maps(self, steps: slice | None = None) -> torch.Tensor:
        """(B, L, h, w) summed over the chosen steps (all by default), each token's map scaled to [0, 1]."""
        stacked = torch.stack(self.per_step[steps or slice(None)])  # (S, B, L, h, w)
        summed = stacked.sum(0)
        return summed / summed.amax(dim=(-2, -1), keepdim=True).clamp(min=1e-12)

    def word_maps(self, image: int = 0, steps: slice | None = None) -> list[tuple[str, torch.Tensor]]:
        """[(word, map (h, w) in [0, 1])] for the prompt's words, word pieces summed, special tokens left out."""
        maps = self.maps(steps)[image]
        words: list[tuple[str, torch.Tensor]] = []
        open_word = False  # CLIP's BPE: a piece without "</w>" goes on into the next one
        for i, token in enumerate(self.tokens):
            if not self.real[i] or token in ("[CLS]", "[SEP]", "[PAD]", "<|startoftext|>", "<|endoftext|>"):
                continue
            piece = token[2:] if token.startswith("##") else token.replace("</w>", "")
            if words and (token.startswith("##") or open_word):
                words[-1] = (words[-1][0] + piece, words[-1][1] + maps[i])
            else:
                words.append((piece, maps[i].clone()))
            open_word = self.clip and not token.endswith("</w>")
        return [(w, m / m.max().clamp(min=1e-12)) for w, m in words]
