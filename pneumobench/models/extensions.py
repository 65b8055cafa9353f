"""Extension points of the U-Net: center blocks, decoder attentions, classification heads.

Each registry maps a name (used in ``ModelConfig``) to a factory:

- center block: ``factory(in_channels, config) -> nn.Module`` with an ``out_channels`` attribute;
- decoder attention: ``factory(channels) -> nn.Module`` keeping the shape (a factory that takes
  ``reduction`` is given ``ModelConfig.attention_reduction`` when that is set);
- classification head: ``factory(in_channels, config) -> nn.Module`` mapping (N,C,h,w) to (N,).

A new block is a class decorated with the matching ``register_*`` in any module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pneumobench.core.registry import Registry

__all__ = [
    "ATTENTIONS",
    "CENTER_BLOCKS",
    "HEADS",
    "register_attention",
    "register_center_block",
    "register_head",
]

CENTER_BLOCKS: Registry[Callable[..., Any]] = Registry("center block")
ATTENTIONS: Registry[Callable[..., Any]] = Registry("decoder attention")
HEADS: Registry[Callable[..., Any]] = Registry("classification head")


def register_center_block(name: str) -> Callable[[Any], Any]:
    return CENTER_BLOCKS.register(name)


def register_attention(name: str) -> Callable[[Any], Any]:
    return ATTENTIONS.register(name)


def register_head(name: str) -> Callable[[Any], Any]:
    return HEADS.register(name)
