"""The paper's building blocks, registered under the names ``ModelConfig`` uses.

ASPP and scSE are smp's modules (they match the paper's description); the decoder
layer, the standard center block and the classification head follow the paper and the
authors' code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base.modules import SCSEModule
from segmentation_models_pytorch.decoders.deeplabv3.decoder import ASPP
from torch import nn

from pneumobench.experiment.config import ModelConfig
from pneumobench.models.extensions import (
    register_attention,
    register_center_block,
    register_head,
)

__all__ = ["ASPPCenter", "ChannelWiseSCSE", "ConcatPoolHead", "ConvBnReLU", "StdCenter"]


class ConvBnReLU(nn.Sequential):
    """Conv3x3 (no bias) + BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


@register_center_block("std")
class StdCenter(nn.Sequential):
    """The baseline center block: two Conv3x3+BN+ReLU at the encoder's width (512, the paper's)
    or at ``config.center_channels``."""

    def __init__(self, in_channels: int, config: ModelConfig) -> None:
        width = config.center_channels or in_channels
        super().__init__(ConvBnReLU(in_channels, width), ConvBnReLU(width, width))
        self.out_channels = width


@register_center_block("aspp")
class ASPPCenter(nn.Module):
    """ASPP replacing the center block: 1x1, three dilated 3x3, image pooling, 1x1 projection."""

    def __init__(self, in_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.aspp = ASPP(
            in_channels,
            config.aspp_channels,
            atrous_rates=config.aspp_rates,
            separable=False,
            dropout=config.aspp_dropout,
        )
        self.out_channels = config.aspp_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aspp(x)


register_attention("none")(lambda channels: nn.Identity())
register_attention("scse")(SCSEModule)


@register_attention("scse_cc")
class ChannelWiseSCSE(nn.Module):
    """scSE as the authors' code builds it: the channel gate of smp's (squeeze by 16), but a
    spatial gate of C channels (Conv1x1 C->C with bias) instead of one; ``x*cSE + x*sSE``."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channel_gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, kernel_size=1),
            nn.Sigmoid(),
        )
        self.spatial_gate = nn.Sequential(nn.Conv2d(channels, channels, kernel_size=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.channel_gate(x) + x * self.spatial_gate(x)


@register_head("concat_pool")
class ConcatPoolHead(nn.Module):
    """Concatenated global average and max pooling, Conv1x1 to 32, Conv1x1 to 1 (authors' head)."""

    def __init__(self, in_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Conv2d(2 * in_channels, config.cls_hidden, kernel_size=1),
            nn.Conv2d(config.cls_hidden, 1, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)], dim=1)
        return self.fc(pooled).flatten()
