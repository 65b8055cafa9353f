"""Epoch selection rules on hand-made curves, and re-reading a stored run at another rule's epoch."""

import dataclasses

import numpy as np
import pytest

from pneumobench.core.results import RunResult, encode_epoch_scores
from pneumobench.training.selection import SelectionError, reselect, select_epoch


def test_selection_rules_on_hand_made_curves():
    curves = [
        {"epoch": 1, "val_dice": 0.50, "val_accuracy": 0.7, "heldout_dice": 0.40, "heldout_accuracy": 0.6},
        {"epoch": 2, "val_dice": 0.60, "val_accuracy": 0.7, "heldout_dice": 0.45, "heldout_accuracy": 0.6},
        {"epoch": 3, "val_dice": 0.60, "val_accuracy": 0.8, "heldout_dice": 0.30, "heldout_accuracy": 0.6},
        {"epoch": 4, "val_dice": None, "val_accuracy": None, "heldout_dice": None, "heldout_accuracy": None},
        {"epoch": 5, "val_dice": 0.55, "val_accuracy": 0.9, "heldout_dice": 0.45, "heldout_accuracy": 0.6},
    ]
    assert select_epoch(curves, "last") == 5
    assert select_epoch(curves, "best-val") == 3  # tied Dice: the higher accuracy
    assert select_epoch(curves, "best-heldout") == 2  # tied Dice and accuracy: the earlier epoch
    with pytest.raises(SelectionError, match="heldout_dice"):
        select_epoch([{"epoch": 1, "val_dice": 0.5, "val_accuracy": 0.5}], "best-heldout")
    with pytest.raises(SelectionError, match="^epoch selection 'best' is not one of last, best-val, best-heldout$"):
        select_epoch(curves, "best")
    with pytest.raises(SelectionError, match="^no epochs to select from$"):
        select_epoch([], "last")



def _run_with_epochs(selected_epoch=3):
    dice = np.array([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7], [0.4, 0.5, 0.6]], np.float32)
    correct = np.array([[True, False, False], [True, True, True], [False, True, False]])
    curves = [
        {"epoch": e + 1, "val_dice": float(dice[e].mean()), "val_accuracy": float(correct[e].mean())} for e in range(3)
    ]
    return RunResult(
        {}, "k", "aspp", 0, "f", ["a", "b", "c"], dice[2].astype(float).tolist(), [0.2, 0.7, 0.4],
        correct[2].tolist(), curves[2]["val_dice"], curves[2]["val_accuracy"], curves, 3, 1.0, 1.0,
        mask_fraction=[0.1, 0.2, 0.3], selected_epoch=selected_epoch, examples={"a": "1 2"},
        epoch_scores=encode_epoch_scores([1, 2, 3], dice, correct),
    )


def test_reselect_reads_the_rules_epoch_image_by_image():
    run = _run_with_epochs()
    same = reselect(run, "last")  # the reported epoch: the run itself, marked with the rule that picked it
    assert dataclasses.replace(same, config={}) == run and same.config == {"epoch_selection": "last"}
    best = reselect(run, "best-val")
    assert best.config == {"epoch_selection": "best-val"}
    assert best.selected_epoch == 2 and best.reported_epoch == 2
    assert best.dice_per_image == pytest.approx([0.9, 0.8, 0.7]) and best.correct == [True, True, True]
    assert all(type(value) is float for value in best.dice_per_image)
    assert best.dice == run.curves[1]["val_dice"] and best.accuracy == 1.0
    # labels from epoch 3 (predicted F T F, correct F T F): 1, 1, 1; epoch 2 was right on all three
    assert best.cls_prob == [1.0, 1.0, 1.0]
    assert best.mask_fraction == [] and best.examples == {}  # not stored per epoch
    assert run.selected_epoch == 3 and run.dice_per_image == pytest.approx([0.4, 0.5, 0.6])  # untouched
    with pytest.raises(SelectionError, match="heldout_dice"):
        reselect(run, "best-heldout")


def test_reselect_needs_stored_epoch_scores():
    run = _run_with_epochs()
    run.epoch_scores = {}
    with pytest.raises(SelectionError, match="aspp seed 0 was stored without per-epoch scores"):
        reselect(run, "best-val")


def test_a_classifier_constant_at_the_reselected_epoch_is_still_flagged():
    """Once reselect emptied the class probabilities, and a run flagged degenerate came back with
    no flags at another rule's epoch."""
    from pneumobench.judging.claims import run_flags

    dice = np.array([[0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6]], np.float32)
    correct = np.array([[True, False, True, False], [True, True, False, False]])  # epoch 1: every image positive
    labels = np.array([1.0, 0.0, 1.0, 0.0])
    curves = [{"epoch": 1, "val_dice": 0.9, "val_accuracy": 0.5}, {"epoch": 2, "val_dice": 0.75, "val_accuracy": 0.5}]
    run = RunResult(
        {}, "k", "aspp", 0, "f", list("abcd"), dice[1].astype(float).tolist(), [0.9, 0.1, 0.2, 0.8],
        correct[1].tolist(), 0.75, 0.5, curves, 2, 1.0, 1.0, mask_fraction=[0.1] * 4, selected_epoch=2,
        epoch_scores=encode_epoch_scores([1, 2], dice, correct),
    )
    assert ((np.asarray(run.cls_prob) > 0.5) == run.correct).tolist() == labels.astype(bool).tolist()
    assert run_flags(run) == []
    early = reselect(run, "best-val")
    assert early.selected_epoch == 1 and early.cls_prob == [1.0] * 4
    assert run_flags(early) == ["constant classifier (every image positive)"]


def test_a_reported_probability_of_exactly_one_half_was_a_negative_answer():
    """The classifier answers positive above 0.5 only (``metrics``): a probability of 0.5 that was
    right means the label was negative, so at an epoch where that image was wrong it answered positive."""
    dice = np.array([[0.5, 0.5], [0.9, 0.8]], np.float32)
    correct = np.array([[False, True], [True, True]])
    curves = [{"epoch": 1, "val_dice": 0.9, "val_accuracy": 0.5}, {"epoch": 2, "val_dice": 0.85, "val_accuracy": 1.0}]
    run = RunResult(
        {}, "k", "aspp", 0, "f", list("ab"), dice[1].astype(float).tolist(), [0.5, 0.9], correct[1].tolist(),
        0.85, 1.0, curves, 2, 1.0, 1.0, selected_epoch=2, epoch_scores=encode_epoch_scores([1, 2], dice, correct),
    )
    assert reselect(run, "best-val").cls_prob == [1.0, 1.0]  # image a: label negative, wrong at epoch 1
