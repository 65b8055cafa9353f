"""Epoch selection: which epoch of a run is reported, by one of three rules.

- ``last``: the last epoch (the paper's text, and the authors' baseline row);
- ``best-val``: the epoch with the best validation Dice, ties broken by validation accuracy and
  then by the earlier epoch (the authors' code for 15 of Table 6's 16 rows). The epoch is chosen
  on the same half that is reported, so the score is optimistic;
- ``best-heldout``: the best Dice on a slice of the training half that the run does not train
  on (honest selection); the reported score is still the validation half's.

The rules read a run's ``curves`` (one dict per epoch: ``epoch``, ``val_dice``,
``val_accuracy`` and, with a held-out slice, ``heldout_dice``, ``heldout_accuracy``). The
training loop calls ``select_epoch`` after every epoch and the reports call it afterwards on
the stored curves, so both pick the same epoch by construction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from pneumobench.core.results import RunResult

__all__ = ["RULES", "SelectionError", "reselect", "select_epoch"]

RULES = ("last", "best-val", "best-heldout")
_SCORES = {"best-val": ("val_dice", "val_accuracy"), "best-heldout": ("heldout_dice", "heldout_accuracy")}


class SelectionError(ValueError):
    """A rule the curves cannot answer (no held-out scores, no validated epoch, unknown rule)."""


def select_epoch(curves: Sequence[dict[str, Any]], rule: str) -> int:
    """The 1-based epoch that ``rule`` reports, among the epochs in ``curves``."""
    if rule not in RULES:
        raise SelectionError(f"epoch selection {rule!r} is not one of {', '.join(RULES)}")
    if not curves:
        raise SelectionError("no epochs to select from")
    if rule == "last":
        return int(curves[-1]["epoch"])
    dice_key, accuracy_key = _SCORES[rule]
    candidates = [entry for entry in curves if entry.get(dice_key) is not None]
    if not candidates:
        raise SelectionError(f"rule {rule!r} needs {dice_key} scores, and no epoch has them")
    best = max(candidates, key=lambda entry: (entry[dice_key], entry[accuracy_key], -entry["epoch"]))
    return int(best["epoch"])


def reselect(run: RunResult, rule: str) -> RunResult:
    """``run`` as if ``rule`` had chosen its reported epoch: per-image Dice and correctness, Dice and
    accuracy of that epoch, from the stored per-epoch scores (no retraining). The class probabilities
    of another epoch are not stored; its predicted classes are (``_predicted_classes``), as
    probabilities 0 and 1, so that a classifier constant at that epoch is still flagged. Mask
    fractions and example masks are kept only where the epoch is the one the run reported. The
    result's ``config["epoch_selection"]`` is ``rule`` (its key is the trained run's), so a judge
    knows which rule picked the epoch even where it is the one the run reported."""
    scores = run.per_epoch()
    if scores is None:
        raise SelectionError(f"{run.config_name} seed {run.seed} was stored without per-epoch scores")
    epoch = select_epoch(run.curves, rule)
    config = {**run.config, "epoch_selection": rule}
    if epoch == run.reported_epoch:
        return dataclasses.replace(run, config=config)
    row = scores.row(epoch)
    entry = run.curves[epoch - 1]
    return dataclasses.replace(
        run,
        config=config,
        dice_per_image=scores.dice[row].tolist(),
        correct=scores.correct[row].tolist(),
        cls_prob=_predicted_classes(run, scores.correct[row]),
        mask_fraction=[],
        examples={},
        dice=entry["val_dice"],
        accuracy=entry["val_accuracy"],
        selected_epoch=epoch,
    )


def _predicted_classes(run: RunResult, correct: np.ndarray) -> list[float]:
    """Each image's predicted class (1.0 positive, 0.0 negative) at the epoch whose per-image
    correctness is ``correct``: the image's label where it was right, the other class where it
    was wrong; the label is the reported epoch's prediction where that one was right, the
    other class where not. Empty when the run holds no reported probabilities."""
    if not run.cls_prob:
        return []
    label = (np.asarray(run.cls_prob) > 0.5) == np.asarray(run.correct, bool)
    return np.where(np.asarray(correct, bool), label, ~label).astype(float).tolist()
