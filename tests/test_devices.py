"""Device-agnostic checks of the hot paths: each runs on the CPU and, where CUDA exists, on the
GPU too (those variants carry the ``gpu`` marker: ``pytest -m gpu`` runs only them, and
``pneumobench bench --gpu-check`` runs that). References are computed on the host."""

import numpy as np
import pytest
import torch
from reference import DEVICES

from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
from pneumobench.models import build_model
from pneumobench.tools.bench import make_train_step, synthetic_batches
from pneumobench.training.engine import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DeviceData,
    _close_epoch,
    example_indices,
    summaries,
    train,
    train_epoch,
    validate,
)

TINY = ExperimentConfig(model=ModelConfig(encoder="resnet18"), image_size=32, batch_size=16,
                        stages=(StageConfig(1, 3e-3, 1e-3, freeze_encoder=True), StageConfig(1, 3e-3, 1e-4)))


@pytest.mark.parametrize("device", DEVICES)
def test_device_batches_match_the_host_normalisation(device):
    data = synthetic_batches(8, 32)
    resident = DeviceData(data, np.arange(8), torch.device(device), channels_last=True)
    index = torch.tensor([5, 0, 3], device=device)
    flip = torch.tensor([True, False, True], device=device)
    images, masks, labels = resident.batch(index, flip)
    host = data.images[[5, 0, 3]].astype(np.float32)
    host[[0, 2]] = host[[0, 2], :, ::-1]
    mean = np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1) * 255
    expected = (np.repeat(host[:, None], 3, axis=1) - mean) / std
    assert images.device.type == device and images.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(images.cpu().numpy(), expected, rtol=1e-5, atol=1e-5)
    host_masks = data.masks[[5, 0, 3]].copy()
    host_masks[[0, 2]] = host_masks[[0, 2], :, ::-1]
    np.testing.assert_array_equal(masks[:, 0].cpu().numpy(), host_masks)
    np.testing.assert_array_equal(labels.cpu().numpy(), data.labels[[5, 0, 3]])


@pytest.mark.parametrize("device", DEVICES)
def test_naive_and_fast_first_steps_agree(device):
    """Same weights and batch: the fast path (bf16 autocast on CUDA) gives the naive fp32 loss
    to within bf16 precision."""
    data = synthetic_batches(32, 32)
    losses = []
    for fast in (False, True):
        torch.manual_seed(0)
        _, step = make_train_step(TINY, data, batch=16, device=torch.device(device), fast=fast)
        losses.append(float(step(0)))
    assert losses[1] == pytest.approx(losses[0], rel=2e-2 if device == "cuda" else 1e-4)


@pytest.mark.gpu
def test_cuda_deterministic_runs_are_identical_and_fast_runs_finite(tiny_dataset):
    first = train(TINY, tiny_dataset, seed=3, device="cuda", deterministic=True, progress=False)
    second = train(TINY, tiny_dataset, seed=3, device="cuda", deterministic=True, progress=False)
    assert first.dice_per_image == second.dice_per_image and first.correct == second.correct
    fast = train(TINY, tiny_dataset, seed=3, device="cuda", fast=True, progress=False)
    assert all(np.isfinite(c["train_loss"]) for c in fast.curves)
    assert fast.environment["device_name"] == torch.cuda.get_device_name(0)


@pytest.mark.parametrize("device", DEVICES)
def test_the_benchmark_times_the_engines_step_with_its_class_weight(device):
    """``make_train_step`` runs ``training.train_step``: its first loss is the joint loss with the
    configuration's class weight, computed here by hand from the same weights and batch."""
    config = TINY.replace(cls_weight=3.0)
    data = synthetic_batches(32, 32)
    torch.manual_seed(0)
    _, step = make_train_step(config, data, batch=16, device=torch.device(device), fast=False)
    first = float(step(0))
    torch.manual_seed(0)
    model = build_model(config).to(device).train()
    images, masks, labels = DeviceData(data, np.arange(32), torch.device(device), channels_last=False).batch(
        torch.arange(16, device=device))
    mask_logits, cls_logits = model(images)
    by_hand = (torch.nn.functional.binary_cross_entropy_with_logits(mask_logits, masks)
               + 3.0 * torch.nn.functional.binary_cross_entropy_with_logits(cls_logits, labels))
    assert first == pytest.approx(float(by_hand), rel=1e-5)


@pytest.mark.gpu
def test_an_epoch_and_its_validation_never_wait_for_the_host(tiny_dataset):
    """Under ``set_sync_debug_mode("error")`` a host sync raises: one training epoch and its
    validation must run without one (the epoch's single sync is ``_close_epoch``, outside)."""
    device = torch.device("cuda")
    config = TINY
    model = build_model(config).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.RAdam(model.parameters(), lr=1e-3)
    train_data = DeviceData(tiny_dataset, tiny_dataset.train_indices, device, channels_last=True)
    val_data = DeviceData(tiny_dataset, tiny_dataset.val_indices, device, channels_last=True)
    keep = example_indices(tiny_dataset)

    def epoch(number):
        losses, _ = train_epoch(model, optimizer, train_data, config, epoch=number, data_seed=1, autocast=True)
        scores, kept = validate(model, val_data, 2 * config.batch_size, True, keep=keep)
        return losses, scores, kept

    epoch(0)  # first use: lazy CUDA initialisation and the optimizer's state, outside the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses, scores, kept = epoch(1)
        with pytest.raises(RuntimeError):
            losses.sum().item()  # the mode is on: a sync does raise
    finally:
        torch.cuda.set_sync_debug_mode("default")
    values = _close_epoch(losses, summaries(scores, config), "sync check", 1)
    assert np.isfinite(values).all() and kept is not None and len(kept) == len(keep)
