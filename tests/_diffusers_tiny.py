"""Tiny random-weight diffusers video pipelines (Wan, LTX-Video), built in code and saved with ``save_pretrained``,
so tests and benchmarks load them by path through the real node with no download.

The text encoder is a 2-layer (UM)T5 of width 32, its tokenizer a word-level vocabulary made here: a tokenizer
saved by one transformers major version may not load under another, so nothing is read from the Hub. With random
weights only the seed visibly changes the frames (prompts and step counts barely do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = ("<pad> </s> <unk> a cat dog runs in the park at night day red blue green sky sea forest robot city "
         "walks flies over under big small").split()


def tokenizer() -> Any:
    """A word-level T5-style tokenizer (pad 0, eos 1, unk 2) built from :data:`WORDS`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _t5_config(cls_name: str) -> Any:
    import transformers

    cfg = getattr(transformers, cls_name)
    return cfg(vocab_size=len(WORDS), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
               relative_attention_num_buckets=8)


def _wan_parts(channels: int) -> tuple[Any, Any]:
    """A 2-layer Wan transformer over ``channels`` latent channels and its (UM)T5 text encoder, seeded."""
    import torch
    from diffusers import WanTransformer3DModel
    from transformers import UMT5EncoderModel

    torch.manual_seed(0)
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                        in_channels=channels, out_channels=channels, text_dim=32, freq_dim=256,
                                        ffn_dim=32, num_layers=2, cross_attn_norm=True,
                                        qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    torch.manual_seed(0)
    return transformer, UMT5EncoderModel(_t5_config("UMT5Config"))


def build_wan(folder: str | Path) -> Path:
    """A tiny WanPipeline (16 latent channels, 2 transformer layers, a 3-channel-wide VAE) saved to ``folder``.

    Sizes: multiples of 16; frames: 4k+1."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    transformer, text_encoder = _wan_parts(16)
    pipe = WanPipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                       text_encoder=text_encoder, tokenizer=tokenizer())
    pipe.save_pretrained(str(folder))
    return Path(folder)


def build_ltx(folder: str | Path) -> Path:
    """A tiny LTXPipeline saved to ``folder`` (it also loads as LTXImageToVideoPipeline).

    Every ``decoder_*`` argument of the VAE is given: left out, they default to the full-size decoder (~950 MB).
    Sizes: multiples of 32 (the pipeline's own check); frames: 8k+1 (this VAE compresses time 4x, so 4k+1 works
    too, but the family rule is the real model's)."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5EncoderModel

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    torch.manual_seed(0)
    four, five = (8, 8, 8, 8), (1, 1, 1, 1, 1)
    vae = AutoencoderKLLTXVideo(latent_channels=8, block_out_channels=four, decoder_block_out_channels=four,
                                spatio_temporal_scaling=(True, True, False, False),
                                decoder_spatio_temporal_scaling=(True, True, False, False), layers_per_block=five,
                                decoder_layers_per_block=five, decoder_inject_noise=(False,) * 5,
                                upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, patch_size=1,
                                patch_size_t=1, encoder_causal=True, decoder_causal=False)
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(_t5_config("T5Config"))
    pipe = LTXPipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
                       text_encoder=text_encoder, tokenizer=tokenizer())
    pipe.save_pretrained(str(folder))
    return Path(folder)


def build_wan_ti2v(folder: str | Path) -> Path:
    """A tiny WanImageToVideoPipeline shaped like Wan 2.2's 5B model: a patchified VAE that compresses 16x (its
    sizes: multiples of 32), the image's latent put in place of the first frame's (``expand_timesteps``), no image
    encoder. Frames: 4k+1."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
                           latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True])
    transformer, text_encoder = _wan_parts(48)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    pipe = WanImageToVideoPipeline(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                                   tokenizer=tokenizer(), transformer_2=None, image_encoder=None, image_processor=None,
                                   boundary_ratio=None, expand_timesteps=True)
    pipe.save_pretrained(str(folder))
    return Path(folder)
