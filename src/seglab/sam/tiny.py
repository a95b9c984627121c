"""A tiny, randomly initialised SAM built from upstream's own modules: for tests and benchmarks, not for use.

Its masks mean nothing (no weights are trained); it exercises every path (encoder, prompts, decoder,
automatic masks, file formats, loading a weight file) in milliseconds. Register it to reach it through
``--sam-model``::

    from seglab.sam import register_sam_type, tiny_sam_type
    register_sam_type(tiny_sam_type())            # --sam-model tiny, a file saved from build_tiny_sam()
"""

from __future__ import annotations

from functools import partial

from torch import nn

from seglab.sam.model import SamType, require_segment_anything

TINY_DEPTH, TINY_WIDTH = 2, 32


def build_tiny_sam(image_size: int = 64, depth: int = TINY_DEPTH, width: int = TINY_WIDTH) -> nn.Module:
    """SAM with a ``depth``-block ViT of width ``width`` on ``image_size`` inputs (patches of 8 px).

    The prompt width is 16 and the decoder has one two-way block; pixel mean and std are upstream's.
    """
    modeling = require_segment_anything().modeling
    patch, prompt_dim = 8, 16
    grid = image_size // patch
    encoder = modeling.ImageEncoderViT(
        img_size=image_size, patch_size=patch, embed_dim=width, depth=depth, num_heads=2, mlp_ratio=2.0,
        out_chans=prompt_dim, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), use_rel_pos=True,
        window_size=max(1, grid // 2), global_attn_indexes=(depth - 1,))
    prompts = modeling.PromptEncoder(embed_dim=prompt_dim, image_embedding_size=(grid, grid),
                                     input_image_size=(image_size, image_size), mask_in_chans=4)
    decoder = modeling.MaskDecoder(
        transformer_dim=prompt_dim, num_multimask_outputs=3, iou_head_depth=2, iou_head_hidden_dim=16,
        transformer=modeling.TwoWayTransformer(depth=1, embedding_dim=prompt_dim, num_heads=2, mlp_dim=32))
    return modeling.Sam(image_encoder=encoder, prompt_encoder=prompts, mask_decoder=decoder,
                        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


def tiny_sam_type(name: str = "tiny", image_size: int = 64) -> SamType:
    """The :class:`SamType` of :func:`build_tiny_sam` (not registered until :func:`register_sam_type`)."""
    return SamType(name, TINY_DEPTH, TINY_WIDTH, "tiny_sam.pth (saved from build_tiny_sam)", "a few hundred kB",
                   builder=partial(build_tiny_sam, image_size))
