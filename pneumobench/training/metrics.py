"""The paper's evaluation metrics: per-image Dice and classification accuracy.

Dice follows the paper (section 1.3): a pixel is predicted positive when ``pred >
threshold``; an image with an empty target scores 1 if the prediction is empty too and
0 otherwise. Scores are computed per image, so runs can be paired image by image, and
stay on the input's device (no host sync unless ``validate`` checks the inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "MetricInputError",
    "ScoreAccumulator",
    "accuracy",
    "batch_mean",
    "correct_per_image",
    "dice_per_image",
]

ArrayLike = torch.Tensor | np.ndarray


class MetricInputError(ValueError):
    """Inputs a metric cannot score: wrong shape, non-finite or non-binary values."""


def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        array = np.ascontiguousarray(x)
        # torch cannot wrap read-only memory (memory-mapped datasets): copy those
        return torch.from_numpy(array if array.flags.writeable else array.copy())
    if isinstance(x, torch.Tensor):
        return x
    raise MetricInputError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _check_finite(x: torch.Tensor, name: str) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise MetricInputError(f"{name} contains NaN or infinite values")


def _check_binary(x: torch.Tensor, name: str) -> None:
    if x.dtype != torch.bool and not bool(((x == 0) | (x == 1)).all()):
        raise MetricInputError(f"{name} must be binary (0/1 or bool)")


def _as_images(x: torch.Tensor, name: str) -> torch.Tensor:
    """(N,H,W) or (N,1,H,W) -> (N, H*W)."""
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise MetricInputError(f"{name} must have shape (N,H,W) or (N,1,H,W), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1)


def dice_per_image(
    pred: ArrayLike, target: ArrayLike, threshold: float = 0.5, *, validate: bool = True
) -> torch.Tensor:
    """Dice of each image, as a float tensor of shape (N,) on ``pred``'s device.

    ``pred`` holds probabilities or a binary mask, ``target`` a binary mask. With
    ``validate=False`` the shape check still runs but the value checks (finite, binary),
    which need a host sync, are skipped: use it on a hot path with trusted inputs.
    """
    pred_t, target_t = _as_tensor(pred, "pred"), _as_tensor(target, "target")
    pred_flat, target_flat = _as_images(pred_t, "pred"), _as_images(target_t, "target")
    if pred_flat.shape != target_flat.shape:
        raise MetricInputError(f"pred and target shapes differ: {tuple(pred_t.shape)} vs {tuple(target_t.shape)}")
    if validate:
        _check_finite(pred_flat, "pred")
        _check_binary(target_flat, "target")
    positive = pred_flat > threshold
    truth = target_flat.to(device=positive.device, dtype=torch.bool)
    intersection = (positive & truth).sum(dim=1)
    total = positive.sum(dim=1) + truth.sum(dim=1)
    dice = 2.0 * intersection.float() / total.clamp_min(1).float()
    return torch.where(total == 0, torch.ones_like(dice), dice)


def correct_per_image(
    prob: ArrayLike, label: ArrayLike, threshold: float = 0.5, *, validate: bool = True
) -> torch.Tensor:
    """Whether each image's class prediction ``prob > threshold`` matches ``label`` (bool, (N,))."""
    prob_t, label_t = _as_tensor(prob, "prob").reshape(-1), _as_tensor(label, "label").reshape(-1)
    if prob_t.shape != label_t.shape:
        raise MetricInputError(f"prob and label sizes differ: {prob_t.numel()} vs {label_t.numel()}")
    if validate:
        _check_finite(prob_t, "prob")
        _check_binary(label_t, "label")
    return (prob_t > threshold) == label_t.to(device=prob_t.device, dtype=torch.bool)


def accuracy(prob: ArrayLike, label: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of images whose class prediction ``prob > threshold`` matches ``label``."""
    correct = correct_per_image(prob, label, threshold)
    if correct.numel() == 0:
        raise MetricInputError("accuracy of zero images is undefined")
    return float(correct.float().mean())


@dataclass
class ScoreAccumulator:
    """Gathers per-image Dice and class correctness over batches, on the batches' device.

    ``update`` never syncs with the host; ``dice``/``correct`` concatenate once at the end,
    in the order the batches arrived (so runs over the same ids line up image by image).
    """

    threshold: float = 0.5
    _dice: list[torch.Tensor] = field(default_factory=list, repr=False)
    _correct: list[torch.Tensor] = field(default_factory=list, repr=False)
    _prob: list[torch.Tensor] = field(default_factory=list, repr=False)
    _fraction: list[torch.Tensor] = field(default_factory=list, repr=False)

    def update(self, mask_prob: ArrayLike, mask: ArrayLike, cls_prob: ArrayLike, label: ArrayLike) -> None:
        """Score one batch: mask probabilities vs masks, class probabilities vs labels."""
        self._dice.append(dice_per_image(mask_prob, mask, self.threshold, validate=False))
        cls_prob_t = _as_tensor(cls_prob, "cls_prob").reshape(-1)
        self._correct.append(correct_per_image(cls_prob_t, label, self.threshold, validate=False))
        self._prob.append(cls_prob_t.detach().float())
        mask_prob_t = _as_tensor(mask_prob, "mask_prob")
        self._fraction.append((mask_prob_t.reshape(len(cls_prob_t), -1) > self.threshold).float().mean(dim=1))

    def _cat(self, parts: list[torch.Tensor]) -> torch.Tensor:
        if not parts:
            raise MetricInputError("no batches were scored")
        return torch.cat(parts)

    @property
    def dice(self) -> torch.Tensor:
        """Per-image Dice, (N,) float."""
        return self._cat(self._dice)

    @property
    def correct(self) -> torch.Tensor:
        """Per-image class correctness, (N,) bool."""
        return self._cat(self._correct)

    @property
    def cls_prob(self) -> torch.Tensor:
        """Per-image class probability, (N,) float."""
        return self._cat(self._prob)

    @property
    def mask_fraction(self) -> torch.Tensor:
        """Per-image fraction of pixels predicted positive, (N,) float (0: empty mask, 1: full)."""
        return self._cat(self._fraction)

    def summary(self) -> dict[str, float]:
        """Mean Dice and accuracy over every image seen (one host sync)."""
        return {"dice": float(self.dice.mean()), "accuracy": float(self.correct.float().mean())}


def batch_mean(values: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """The mean of ``values`` (N,), or with ``batch_size`` the mean of the means of consecutive
    batches of that size (the authors' averaging: a short last batch weighs as much as a full one)."""
    if batch_size is None:
        return values.mean()
    return torch.stack([part.mean() for part in values.split(batch_size)]).mean()
