"""Models of the paper: ``build_model(config)`` and the helpers the training stages need."""

from __future__ import annotations

from torch import nn

from pneumobench.experiment.config import ExperimentConfig, ModelConfig
from pneumobench.models import blocks as _blocks  # noqa: F401  (registers the paper's blocks)
from pneumobench.models.encoder import EncoderWeightsError
from pneumobench.models.unet import InputSizeError, PaperUNet

__all__ = [
    "EncoderWeightsError",
    "InputSizeError",
    "PaperUNet",
    "build_model",
    "count_parameters",
    "freeze_encoder",
    "unfreeze_encoder",
]


def build_model(config: ExperimentConfig | ModelConfig) -> PaperUNet:
    """The U-Net of ``config`` (an experiment or just its model part)."""
    model_config = config.model if isinstance(config, ExperimentConfig) else config
    return PaperUNet(model_config)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def freeze_encoder(model: PaperUNet) -> None:
    """Stage 1 of the paper: encoder weights frozen, its BatchNorm layers still train
    (affine terms and running statistics), as in the authors' code."""
    for module in model.encoder.modules():
        trainable = _is_batchnorm(module)
        for param in module.parameters(recurse=False):
            param.requires_grad_(trainable)


def unfreeze_encoder(model: PaperUNet) -> None:
    """Stage 2 of the paper: every parameter trains."""
    for param in model.encoder.parameters():
        param.requires_grad_(True)
