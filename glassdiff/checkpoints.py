"""Single-file Stable Diffusion checkpoints in the original (CompVis / A1111) key layout: read and written.

Such a file holds the UNet under model.diffusion_model.*, the autoencoder under first_stage_model.* and the text
encoder under cond_stage_model.* (OpenAI's CLIP, cond_stage_model.transformer.*, for SD 1.x; OpenCLIP,
cond_stage_model.model.*, for SD 2.x). The architecture is read from the tensors' names and shapes; the noise
schedule is Stable Diffusion's own, bundled here, and the CLIP vocabulary is the one open-clip-torch ships: nothing
is downloaded. Whether the UNet predicts the noise (epsilon) or v cannot be read from the weights: SD 1.x is
epsilon; SD 2.x is taken as v (SD 2.1 at 768x768, the common one) unless the file has a `v_pred` tensor or the
caller says otherwise (`--prediction epsilon` for an SD 2.x "base" file at 512x512).

Key names are converted by diffusers' own single-file converters on the way in; the writer, the inverse, is ours.
"""

from __future__ import annotations

import collections.abc
import os
import types

from .config import BadInput, notice

UNET, VAE = "model.diffusion_model.", "first_stage_model."
CLIP_SD1, CLIP_SD2 = "cond_stage_model.transformer.", "cond_stage_model.model."
SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
PREDICTIONS = ("epsilon", "v_prediction")
HEAD_CHANNELS = 64  # SD 2.x's heads, and every CLIP's
SD1_HEADS = 8
SCALING_FACTOR = 0.18215
SCHEDULER = dict(_class_name="PNDMScheduler", beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1,
                 clip_sample=False, timestep_spacing="leading", trained_betas=None)
RESNET_NAMES = (("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"),
                ("out_layers.3", "conv2"), ("emb_layers.1", "time_emb_proj"), ("skip_connection", "conv_shortcut"))


def is_single_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(SUFFIXES)


# ---------------- reading ----------------

def read_state(path: str) -> dict:
    """The file's tensors: safetensors memory-mapped; a .ckpt through torch.load(weights_only=True) only."""
    import torch

    if path.lower().endswith(".safetensors"):
        return SafetensorsFile(path)
    notice(f"{path} is a pickle; read with torch.load(weights_only=True), which refuses anything but tensors "
           f"(a .safetensors file is safer and loads faster)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - a refused or broken pickle is the user's file, not our fault
        raise BadInput(f"{path} cannot be read as a checkpoint of tensors ({type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else ''}); use its .safetensors version") from err
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise BadInput(f"{path} holds no dictionary of tensors")
    return state


class SafetensorsFile(collections.abc.Mapping):
    """A .safetensors file's tensors, each read from the file when asked for (no memory map, no buffer of the whole
    file): what is let go is freed, so loading an fp16 SD 1.5 file peaks near its fp32 model alone."""

    DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}

    def __init__(self, path: str):
        from .models import header_of

        self.path, (self.table, self.start) = path, header_of(path)
        size = os.path.getsize(path)
        if any(entry.get("dtype") not in self.DTYPES or entry["data_offsets"][1] + self.start > size
               for entry in self.table.values()):
            raise BadInput(f"{path} is cut short or damaged (its table names data beyond its end); download it "
                           f"again")

    def __getitem__(self, key: str):
        import torch

        entry = self.table[key]
        begin, end = entry["data_offsets"]
        raw = torch.empty(end - begin, dtype=torch.uint8, device="cpu")
        with open(self.path, "rb") as f:
            f.seek(self.start + begin)
            f.readinto(memoryview(raw.numpy()))
        return raw.view(getattr(torch, self.DTYPES[entry["dtype"]])).reshape(entry["shape"])

    def __contains__(self, key) -> bool:
        return key in self.table

    def __delitem__(self, key: str):  # forget a tensor already taken
        del self.table[key]

    def __iter__(self):
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


def kind_of(state: dict, path: str) -> str:
    """'sd1' or 'sd2'; anything else is refused with what the file looks like."""
    def has(prefix):
        return any(key.startswith(prefix) for key in state)

    def refuse(what):
        raise BadInput(f"{path} is {what}; glassdiff runs Stable Diffusion 1.x and 2.x checkpoints")

    if has("conditioner.embedders."):
        refuse("an SDXL checkpoint (not supported yet)")
    if has(UNET + "joint_blocks.") or has("joint_blocks."):
        refuse("a Stable Diffusion 3 checkpoint (not supported yet)")
    if has(UNET + "double_blocks.") or has("double_blocks.") or has("transformer_blocks.0.attn.to_add_out"):
        refuse("a Flux checkpoint (not supported yet)")
    if any("lora_" in key or ".lora." in key or key.startswith("lora") for key in state):
        refuse("a LoRA (a small add-on to a model, not a model)")
    if not has(UNET):
        if has(VAE) or has("encoder.down.") or has("decoder.up."):
            refuse("an autoencoder (VAE) alone, with no UNet")
        if has("cond_stage_model.") or has("text_model.") or has("transformer.text_model."):
            refuse("a text encoder alone, with no UNet")
        refuse("no Stable Diffusion checkpoint (it has no model.diffusion_model.* UNet tensors)")
    if not has(VAE):
        refuse("a UNet without its autoencoder (no first_stage_model.* tensors)")
    if has(CLIP_SD2):
        return "sd2"
    if has(CLIP_SD1):
        return "sd1"
    refuse("a UNet and autoencoder without a text encoder (no cond_stage_model.* tensors)")


def _indices(state: dict, prefix: str, position: int) -> list[int]:
    return sorted({int(key.split(".")[position]) for key in state if key.startswith(prefix)})


def unet_config(state: dict, native: int) -> dict:
    """diffusers' UNet2DConditionModel config from the original layout's names and shapes."""
    blocks = _indices(state, UNET + "input_blocks.", 3)
    levels = sum(f"{UNET}input_blocks.{i}.0.op.weight" in state for i in blocks) + 1
    per_level = (len(blocks) - levels) // levels  # blocks = conv_in + levels * per_level + (levels - 1) downsamplers
    channels, attention = [], []
    for level in range(levels):
        first = 1 + level * (per_level + 1)
        channels.append(state[f"{UNET}input_blocks.{first}.0.out_layers.3.weight"].shape[0])
        attention.append(f"{UNET}input_blocks.{first}.1.proj_in.weight" in state)
    proj_in = next(state[key] for key in state if key.startswith(UNET) and key.endswith("proj_in.weight"))
    linear = proj_in.ndim == 2
    context = next(state[key] for key in state if key.startswith(UNET) and key.endswith("attn2.to_k.weight"))
    down = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention]
    return dict(sample_size=native // 8, in_channels=state[UNET + "input_blocks.0.0.weight"].shape[1],
                out_channels=state[UNET + "out.2.weight"].shape[0], block_out_channels=channels,
                layers_per_block=per_level, down_block_types=down,
                up_block_types=[kind.replace("Down", "Up") for kind in reversed(down)],
                cross_attention_dim=context.shape[1], use_linear_projection=linear,
                attention_head_dim=[max(1, c // HEAD_CHANNELS) if linear else SD1_HEADS for c in channels])


def vae_config(state: dict, native: int) -> dict:
    levels = _indices(state, VAE + "encoder.down.", 3)
    channels = [state[f"{VAE}encoder.down.{i}.block.0.conv2.weight"].shape[0] for i in levels]
    return dict(in_channels=3, out_channels=3, block_out_channels=channels,
                layers_per_block=len(_indices(state, VAE + "encoder.down.0.block.", 5)),
                latent_channels=state[VAE + "quant_conv.weight"].shape[0] // 2, sample_size=native,
                down_block_types=["DownEncoderBlock2D"] * len(channels),
                up_block_types=["UpDecoderBlock2D"] * len(channels), scaling_factor=SCALING_FACTOR)


def text_config(text: dict, kind: str):
    from transformers import CLIPTextConfig

    tokens, hidden = text["embeddings.token_embedding.weight"].shape
    return CLIPTextConfig(vocab_size=tokens, hidden_size=hidden, num_attention_heads=hidden // HEAD_CHANNELS,
                          num_hidden_layers=len(_indices(text, "encoder.layers.", 2)),
                          intermediate_size=text["encoder.layers.0.mlp.fc1.weight"].shape[0],
                          max_position_embeddings=text["embeddings.position_embedding.weight"].shape[0],
                          projection_dim=hidden, hidden_act="gelu" if kind == "sd2" else "quick_gelu",
                          pad_token_id=0 if kind == "sd2" else 49407, bos_token_id=49406, eos_token_id=49407)


def load_single_file(path: str, prediction: str | None = None):
    """A Pipeline from a single-file SD 1.x or 2.x checkpoint."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint, convert_open_clip_checkpoint)
    from transformers import CLIPTextModel

    from .pipeline import Pipeline
    from .text import TextEncoder

    state = read_state(path)
    kind = kind_of(state, path)
    prediction = prediction or _prediction(state, kind, path)
    native = 768 if kind == "sd2" and prediction == "v_prediction" else 512
    with torch.device("meta"):  # the modules' own random initialisation is skipped: every weight comes from the file
        unet = UNet2DConditionModel(**unet_config(state, native))
        vae = AutoencoderKL(**vae_config(state, native))
    try:
        _take(unet, convert_ldm_unet_checkpoint(state, unet.config), state, UNET)
        _take(vae, convert_ldm_vae_checkpoint(state, vae.config), state, VAE)
        if kind == "sd2":
            shape = types.SimpleNamespace(config=types.SimpleNamespace(hidden_size=state[
                CLIP_SD2 + "token_embedding.weight"].shape[1]))
            text = convert_open_clip_checkpoint(shape, state)
        else:
            text = convert_ldm_clip_checkpoint(state)
        # the original names are transformers 4's (text_model.*); transformers 5's CLIPTextModel drops the prefix
        text = {key.removeprefix("text_model."): value for key, value in text.items()}
        text.pop("embeddings.position_ids", None)
        text_model = CLIPTextModel(text_config(text, kind))
        text_model.load_state_dict(text, strict=True)
    except (RuntimeError, KeyError, StopIteration, ValueError) as err:
        raise BadInput(f"{path}: its tensors do not form a Stable Diffusion {kind[-1]}.x model "
                       f"({str(err).splitlines()[0][:200]})") from err
    del state, text
    tokenizer = clip_tokenizer(pad="!" if kind == "sd2" else "<|endoftext|>")
    if text_model.config.vocab_size != len(tokenizer):
        raise BadInput(f"{path}: its text encoder has {text_model.config.vocab_size} tokens, CLIP's vocabulary "
                       f"{len(tokenizer)}; glassdiff reads CLIP's vocabulary only")
    return Pipeline(unet, vae, TextEncoder.from_parts(text_model, tokenizer, kind="clip", max_length=77),
                    {**SCHEDULER, "prediction_type": prediction}, source=path)


def _take(module, converted: dict, state: dict, prefix: str):
    """Give the module the file's tensors as they are, let the file's copies go, then upcast to fp32 one tensor at a
    time: an fp16 SD 1.5 file never has its UNet in memory twice over (peak memory is the fp32 model, about)."""
    module.load_state_dict(converted, strict=True, assign=True)
    for key in [key for key in state if key.startswith(prefix)]:
        del state[key]
    converted.clear()
    module.float()  # the CPU computes in fp32


def _prediction(state: dict, kind: str, path: str) -> str:
    if kind == "sd1":
        return "epsilon"
    if "v_pred" in state:
        return "v_prediction"
    notice(f"{os.path.basename(path)} is SD 2.x: read as v-prediction at 768x768 (SD 2.1); "
           f"for a 512x512 'base' model give --prediction epsilon")
    return "v_prediction"


def clip_tokenizer(pad: str = "<|endoftext|>"):
    """CLIP's tokenizer from the BPE merges that open-clip-torch ships (written once to glassdiff's cache)."""
    import gzip
    import importlib.util
    import json

    from transformers import CLIPTokenizer

    from .io import atomic_dir

    folder = os.path.join(cache_dir(), "clip-tokenizer")
    if not os.path.isfile(os.path.join(folder, "merges.txt")):
        spec = importlib.util.find_spec("open_clip")
        if spec is None or not spec.submodule_search_locations:
            raise BadInput("a single-file checkpoint needs CLIP's vocabulary from the package open-clip-torch: "
                           "pip install --no-deps open-clip-torch")
        bpe = os.path.join(spec.submodule_search_locations[0], "bpe_simple_vocab_16e6.txt.gz")
        merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
        characters = byte_characters()
        vocabulary = characters + [c + "</w>" for c in characters] + ["".join(m.split()) for m in merges]
        vocabulary += ["<|startoftext|>", "<|endoftext|>"]
        with atomic_dir(folder) as tmp:
            with open(os.path.join(tmp, "vocab.json"), "w") as f:
                json.dump({token: i for i, token in enumerate(vocabulary)}, f)
            with open(os.path.join(tmp, "merges.txt"), "w") as f:
                f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                         model_max_length=77, pad_token=pad)


def byte_characters() -> list[str]:
    """GPT-2's reversible table of the 256 bytes as printable characters, which CLIP's BPE is written in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = iter(range(256, 512))
    return [chr(b if b in printable else next(extra)) for b in range(256)]


def cache_dir() -> str:
    return os.environ.get("GLASSDIFF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "glassdiff")


# ---------------- writing ----------------

def write_single_file(pipe, path: str, half: bool = False):
    """The pipeline's weights as one .safetensors file in the original key layout (fp32, or fp16 as model sites
    hand them out)."""
    from safetensors.torch import save_file

    from .io import atomic_path

    if pipe.text_encoder.kind != "clip":
        raise BadInput("only a model with a CLIP text encoder has a Stable Diffusion single-file layout")
    state = {UNET + k: v for k, v in unet_to_original(pipe.unet).items()}
    state.update({VAE + k: v for k, v in vae_to_original(pipe.vae).items()})
    text = {"text_model." + key: value for key, value in pipe.text_encoder.model.state_dict().items()}
    sd2 = pipe.text_encoder.model.config.hidden_act == "gelu"
    state.update(clip_to_openclip(text) if sd2 else {CLIP_SD1 + k: v for k, v in text.items()})
    with atomic_path(path) as tmp:
        save_file({k: (v.half() if half else v.float()).detach().contiguous() for k, v in state.items()}, tmp)


def _renamed(state: dict, prefixes: list[tuple[str, str, tuple]]) -> dict:
    """Each key's first matching (diffusers prefix, original prefix, renames within), the rest kept."""
    out = {}
    for key, value in state.items():
        for ours, original, inner in prefixes:
            if key.startswith(ours):
                rest = key[len(ours):]
                for new, old in inner:
                    rest = new + rest[len(old):] if rest.startswith(old) else rest
                key = original + rest
                break
        out[key] = value
    return out


def unet_to_original(unet) -> dict:
    config, state = unet.config, unet.state_dict()
    per, levels = config.layers_per_block, len(config.block_out_channels)
    resnet = tuple((f"{old}.", f"{new}.") for old, new in RESNET_NAMES)
    prefixes = [("time_embedding.linear_1.", "time_embed.0.", ()), ("time_embedding.linear_2.", "time_embed.2.", ()),
                ("conv_in.", "input_blocks.0.0.", ()), ("conv_norm_out.", "out.0.", ()), ("conv_out.", "out.2.", ()),
                ("mid_block.resnets.0.", "middle_block.0.", resnet), ("mid_block.attentions.0.", "middle_block.1.", ()),
                ("mid_block.resnets.1.", "middle_block.2.", resnet)]
    for level in range(levels):
        for j in range(per):
            block = 1 + level * (per + 1) + j
            prefixes += [(f"down_blocks.{level}.resnets.{j}.", f"input_blocks.{block}.0.", resnet),
                         (f"down_blocks.{level}.attentions.{j}.", f"input_blocks.{block}.1.", ())]
        prefixes.append((f"down_blocks.{level}.downsamplers.0.conv.", f"input_blocks.{(level + 1) * (per + 1)}.0.op.",
                         ()))
        for j in range(per + 1):
            block = level * (per + 1) + j
            prefixes += [(f"up_blocks.{level}.resnets.{j}.", f"output_blocks.{block}.0.", resnet),
                         (f"up_blocks.{level}.attentions.{j}.", f"output_blocks.{block}.1.", ())]
        after = 2 if config.up_block_types[level].startswith("CrossAttn") else 1
        prefixes.append((f"up_blocks.{level}.upsamplers.0.", f"output_blocks.{level * (per + 1) + per}.{after}.", ()))
    return _renamed(state, prefixes)


def vae_to_original(vae) -> dict:
    levels = len(vae.config.block_out_channels)
    resnet = (("nin_shortcut.", "conv_shortcut."),)
    attention = (("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."),
                 ("proj_out.", "to_out.0."))
    prefixes = []
    for part in ("encoder", "decoder"):
        prefixes += [(f"{part}.conv_norm_out.", f"{part}.norm_out.", ()),
                     (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", attention)]
        prefixes += [(f"{part}.mid_block.resnets.{i}.", f"{part}.mid.block_{i + 1}.", resnet) for i in range(2)]
    for level in range(levels):
        up = levels - 1 - level  # the original numbers the decoder's levels from the bottom
        prefixes += [(f"encoder.down_blocks.{level}.downsamplers.0.", f"encoder.down.{level}.downsample.", ()),
                     (f"decoder.up_blocks.{level}.upsamplers.0.", f"decoder.up.{up}.upsample.", ())]
        for j in range(vae.config.layers_per_block + 1):
            prefixes += [(f"encoder.down_blocks.{level}.resnets.{j}.", f"encoder.down.{level}.block.{j}.", resnet),
                         (f"decoder.up_blocks.{level}.resnets.{j}.", f"decoder.up.{up}.block.{j}.", resnet)]
    # the original's attention is made of 1x1 convolutions
    return {key: value[:, :, None, None] if ".mid.attn_1." in key and value.ndim == 2 else value
            for key, value in _renamed(vae.state_dict(), prefixes).items()}


def clip_to_openclip(text: dict) -> dict:
    """A CLIPTextModel's state as OpenCLIP names it (SD 2.x): q, k and v stacked into in_proj."""
    import torch

    out = {CLIP_SD2 + "token_embedding.weight": text["text_model.embeddings.token_embedding.weight"],
           CLIP_SD2 + "positional_embedding": text["text_model.embeddings.position_embedding.weight"],
           CLIP_SD2 + "ln_final.weight": text["text_model.final_layer_norm.weight"],
           CLIP_SD2 + "ln_final.bias": text["text_model.final_layer_norm.bias"]}
    for i in _indices(text, "text_model.encoder.layers.", 3):
        ours, theirs = f"text_model.encoder.layers.{i}.", f"{CLIP_SD2}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[theirs + f"attn.in_proj_{kind}"] = torch.cat([text[ours + f"self_attn.{p}_proj.{kind}"]
                                                              for p in "qkv"])
            for new, old in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                             ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                out[theirs + f"{new}.{kind}"] = text[ours + f"{old}.{kind}"]
    return out
