"""Throughput of the hot paths, each benchmark group pairing the library with a plain reference.

Run with ``pytest suites/test_throughput.py --benchmark-enable`` (the default ``pytest``
configuration disables timing and runs each benchmark once as a correctness check).
Save with ``--benchmark-autosave`` and compare runs with ``--benchmark-compare``.
"""

from __future__ import annotations

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch

from pneumobench.bench import naive_decode, naive_encode
from pneumobench.data.rle import decode, encode
from pneumobench.losses import lovasz_hinge
from pneumobench.metrics import dice_per_image

SIIM_SHAPE = (1024, 1024)


@pytest.fixture(scope="module")
def siim_masks() -> list[np.ndarray]:
    """Four 1024x1024 masks with pneumothorax-sized blobs (and one empty)."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[: SIIM_SHAPE[0], : SIIM_SHAPE[1]]
    masks = [np.zeros(SIIM_SHAPE, bool)]
    for _ in range(3):
        mask = np.zeros(SIIM_SHAPE, bool)
        for _ in range(rng.integers(1, 3)):
            cy, cx = rng.integers(150, 870, size=2)
            ry, rx = rng.integers(40, 160, size=2)
            mask |= ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
        masks.append(mask)
    return masks


def _round_trip_all(masks, encoder, decoder):
    return [decoder(encoder(mask), SIIM_SHAPE) for mask in masks]


@pytest.mark.benchmark(group="rle decode+encode 1024x1024")
def test_rle_vectorized(benchmark, siim_masks):
    decoded = benchmark(_round_trip_all, siim_masks, encode, decode)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, siim_masks))


@pytest.mark.benchmark(group="rle decode+encode 1024x1024")
def test_rle_naive_reference(benchmark, siim_masks):
    decoded = benchmark.pedantic(
        _round_trip_all, args=(siim_masks, naive_encode, naive_decode), rounds=3, iterations=1
    )
    assert all(np.array_equal(a, b) for a, b in zip(decoded, siim_masks))
    assert [naive_encode(m) for m in siim_masks[:2]] == [encode(m) for m in siim_masks[:2]]


@pytest.fixture(scope="module")
def lovasz_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A paper-sized batch: 32 images at 256x256, half of them empty."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 1, 256, 256, generator=generator)
    target = (torch.rand(32, 1, 256, 256, generator=generator) < 0.05).float()
    target[::2] = 0
    return logits, target


def _loss_and_grad(loss_fn, logits, target):
    inputs = logits.clone().requires_grad_()
    loss = loss_fn(inputs, target)
    loss.backward()
    return loss.detach(), inputs.grad


@pytest.mark.benchmark(group="lovasz forward+backward 32x256x256")
def test_lovasz_batched(benchmark, lovasz_batch):
    loss, grad = benchmark(_loss_and_grad, lovasz_hinge, *lovasz_batch)
    ref_loss, ref_grad = _loss_and_grad(smp.losses.LovaszLoss("binary", per_image=True), *lovasz_batch)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad)


@pytest.mark.benchmark(group="lovasz forward+backward 32x256x256")
def test_lovasz_smp_per_image_loop(benchmark, lovasz_batch):
    benchmark(_loss_and_grad, smp.losses.LovaszLoss("binary", per_image=True), *lovasz_batch)


@pytest.fixture(scope="module")
def dice_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    pred = torch.rand(32, 1, 256, 256, generator=generator)
    target = (torch.rand(32, 1, 256, 256, generator=generator) < 0.05).long()
    return pred, target


def _smp_dice(pred, target):
    stats = smp.metrics.get_stats(pred, target, mode="binary", threshold=0.5)
    return smp.metrics.f1_score(*stats, reduction=None, zero_division=1.0).view(-1)


@pytest.mark.benchmark(group="dice per image 32x256x256")
def test_dice_per_image(benchmark, dice_batch):
    dice = benchmark(dice_per_image, *dice_batch)
    torch.testing.assert_close(dice, _smp_dice(*dice_batch))


@pytest.mark.benchmark(group="dice per image 32x256x256")
def test_dice_smp_reference(benchmark, dice_batch):
    benchmark(_smp_dice, *dice_batch)


@pytest.fixture(scope="module")
def siim_download(tmp_path_factory):
    """64 synthetic SIIM images: 1024x1024 JPEG Baseline DICOM files and a stage-2 CSV."""
    from pneumobench.data.synthetic import write_siim

    root = tmp_path_factory.mktemp("siim")
    write_siim(root, n_positive=32, n_negative=32, seed=0)
    return root


def _prepare(root, out, workers):
    from pneumobench.data.siim import prepare

    dataset, report = prepare(root, out, size=256, per_class=None, workers=workers, progress=False, overwrite=True)
    return report


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.benchmark(group="ingest 64 DICOM 1024->256")
def test_ingest(benchmark, siim_download, tmp_path, workers):
    report = benchmark.pedantic(_prepare, args=(siim_download, tmp_path / "out", workers), rounds=3, iterations=1)
    assert report.ingested == 64
    benchmark.extra_info["images_per_second"] = 64 / benchmark.stats.stats.mean if benchmark.stats else None
