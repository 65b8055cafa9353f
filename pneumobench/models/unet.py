"""The paper's U-Net, assembled: ResNet encoder, registered center block, the paper's decoder
(``models.decoder``) and a registered classification head on the center block's output."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch
from torch import nn

from pneumobench.experiment.config import ModelConfig
from pneumobench.models.decoder import PaperDecoder
from pneumobench.models.encoder import build_encoder
from pneumobench.models.extensions import ATTENTIONS, CENTER_BLOCKS, HEADS

__all__ = ["InputSizeError", "PaperUNet"]

ENCODER_STRIDE = 32


class InputSizeError(ValueError):
    """An input the model cannot take (channels, rank, or a size not a multiple of 32)."""


class PaperUNet(nn.Module):
    """forward: (N,3,H,W) -> (mask logits (N,1,H,W), class logits (N,)); H, W multiples of 32.

    Encoder -> registered center block -> ``PaperDecoder`` (mask) and registered head (class)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_encoder(
            config.encoder, config.encoder_weights, stem_width=config.encoder_stem_width, widths=config.encoder_widths
        )
        channels: list[int] = list(self.encoder.out_channels)  # type: ignore[arg-type]  # resnet34: [3, 64, 64, 128, 256, 512]
        self.center = CENTER_BLOCKS.get(config.center)(channels[-1], config)
        skip_channels = channels[-2:0:-1]  # 256, 128, 64, 64
        self.decoder = PaperDecoder(self.center.out_channels, skip_channels, config, _attention_factory(config))
        self.cls_head = HEADS.get(config.head)(self.center.out_channels, config)
        self.decoder.initialize(config.mask_bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(x)
        features = self.encoder(x)
        center = self.center(features[-1])
        return self.decoder(center, features[-2:0:-1]), self.cls_head(center)


def _attention_factory(config: ModelConfig) -> Callable[[int], nn.Module]:
    """The registered decoder attention, given ``config.attention_reduction`` as its ``reduction``
    when it takes one (blocks that squeeze nothing, as ``none``, have no use for it)."""
    factory = ATTENTIONS.get(config.attention)
    if config.attention_reduction is None or "reduction" not in inspect.signature(factory).parameters:
        return factory
    return functools.partial(factory, reduction=config.attention_reduction)


def _check_input(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputSizeError(f"expected input of shape (N,3,H,W), got {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height % ENCODER_STRIDE or width % ENCODER_STRIDE:
        raise InputSizeError(
            f"input size {height}x{width} is not a multiple of {ENCODER_STRIDE} on both sides: the "
            f"ResNet encoder downsamples by {ENCODER_STRIDE} (try {_nearest_valid(height)}x"
            f"{_nearest_valid(width)})"
        )


def _nearest_valid(size: int) -> int:
    return max(ENCODER_STRIDE, round(size / ENCODER_STRIDE) * ENCODER_STRIDE)
