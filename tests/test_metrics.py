"""Dice and accuracy: edge cases, invariants, and smp's metric as the reference."""

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import DEVICES, ReferenceCase, check_reference, host_dice, mixed_masks

from pneumobench.training.metrics import (
    MetricInputError,
    ScoreAccumulator,
    accuracy,
    correct_per_image,
    dice_per_image,
)

shapes = st.tuples(st.integers(1, 5), st.integers(1, 8), st.integers(1, 8))
binary_batches = shapes.flatmap(lambda s: st.tuples(arrays(bool, s), arrays(bool, s)))
prob_batches = shapes.flatmap(
    lambda s: st.tuples(
        arrays(np.float32, s, elements=st.floats(0, 1, width=32)), arrays(bool, s)
    )
)


@given(prob_batches)
def test_dice_in_unit_interval(batch):
    pred, target = batch
    dice = dice_per_image(pred, target)
    assert dice.shape == (pred.shape[0],)
    assert ((dice >= 0) & (dice <= 1)).all()


@given(binary_batches)
def test_dice_of_mask_with_itself_is_one_and_symmetric(batch):
    a, b = batch
    assert torch.equal(dice_per_image(a, a), torch.ones(a.shape[0]))
    assert torch.equal(dice_per_image(a, b), dice_per_image(b, a))


@pytest.mark.parametrize(
    "pred_empty, target_empty, expected",
    [(True, True, 1.0), (False, True, 0.0), (True, False, 0.0), (False, False, 1.0)],
)
def test_empty_and_non_empty_cases(pred_empty, target_empty, expected):
    full = np.zeros((1, 4, 4), bool)
    full[0, 1:3, 1:3] = True
    pred = np.zeros_like(full) if pred_empty else full
    target = np.zeros_like(full) if target_empty else full
    assert dice_per_image(pred, target).item() == expected


def test_hand_computed_value():
    pred = torch.tensor([[[0.9, 0.8], [0.2, 0.0]]])  # predicts the top row
    target = torch.tensor([[[1, 0], [1, 0]]])  # the left column
    # intersection 1 pixel, |pred| 2, |target| 2 -> 2*1/4
    assert dice_per_image(pred, target).item() == pytest.approx(0.5)


def test_pixel_at_threshold_is_negative():
    target = torch.zeros(1, 2, 2)
    assert dice_per_image(torch.full((1, 2, 2), 0.5), target).item() == 1.0
    assert dice_per_image(torch.full((1, 2, 2), 0.5001), target).item() == 0.0
    assert correct_per_image(torch.tensor([0.5]), torch.tensor([0])).item()


@given(prob_batches, st.permutations(range(5)))
def test_per_image_scores_do_not_depend_on_batch_composition(batch, order):
    pred, target = batch
    whole = dice_per_image(pred, target)
    one_by_one = torch.cat([dice_per_image(pred[i : i + 1], target[i : i + 1]) for i in range(len(pred))])
    assert torch.equal(whole, one_by_one)
    perm = [i for i in order if i < len(pred)]
    assert torch.equal(dice_per_image(pred[perm], target[perm]), whole[perm])


@given(prob_batches)
def test_channel_dimension_is_optional(batch):
    pred, target = batch
    assert torch.equal(
        dice_per_image(pred[:, None], target[:, None]), dice_per_image(pred, target)
    )


@given(prob_batches)
def test_numpy_and_torch_agree(batch):
    pred, target = batch
    assert torch.equal(
        dice_per_image(pred, target), dice_per_image(torch.from_numpy(pred), torch.from_numpy(target))
    )


def _smp_f1(pred, target):
    tp, fp, fn, tn = smp.metrics.get_stats(pred, target.long(), mode="binary", threshold=0.5)
    return smp.metrics.f1_score(tp, fp, fn, tn, reduction=None, zero_division=1.0).view(-1)


def _accumulator_dice(pred, target):
    scores = ScoreAccumulator()
    scores.update(pred, target, torch.full((len(pred),), 0.7, device=pred.device), torch.ones(len(pred), device=pred.device))
    return scores.dice


DICE_CASES = [
    ReferenceCase("dice vs smp f1", dice_per_image, _smp_f1, mixed_masks),
    ReferenceCase("dice vs the definition", dice_per_image, host_dice, mixed_masks),
    ReferenceCase("accumulator vs the definition", _accumulator_dice, host_dice, mixed_masks),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", DICE_CASES, ids=lambda case: case.name)
def test_dice_matches_its_references(case, device):
    check_reference(case, device)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda pred, target: dice_per_image(pred.roll(1, 0), target),  # scores shifted by one image
        lambda pred, target: dice_per_image(pred, target) * (1 if len(pred) == 8 else 0.5),  # wrong on chunks only
    ],
    ids=["shifted", "depends-on-the-batch"],
)
def test_the_reference_check_catches_a_wrong_metric(wrong):
    with pytest.raises(AssertionError):
        check_reference(ReferenceCase("wrong", wrong, host_dice, mixed_masks), "cpu")


@pytest.mark.parametrize(
    "pred, target, message",
    [
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, 5), "shapes differ"),
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), "must have shape"),
        (torch.tensor([[[float("nan")]]]), torch.zeros(1, 1, 1), "NaN or infinite"),
        (torch.tensor([[[float("inf")]]]), torch.zeros(1, 1, 1), "NaN or infinite"),
        (torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5), "must be binary"),
        ([[0.0]], torch.zeros(1, 1, 1), "torch.Tensor or numpy.ndarray"),
    ],
)
def test_bad_inputs_raise(pred, target, message):
    with pytest.raises(MetricInputError, match=message):
        dice_per_image(pred, target)


def test_accuracy_and_errors():
    prob = np.array([0.9, 0.1, 0.6, 0.4])
    label = np.array([1, 0, 0, 1])
    assert accuracy(prob, label) == 0.5
    assert correct_per_image(prob, label).tolist() == [True, True, False, False]
    with pytest.raises(MetricInputError, match="sizes differ"):
        accuracy(prob, label[:3])
    with pytest.raises(MetricInputError, match="NaN"):
        accuracy(np.array([np.nan]), np.array([1]))
    with pytest.raises(MetricInputError, match="zero images"):
        accuracy(np.zeros(0), np.zeros(0))


@given(prob_batches, st.integers(1, 4))
def test_accumulator_matches_whole_batch(batch, batch_size):
    pred, target = batch
    n = len(pred)
    cls_prob = torch.linspace(0, 1, n)
    labels = torch.from_numpy(target.reshape(n, -1).any(1))
    scores = ScoreAccumulator()
    for i in range(0, n, batch_size):
        sl = slice(i, i + batch_size)
        scores.update(torch.from_numpy(pred[sl]), torch.from_numpy(target[sl]), cls_prob[sl], labels[sl])
    assert torch.equal(scores.dice, dice_per_image(pred, target))
    assert torch.equal(scores.correct, correct_per_image(cls_prob, labels))
    assert torch.equal(scores.cls_prob, cls_prob)
    summary = scores.summary()
    assert summary["dice"] == pytest.approx(float(dice_per_image(pred, target).mean()))
    assert summary["accuracy"] == pytest.approx(accuracy(cls_prob, labels))


def test_empty_accumulator_raises():
    with pytest.raises(MetricInputError, match="no batches"):
        ScoreAccumulator().summary()
