"""The paper's decoder: four upsampling layers with skips, optional hypercolumns, the global layer
and the full-resolution mask logits.

``PaperUNet`` assembles encoder -> center -> ``PaperDecoder`` -> heads; this module owns the loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pneumobench.experiment.config import ModelConfig
from pneumobench.models.blocks import ConvBnReLU

__all__ = ["DecoderLayer", "GlobalLayer", "PaperDecoder"]


class DecoderLayer(nn.Module):
    """Nearest x2 upsampling, concatenation with the skip, attention, two Conv3x3+BN+ReLU, attention."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, attention) -> None:
        super().__init__()
        self.attention_in = attention(in_channels + skip_channels)
        self.convs = nn.Sequential(
            ConvBnReLU(in_channels + skip_channels, out_channels), ConvBnReLU(out_channels, out_channels)
        )
        self.attention_out = attention(out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.attention_in(torch.cat([x, skip], dim=1))
        return self.attention_out(self.convs(x))


class GlobalLayer(nn.Sequential):
    """Conv1x1 then Conv3x3 (64 channels), each followed by ReLU and BatchNorm, as the authors."""

    def __init__(self, in_channels: int, channels: int = 64) -> None:
        super().__init__(
            nn.Conv2d(in_channels, channels, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(channels),
        )


class PaperDecoder(nn.Module):
    """(center (N,C,h,w), skips deepest first) -> mask logits (N,1,32h,32w).

    Each layer upsamples x2 and joins its skip; with hypercolumns the four layer outputs,
    upsampled to the last one's size and concatenated, feed the global layer; the result is
    projected to one channel and upsampled x2 to the input size.
    """

    def __init__(self, center_channels: int, skip_channels: list[int], config: ModelConfig, attention) -> None:
        super().__init__()
        width = config.decoder_channels
        in_channels = [center_channels] + [width] * (len(skip_channels) - 1)
        self.layers = nn.ModuleList(
            DecoderLayer(cin, skip, width, attention) for cin, skip in zip(in_channels, skip_channels)
        )
        self.hypercolumns = config.hypercolumns
        self.global_layer = GlobalLayer(width * len(self.layers) if config.hypercolumns else width, width)
        self.final_conv = nn.Conv2d(width, 1, kernel_size=1)

    def initialize(self, mask_bias: float) -> None:
        """He initialisation of the convolutions, unit BatchNorm (the authors' ``initialize``), and
        the mask bias. The model calls it after building its heads, so their draws come first."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        assert self.final_conv.bias is not None
        nn.init.constant_(self.final_conv.bias, mask_bias)

    def forward(self, center: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        outputs = []
        x = center
        for layer, skip in zip(self.layers, skips):
            x = layer(x, skip)
            outputs.append(x)
        if self.hypercolumns:
            size = outputs[-1].shape[-2:]
            upsampled = [F.interpolate(o, size=size, mode="bilinear", align_corners=True) for o in outputs[:-1]]
            x = torch.cat([*upsampled, outputs[-1]], dim=1)
        # The authors upsample the global layer's channels, then project them to one: both are linear
        # and bilinear weights sum to 1, so projecting first is the same map at 1/C of the upsampling.
        return F.interpolate(self.final_conv(self.global_layer(x)), scale_factor=2, mode="bilinear", align_corners=True)
