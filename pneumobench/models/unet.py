"""The paper's U-Net: ResNet encoder, registered center block, 4-layer decoder, global layer,
full-resolution mask logits and a classification branch on the center block's output."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pneumobench.config import ModelConfig
from pneumobench.models.blocks import DecoderLayer, GlobalLayer
from pneumobench.models.encoder import build_encoder
from pneumobench.models.registry import ATTENTIONS, CENTER_BLOCKS, HEADS

__all__ = ["InputSizeError", "PaperUNet"]

ENCODER_STRIDE = 32


class InputSizeError(ValueError):
    """An input the model cannot take (channels, rank, or a size not a multiple of 32)."""


class PaperUNet(nn.Module):
    """forward: (N,3,H,W) -> (mask logits (N,1,H,W), class logits (N,)); H, W multiples of 32."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config.encoder, config.encoder_weights)
        channels = list(self.encoder.out_channels)  # resnet34: [3, 64, 64, 128, 256, 512]
        self.center = CENTER_BLOCKS.get(config.center)(channels[-1], config)
        attention = ATTENTIONS.get(config.attention)
        width = config.decoder_channels
        skip_channels = channels[-2:0:-1]  # 256, 128, 64, 64
        in_channels = [self.center.out_channels] + [width] * (len(skip_channels) - 1)
        self.decoder = nn.ModuleList(
            DecoderLayer(cin, skip, width, attention) for cin, skip in zip(in_channels, skip_channels)
        )
        global_in = width * len(self.decoder) if config.hypercolumns else width
        self.global_layer = GlobalLayer(global_in, width)
        self.final_conv = nn.Conv2d(width, 1, kernel_size=1)
        self.cls_head = HEADS.get(config.head)(self.center.out_channels, config)
        for module in [*self.decoder, self.global_layer, self.final_conv]:
            _init_decoder_weights(module)
        nn.init.constant_(self.final_conv.bias, config.mask_bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(x)
        features = self.encoder(x)
        center = self.center(features[-1])
        decoded = [center]
        for layer, skip in zip(self.decoder, features[-2:0:-1]):
            decoded.append(layer(decoded[-1], skip))
        outputs = decoded[1:]
        if self.config.hypercolumns:
            size = outputs[-1].shape[-2:]
            upsampled = [F.interpolate(o, size=size, mode="bilinear", align_corners=True) for o in outputs[:-1]]
            top = torch.cat([*upsampled, outputs[-1]], dim=1)
        else:
            top = outputs[-1]
        top = F.interpolate(self.global_layer(top), scale_factor=2, mode="bilinear", align_corners=True)
        return self.final_conv(top), self.cls_head(center)


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


def _init_decoder_weights(module: nn.Module) -> None:
    """He initialisation of decoder convolutions, unit BatchNorm (the authors' ``initialize``)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
