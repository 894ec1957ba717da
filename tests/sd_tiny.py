"""Tiny random Stable Diffusion pipelines built with diffusers' and transformers' own classes, as a user's folder is.

SD 1.x style: epsilon, CLIP with quick_gelu, convolutional projections in the transformer blocks, 8 heads.
SD 2.x style: v-prediction, gelu, linear projections, heads of a fixed width. Each has a CLIP tokenizer made
from a byte-level vocabulary with no merges (every character a token), saved by transformers.
"""

import json
import os

import torch


def clip_tokenizer(folder: str):
    from transformers import CLIPTokenizer

    from glassdiff.checkpoints import byte_characters

    os.makedirs(folder, exist_ok=True)
    chars = byte_characters()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump({token: i for i, token in enumerate(tokens)}, f)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), model_max_length=77)


def build_sd(folder: str, v_prediction: bool = False, seed: int = 0, clip_vocabulary: bool = False):
    """A StableDiffusionPipeline of random weights (16x16 images, 8x8x4 latents), saved to `folder`.

    clip_vocabulary: CLIP's own (49,408 tokens, as a single file's text encoder has), else a byte vocabulary."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    if clip_vocabulary:
        from glassdiff.checkpoints import clip_tokenizer as shipped_tokenizer

        tokenizer = shipped_tokenizer(pad="!" if v_prediction else "<|endoftext|>")
    else:
        tokenizer = clip_tokenizer(folder + "-vocabulary")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1,
        max_position_embeddings=77, projection_dim=64, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_act="gelu" if v_prediction else "quick_gelu"))
    # 32 groups in every norm and heads of 64 channels (SD 2.x) or 8 heads (SD 1.x), as the original code has them
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(64, 128) if v_prediction else (32, 64),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=64,
        attention_head_dim=(1, 2) if v_prediction else 8, use_linear_projection=v_prediction)
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
                        latent_channels=4, sample_size=16,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1,
                              prediction_type="v_prediction" if v_prediction else "epsilon")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    config_path = os.path.join(folder, "scheduler", "scheduler_config.json")
    with open(config_path) as f:
        config = json.load(f)
    with open(config_path, "w") as f:  # as SD 1.5's and 2.1's own files have it (DDIM would clip otherwise)
        json.dump({**config, "clip_sample": False}, f)
    return folder
