"""Throughput of the hot paths, each benchmark group pairing the library with a plain reference.

Run with ``pytest suites/test_throughput.py --benchmark-enable`` (the default ``pytest``
configuration disables timing and runs each benchmark once as a correctness check).
Save with ``--benchmark-autosave`` and compare runs with ``--benchmark-compare``.
Every test here carries the ``benchmark`` marker (``pytest -m benchmark``).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch

from pneumobench.data.rle import decode, encode
from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
from pneumobench.runs.runner import select_device
from pneumobench.tools.bench import (
    make_train_step,
    naive_decode,
    naive_encode,
    synthetic_batches,
)
from pneumobench.tools.gpu_check import TABLE6_RUNS, GpuCheckSettings, gpu_check
from pneumobench.training.losses import lovasz_hinge
from pneumobench.training.metrics import dice_per_image

pytestmark = pytest.mark.benchmark  # pytest-benchmark's marker: `pytest -m benchmark` selects this suite

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


TRAIN_CONFIG = ExperimentConfig(model=ModelConfig(encoder="resnet18"), image_size=32, batch_size=16)
TRAIN_STEPS = 3


@pytest.fixture(scope="module")
def train_data():
    return synthetic_batches(4 * TRAIN_CONFIG.batch_size, TRAIN_CONFIG.image_size)


def _train_steps(step):
    return torch.stack([step(i) for i in range(TRAIN_STEPS)])


@pytest.mark.parametrize("fast", [False, True], ids=["naive", "fast"])
@pytest.mark.benchmark(group="training steps resnet18 32x32 batch 16")
def test_training_steps(benchmark, train_data, fast):
    device = select_device("auto")
    torch.manual_seed(0)
    _, step = make_train_step(TRAIN_CONFIG, train_data, batch=TRAIN_CONFIG.batch_size, device=device, fast=fast)
    losses = benchmark.pedantic(_train_steps, args=(step,), rounds=3, iterations=1, warmup_rounds=1)
    assert torch.isfinite(losses).all()
    benchmark.extra_info["images_per_second"] = (
        TRAIN_STEPS * TRAIN_CONFIG.batch_size / benchmark.stats.stats.mean if benchmark.stats else None
    )


def test_naive_and_fast_steps_compute_the_same_loss(train_data):
    """Same initial weights and batch: the two paths agree on the first loss (fp32 on the CPU)."""
    losses = []
    for fast in (False, True):
        torch.manual_seed(0)
        _, step = make_train_step(TRAIN_CONFIG, train_data, batch=TRAIN_CONFIG.batch_size, device=torch.device("cpu"), fast=fast)
        losses.append(step(0))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-4, atol=1e-5)


GPU_CHECK_CONFIG = ExperimentConfig(model=ModelConfig(encoder="resnet18"), image_size=32, batch_size=8,
                                    stages=(StageConfig(1, 3e-3, 1e-3, freeze_encoder=True), StageConfig(1, 3e-3, 1e-4)))


def test_gpu_check_runs_every_step(tmp_path):
    """``bench --gpu-check`` shrunk to the CPU: every step runs, the projection follows from
    the measured run (the real figures need a GPU)."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_marked.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.gpu
        def test_on_the_card():
            assert True

        def test_not_selected():
            assert False
    """))
    settings = GpuCheckSettings(size=32, batch=8, steps=2, per_class=16, processes=(1, 2), config=GPU_CHECK_CONFIG,
                                checkpoint_every=1, compiled=False)  # inductor on the CPU would take minutes
    rows = {row["check"]: row for row in gpu_check(torch.device("cpu"), settings, tests_dir=tests, progress=False)}
    # only the gpu-marked test is selected; without CUDA the plugin skips it, saying why
    expected = "1 passed, 1 deselected" if torch.cuda.is_available() else "1 skipped, 1 deselected"
    assert rows["CUDA tests (pytest -m gpu)"]["value"].startswith(expected)
    assert rows["CUDA tests (pytest -m gpu)"]["unit"] == "exit 0"
    assert rows["training, fast path, 32x32 batch 8"]["value"] > 0
    assert "TFLOP/s" in rows["training, naive loop, 32x32 batch 8"]["note"]
    assert rows["1 training process(es) at once"]["note"] == "1.00x one process"
    assert rows["2 training process(es) at once"]["value"] > 0
    run = rows["one paper-profile run (baseline, seed 0)"]
    assert "2 epochs of 26 synthetic 32x32 images, a checkpoint every 1 epochs" in run["note"]  # 16 per class, 20% held out
    projected = rows["projected Table 6 x 5 seeds, one process"]["value"]
    assert projected == pytest.approx(TABLE6_RUNS * run["value"] / 60)
