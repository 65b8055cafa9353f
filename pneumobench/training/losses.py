"""Segmentation losses and the paper's joint segmentation + classification loss.

``lovasz_hinge`` is batched: every image is sorted at once along one dimension and the
Lovász gradient uses an integer cumulative sum, so the result is exact and deterministic
on the GPU. Segmentation losses live in a registry: a new loss is one decorated function
``(mask_logits, masks) -> scalar`` with its default classification weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pneumobench.core.registry import Registry

__all__ = [
    "SEG_LOSSES",
    "LossInputError",
    "SegLoss",
    "joint_loss",
    "lovasz_hinge",
    "register_seg_loss",
]

LOVASZ_VARIANTS = ("hinge", "symmetric_elu")


class LossInputError(ValueError):
    """Inputs a loss cannot take: mismatched shapes, non-binary targets, unknown variant."""


def _as_flat_images(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,H,W) or (N,1,H,W) pairs -> (N, H*W) logits and float targets."""
    if logits.shape != target.shape:
        raise LossInputError(f"logits and target shapes differ: {tuple(logits.shape)} vs {tuple(target.shape)}")
    if logits.ndim == 4 and logits.shape[1] == 1:
        logits, target = logits[:, 0], target[:, 0]
    if logits.ndim != 3:
        raise LossInputError(f"expected (N,H,W) or (N,1,H,W), got {tuple(logits.shape)}")
    return logits.reshape(logits.shape[0], -1), target.reshape(target.shape[0], -1)


def _lovasz_rows(errors: torch.Tensor, truth: torch.Tensor, elu: bool) -> torch.Tensor:
    """Lovász extension of the Jaccard loss for each row of ``errors`` (R, P) -> (R,).

    Rows are sorted by decreasing error; the gradient is the increment of the Jaccard
    loss along that order, from integer cumulative counts (exact, order-independent).
    """
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    truth_sorted = torch.gather(truth, 1, order)
    positives = truth_sorted.sum(dim=1, keepdim=True)
    seen_pos = torch.cumsum(truth_sorted, dim=1)
    seen_neg = torch.cumsum(1 - truth_sorted, dim=1)
    jaccard = 1.0 - (positives - seen_pos).to(errors.dtype) / (positives + seen_neg).to(errors.dtype)
    grad = torch.diff(jaccard, dim=1, prepend=torch.zeros_like(jaccard[:, :1]))
    surrogate = F.elu(errors_sorted) + 1.0 if elu else F.relu(errors_sorted)
    return (surrogate * grad).sum(dim=1)


def lovasz_hinge(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    per_image: bool = True,
    variant: str = "hinge",
    validate: bool = True,
) -> torch.Tensor:
    """Binary Lovász hinge loss (Berman et al. 2018), batched.

    ``variant="hinge"``: Berman's loss, ReLU of the hinge errors ``1 - logit * sign``.
    ``variant="symmetric_elu"``: the paper's authors' version, ELU+1 of the errors,
    averaged over the mask and its complement (negated logits). ``per_image`` averages
    the loss of each image; otherwise the batch is one flattened image. ``validate=False``
    skips the binary-target check, the one host sync, for trusted targets on a hot path.
    """
    if variant not in LOVASZ_VARIANTS:
        raise LossInputError(f"unknown Lovász variant {variant!r}; choose from {LOVASZ_VARIANTS}")
    flat_logits, flat_target = _as_flat_images(logits, target)
    if flat_logits.shape[1] == 0:
        raise LossInputError("Lovász loss of images with zero pixels is undefined")
    truth = flat_target.to(torch.int64)
    if validate and not torch.equal(truth.to(flat_target.dtype), flat_target):
        raise LossInputError("target must be binary (0/1)")
    if not per_image:
        flat_logits, truth = flat_logits.reshape(1, -1), truth.reshape(1, -1)
    errors = 1.0 - flat_logits * (2 * truth - 1).to(flat_logits.dtype)
    if variant == "hinge":
        return _lovasz_rows(errors, truth, elu=False).mean()
    # Negating the logits and complementing the target leaves the errors unchanged.
    mask_side = _lovasz_rows(errors, truth, elu=True)
    complement_side = _lovasz_rows(errors, 1 - truth, elu=True)
    return ((mask_side + complement_side) / 2).mean()


SegLossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SegLoss:
    """A registered segmentation loss and the classification weight the paper pairs it with."""

    fn: SegLossFn
    cls_weight: float


SEG_LOSSES: Registry[SegLoss] = Registry("segmentation loss")


def register_seg_loss(name: str, *, cls_weight: float) -> Callable[[SegLossFn], SegLossFn]:
    """Decorator: register ``fn(mask_logits, masks) -> scalar`` as segmentation loss ``name``."""

    def decorate(fn: SegLossFn) -> SegLossFn:
        SEG_LOSSES.register(name)(SegLoss(fn, cls_weight))
        return fn

    return decorate


@register_seg_loss("bce", cls_weight=0.1)
def bce_loss(mask_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Pixel-wise binary cross-entropy (the paper's baseline segmentation loss)."""
    return F.binary_cross_entropy_with_logits(mask_logits, masks.to(mask_logits.dtype))


@register_seg_loss("lovasz", cls_weight=0.01)
def lovasz_loss(mask_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The paper's Lovász loss: the authors' symmetric ELU+1 variant, per image."""
    return lovasz_hinge(mask_logits.float(), masks.float(), per_image=True, variant="symmetric_elu", validate=False)


@register_seg_loss("lovasz_batch", cls_weight=0.01)
def lovasz_batch_loss(mask_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The authors' Lovász loss over the whole batch as one image (Berman's ``per_image=False``).

    The smoke profile trains its Lovász rows with it: on its 32x32 masks it converges further
    (Dice 0.02-0.05 higher) and lovasz+aspp+hypercolumns+scse's Dice varies between seeds by
    0.008 instead of 0.021-0.036 (docs/regression.md, ``.ci/lovasz_spread.py``).
    """
    return lovasz_hinge(mask_logits.float(), masks.float(), per_image=False, variant="symmetric_elu", validate=False)


def joint_loss(
    mask_logits: torch.Tensor,
    cls_logits: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    *,
    seg_loss: str = "bce",
    cls_weight: float | None = None,
) -> torch.Tensor:
    """The paper's training loss: ``seg_loss(mask) + cls_weight * BCE(class)``.

    ``cls_weight=None`` takes the weight registered with the loss (0.1 for BCE, 0.01 for
    Lovász, as in the paper's section 4.1).
    """
    entry = SEG_LOSSES.get(seg_loss)
    weight = entry.cls_weight if cls_weight is None else cls_weight
    cls_term = F.binary_cross_entropy_with_logits(cls_logits.reshape(-1), labels.reshape(-1).to(cls_logits.dtype))
    return entry.fn(mask_logits, masks) + weight * cls_term
