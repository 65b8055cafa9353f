"""Lovász hinge: smp as the reference, hand-computed values, and properties; the joint loss."""

import math

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from reference import DEVICES, ReferenceCase, check_reference, logits_and_masks

from pneumobench.training.losses import (
    SEG_LOSSES,
    LossInputError,
    joint_loss,
    lovasz_hinge,
    register_seg_loss,
)


def random_batch(seed: int, n: int = 4, size: int = 16):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, size, size, generator=generator) * 3
    target = (torch.rand(n, 1, size, size, generator=generator) < 0.3).float()
    target[0] = 0  # an image without any positive pixel
    return logits, target


LOVASZ_CASES = [
    ReferenceCase("per image", lovasz_hinge, smp.losses.LovaszLoss("binary", per_image=True), logits_and_masks,
                  accumulate="mean", gradient=True),
    ReferenceCase("whole batch", lambda x, y: lovasz_hinge(x, y, per_image=False),
                  smp.losses.LovaszLoss("binary", per_image=False), logits_and_masks, accumulate=None, gradient=True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", LOVASZ_CASES, ids=lambda case: case.name)
def test_hinge_matches_smp_value_and_gradient(case, device):
    check_reference(case, device, draws=5)


def test_hand_computed_two_pixel_example():
    # logits (0.5, 0.5), target (1, 0): hinge errors 1 - logit*sign = (0.5, 1.5).
    # Sorted (1.5 [neg], 0.5 [pos]): Jaccard loss steps 1/2 then 1 -> gradient (0.5, 0.5).
    logits = torch.tensor([[[0.5, 0.5]]])
    target = torch.tensor([[[1.0, 0.0]]])
    assert lovasz_hinge(logits, target).item() == pytest.approx(1.5 * 0.5 + 0.5 * 0.5)
    # ELU+1 on the mask side: (2.5, 1.5) . (0.5, 0.5) = 2.0. Complement (target (0, 1)),
    # same errors, sorted (1.5 [pos], 0.5 [neg]): gradient (1, 0) -> 2.5. Mean: 2.25.
    assert lovasz_hinge(logits, target, variant="symmetric_elu").item() == pytest.approx(2.25)


def test_hand_computed_elu_on_negative_errors():
    # logits (3, -0.5), target (1, 0): errors (-2, 0.5). Mask side: sorted (0.5 [neg],
    # -2 [pos]), gradient (0.5, 0.5): 0.5*1.5 + 0.5*exp(-2). Complement: gradient (1, 0): 1.5.
    logits = torch.tensor([[[3.0, -0.5]]])
    target = torch.tensor([[[1.0, 0.0]]])
    expected = (0.75 + 0.5 * math.exp(-2) + 1.5) / 2
    assert lovasz_hinge(logits, target, variant="symmetric_elu").item() == pytest.approx(expected)


@given(
    st.integers(0, 2**16),
    st.floats(1.0, 10.0),
    st.sampled_from([True, False]),
)
def test_perfect_prediction_with_margin_has_zero_hinge_loss(seed, margin, per_image):
    _, target = random_batch(seed, n=2, size=6)
    logits = (2 * target - 1) * margin
    assert lovasz_hinge(logits, target, per_image=per_image).item() == 0.0


@given(st.integers(0, 2**16), st.sampled_from(["hinge", "symmetric_elu"]))
def test_loss_is_non_negative_and_per_image_is_mean_of_images(seed, variant):
    logits, target = random_batch(seed, n=3, size=5)
    batched = lovasz_hinge(logits, target, variant=variant)
    singles = [lovasz_hinge(logits[i : i + 1], target[i : i + 1], variant=variant) for i in range(3)]
    assert batched.item() >= 0
    torch.testing.assert_close(batched, torch.stack(singles).mean())


@given(st.integers(0, 2**16), st.sampled_from(["hinge", "symmetric_elu"]))
def test_whole_batch_loss_is_the_loss_of_the_batch_stacked_into_one_image(seed, variant):
    logits, target = random_batch(seed, n=3, size=5)
    stacked = [x.reshape(1, 1, 3 * 5, 5) for x in (logits, target)]  # the three images one above another
    torch.testing.assert_close(
        lovasz_hinge(logits, target, per_image=False, variant=variant), lovasz_hinge(*stacked, variant=variant)
    )


def test_registered_lovasz_losses_are_the_authors_variant_per_image_and_per_batch():
    logits, target = random_batch(7)
    for name, per_image in (("lovasz", True), ("lovasz_batch", False)):
        expected = lovasz_hinge(logits, target, per_image=per_image, variant="symmetric_elu")
        torch.testing.assert_close(SEG_LOSSES.get(name).fn(logits, target), expected)
        assert SEG_LOSSES.get(name).cls_weight == 0.01
    assert SEG_LOSSES.get("lovasz").fn(logits, target) != SEG_LOSSES.get("lovasz_batch").fn(logits, target)


@given(st.integers(0, 2**16))
def test_elu_variant_is_symmetric_under_complement(seed):
    logits, target = random_batch(seed, n=2, size=5)
    torch.testing.assert_close(
        lovasz_hinge(logits, target, variant="symmetric_elu"),
        lovasz_hinge(-logits, 1 - target, variant="symmetric_elu"),
    )


def test_elu_variant_vanishes_with_large_margin():
    _, target = random_batch(1, n=2, size=6)
    assert lovasz_hinge((2 * target - 1) * 25, target, variant="symmetric_elu").item() < 1e-8


@pytest.mark.parametrize(
    "logits, target, kwargs, message",
    [
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, 5), {}, "shapes differ"),
        (torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 4), {}, "expected (N,H,W)"),
        (torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5), {}, "must be binary"),
        (torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), {"variant": "relu"}, "unknown Lovász variant"),
        (torch.zeros(1, 0, 2), torch.zeros(1, 0, 2), {}, "zero pixels"),
    ],
)
def test_bad_inputs_raise(logits, target, kwargs, message):
    with pytest.raises(LossInputError) as info:
        lovasz_hinge(logits, target, **kwargs)
    assert message in str(info.value)


def test_joint_loss_weights_follow_the_paper():
    logits, masks = random_batch(3)
    cls_logits = torch.tensor([0.3, -1.0, 2.0, 0.1])
    labels = torch.tensor([0.0, 1.0, 1.0, 0.0])
    cls_bce = F.binary_cross_entropy_with_logits(cls_logits, labels)
    bce = joint_loss(logits, cls_logits, masks, labels, seg_loss="bce")
    torch.testing.assert_close(bce, F.binary_cross_entropy_with_logits(logits, masks) + 0.1 * cls_bce)
    lovasz = joint_loss(logits, cls_logits, masks, labels, seg_loss="lovasz")
    expected = lovasz_hinge(logits, masks, variant="symmetric_elu") + 0.01 * cls_bce
    torch.testing.assert_close(lovasz, expected)
    override = joint_loss(logits, cls_logits, masks, labels, seg_loss="bce", cls_weight=1.0)
    torch.testing.assert_close(override, F.binary_cross_entropy_with_logits(logits, masks) + cls_bce)


def test_a_new_loss_is_one_registered_function():
    @register_seg_loss("test_l1", cls_weight=0.5)
    def l1(mask_logits, masks):
        return (torch.sigmoid(mask_logits) - masks).abs().mean()

    try:
        logits, masks = random_batch(4)
        cls_logits, labels = torch.zeros(4), torch.ones(4)
        value = joint_loss(logits, cls_logits, masks, labels, seg_loss="test_l1")
        torch.testing.assert_close(value, l1(logits, masks) + 0.5 * math.log(2))
    finally:
        SEG_LOSSES.unregister("test_l1")
    with pytest.raises(KeyError, match="registered: bce, lovasz"):
        joint_loss(logits, cls_logits, masks, labels, seg_loss="test_l1")
