"""Here, from the repository root: MiniLM for a device that has no PyPI and takes at most 64 MiB of upload.

Writes .gpu/minilm: the tokenizer and config, the encoder layers in fp16, and of
the 30,522 word-embedding rows only those the shapes world's captions use (fp32).
Caption embeddings from the rebuilt encoder differ from the original's by about
0.1% (relative norm). scripts/gpu/unpack_minilm.py rebuilds the package there.
"""

import os
import random
import shutil

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from glassdiff.text import minilm_folder
from glassdiff.world import sample_spec

OUT = ".gpu/minilm"


def caption_token_ids(tokenizer) -> list[int]:
    """Every word piece of 360,000 training and held-out captions of all mixes, and the special tokens."""
    rng = random.Random(0)
    captions = [""] + [sample_spec(rng, heldout=heldout, p_color=p_color, p_cell=p_cell)["prompt"]
                       for _ in range(20000) for heldout in (False, True)
                       for p_color in (0.0, 0.4, 1.0) for p_cell in (0.0, 0.7, 1.0)]
    return sorted({i for row in tokenizer(captions)["input_ids"] for i in row} | set(tokenizer.all_special_ids))


def main():
    source = minilm_folder()
    os.makedirs(OUT, exist_ok=True)
    ids = caption_token_ids(AutoTokenizer.from_pretrained(source))
    weights = load_file(os.path.join(source, "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    pruned = {k: v.half() for k, v in weights.items() if k != key}
    pruned.update(kept_ids=torch.tensor(ids), kept_rows=weights[key][ids].clone(),
                  vocab_shape=torch.tensor(weights[key].shape))
    save_file(pruned, os.path.join(OUT, "pruned.safetensors"), metadata={"key": key})
    for name in os.listdir(source):
        if name != "model.safetensors" and os.path.isfile(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), OUT)
    print(f"{OUT}: {len(ids)} word pieces kept")


if __name__ == "__main__":
    main()
