"""``pneumobench bench``: throughput of the hot paths, each against a plain reference in the same run.

- ``train``: images/s of a naive loop (fp32, batches built on the host and copied each step,
  a host sync per step) and of the training engine's fast path (data resident on the device,
  channels_last and bf16 autocast on CUDA, no per-step sync), with the model's FLOPs per
  training image and the achieved TFLOP/s;
- ``metrics``: RLE decode+encode of 1024x1024 masks against a per-pixel loop, Dice per
  image against smp's metric, batched Lovász against smp's per-image loop;
- ``ingest``: 1024x1024 JPEG DICOM files to the 256x256 prepared dataset, images/s;
- ``smoke``: one whole smoke run (training and validation, one thread) of the smoke profile
  against the smoke run of pneumobench 0.2 (the full-width ResNet-10-T encoder, 128 validation
  images, every epoch validated and checkpointed), with each run's GFLOP/s as a share of this core's
  matrix-multiply rate;
- ``workers``: a local pool made ready to train, spawned (each worker imports torch, smp and
  timm) against forked from the server that imported them once.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pneumobench.data.prepared import PreparedDataset
from pneumobench.data.rle import decode, encode
from pneumobench.experiment.config import ExperimentConfig, SyntheticSpec
from pneumobench.models import build_model
from pneumobench.training.engine import IMAGENET_MEAN, IMAGENET_STD, DeviceData, train_step
from pneumobench.training.losses import lovasz_hinge
from pneumobench.training.metrics import dice_per_image

__all__ = [
    "bench_ingest",
    "bench_metrics",
    "bench_smoke_run",
    "bench_train",
    "make_train_step",
    "naive_decode",
    "naive_encode",
    "synthetic_batches",
    "training_flops_per_image",
]


def naive_encode(mask: np.ndarray) -> str:
    """Per-pixel relative RLE encoder: walks every pixel in column-major order."""
    height, width = mask.shape
    tokens, previous_end, run_start = [], 0, None
    for pixel in range(height * width):
        on = bool(mask[pixel % height, pixel // height])
        if on and run_start is None:
            run_start = pixel
        elif not on and run_start is not None:
            tokens += [run_start - previous_end, pixel - run_start]
            previous_end, run_start = pixel, None
    if run_start is not None:
        tokens += [run_start - previous_end, height * width - run_start]
    return " ".join(map(str, tokens)) if tokens else "-1"


def naive_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel relative RLE decoder."""
    height, _ = shape
    mask = np.zeros(shape, dtype=bool)
    if rle.strip() == "-1":
        return mask
    values = [int(v) for v in rle.split()]
    position = 0
    for gap, length in zip(values[0::2], values[1::2]):
        position += gap
        for pixel in range(position, position + length):
            mask[pixel % height, pixel // height] = True
        position += length
    return mask


def _median_seconds(fn: Callable[[], Any], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _steps(step: Callable[[int], torch.Tensor], count: int) -> None:
    for i in range(count):
        step(i)


def _row(name: str, unit: str, reference: float, ours: float) -> dict[str, Any]:
    return {"benchmark": name, "unit": unit, "reference": reference, "pneumobench": ours, "ratio": ours / reference}


def training_flops_per_image(config: ExperimentConfig, size: int, device: torch.device) -> float:
    """FLOPs of one training image (forward + backward), counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(config).to(device).train()
    images = torch.randn(2, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        mask_logits, cls_logits = model(images)
        (mask_logits.float().mean() + cls_logits.float().mean()).backward()
    return counter.get_total_flops() / 2


def synthetic_batches(n: int, size: int, seed: int = 0) -> PreparedDataset:
    """An in-memory dataset of random uint8 images and sparse masks (throughput only)."""
    rng = np.random.default_rng(seed)
    masks = (rng.random((n, size, size)) < 0.05).astype(np.uint8)
    masks[::2] = 0
    return PreparedDataset(
        images=rng.integers(0, 256, (n, size, size), dtype=np.uint8),
        masks=masks,
        labels=np.asarray(masks.reshape(n, -1).any(1), dtype=np.uint8),
        split=np.zeros(n, np.uint8),
        ids=tuple(str(i) for i in range(n)),
        manifest={"fingerprint": "bench"},
    )


def make_train_step(
    config: ExperimentConfig, data: PreparedDataset, *, batch: int, device: torch.device, fast: bool
) -> tuple[torch.nn.Module, Callable[[int], torch.Tensor]]:
    """The model and ``step(i)``, one optimisation step on batch ``i`` of ``data`` (``training.train_step``,
    the engine's own step, so the benchmark times what training runs).

    ``fast``: the engine's path (``DeviceData`` resident on the device; channels_last and bf16
    autocast on CUDA; no host sync). Otherwise the naive loop: each batch normalised on the
    host in NumPy, copied over, fp32, and the loss read back every step. Both normalise
    alike and see the same batches, so their first losses agree.
    """
    model = build_model(config).to(device).train()
    channels_last = fast and device.type == "cuda"  # as the training engine: slower on the CPU
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.RAdam(model.parameters(), lr=1e-4)
    n = len(data.images)
    resident = DeviceData(data, np.arange(n), device, channels_last=channels_last) if fast else None
    mean = np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1) * 255
    std = np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1) * 255
    autocast = fast and device.type == "cuda"

    def step(i: int) -> torch.Tensor:
        index = np.arange(i * batch, (i + 1) * batch) % n
        if resident is not None:
            x, y, labels = resident.batch(torch.from_numpy(index).to(device, non_blocking=True))
        else:
            host = (np.repeat(data.images[index][:, None].astype(np.float32), 3, axis=1) - mean) / std
            x = torch.from_numpy(host).to(device)
            y = torch.from_numpy(data.masks[index][:, None].astype(np.float32)).to(device)
            labels = torch.from_numpy(data.labels[index].astype(np.float32)).to(device)
        loss = train_step(model, optimizer, x, y, labels, config, autocast=autocast)
        if resident is None:
            loss.item()  # the naive loop's per-step host sync
        return loss

    return model, step


def bench_train(
    config: ExperimentConfig, *, size: int, batch: int, steps: int, device: torch.device, warmup: int = 2
) -> list[dict[str, Any]]:
    """Training images/s of the naive loop and of the fast path, and achieved TFLOP/s."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data = synthetic_batches(batch * 4, size)
    results: dict[str, float] = {}
    previous = torch.backends.cudnn.benchmark
    try:
        for mode in ("naive", "fast"):
            torch.backends.cudnn.benchmark = mode == "fast" and device.type == "cuda"
            torch.manual_seed(0)
            _, step = make_train_step(config, data, batch=batch, device=device, fast=mode == "fast")
            for i in range(warmup):
                step(i)
            seconds = _median_seconds(functools.partial(_steps, step, steps), repeats=1, sync=sync)
            results[mode] = steps * batch / seconds
    finally:
        torch.backends.cudnn.benchmark = previous
    flops = training_flops_per_image(config, size, device)
    row = _row(
        f"train {config.name} {size}x{size} batch {batch} ({device.type})",
        "images/s",
        results["naive"],
        results["fast"],
    )
    row["gflop_per_image"] = flops / 1e9
    row["tflops_naive"] = flops * results["naive"] / 1e12
    row["tflops_fast"] = flops * results["fast"] / 1e12
    return [row]


def matmul_gflops(size: int = 512, repeats: int = 5) -> float:
    """This CPU's fp32 matrix-multiply rate at the current thread count: the FLOP limit a run is
    compared with."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = _median_seconds(lambda: a @ b, repeats)
    return 2 * size**3 / seconds / 1e9


def previous_smoke_shape(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` as the smoke run of pneumobench 0.2 ran it: ResNet-10-T at its own widths,
    validated every epoch."""
    return config.replace(validate_every=1).replace_model(encoder_stem_width=None, encoder_widths=None)


def previous_smoke_data(spec: SyntheticSpec) -> SyntheticSpec:
    """The smoke dataset of pneumobench 0.2: half of 256 images trained on, half (128) validated."""
    return dataclasses.replace(spec, n_positive=128, n_negative=128, train_per_class=None)


def bench_smoke_run(profile_name: str = "smoke", *, seed: int = 0, threads: int = 1) -> list[dict[str, Any]]:
    """One whole run of the profile's baseline as pneumobench 0.2 ran it (the reference: its
    encoder, its dataset of 128 validation images, every epoch validated and checkpointed) and as
    today's profile runs it (checkpoints every ``Profile.checkpoint_every`` epochs), with
    ``threads`` CPU threads: training images/s over the run (both train 128 images
    an epoch, so the ratio is that of the run times), each run's GFLOP/s and its share of the
    matrix-multiply rate."""
    from pneumobench.data.cache import synthetic_dataset
    from pneumobench.experiment.profiles import get_profile
    from pneumobench.training.engine import steps_per_epoch, train

    profile = get_profile(profile_name)
    if profile.synthetic is None:
        raise ValueError(f"profile {profile_name!r} has no synthetic dataset to benchmark on")
    previous_data = synthetic_dataset(previous_smoke_data(profile.synthetic))
    runs = {
        "reference": (previous_smoke_shape(profile.config()), previous_data, 1),
        "pneumobench": (profile.config(), synthetic_dataset(profile.synthetic), profile.checkpoint_every),
    }
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        limit = matmul_gflops()
        rates, shares = {}, {}
        for role, (config, dataset, checkpoint_every) in runs.items():
            images = config.epochs * steps_per_epoch(len(dataset.train_indices), config) * config.batch_size
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                train(
                    config,
                    dataset,
                    seed,
                    torch.device("cpu"),
                    checkpoint=Path(folder) / "run.pt",
                    checkpoint_every=checkpoint_every,
                    progress=False,
                    cpu_threads=threads,
                )
                seconds = time.perf_counter() - start
            rates[role] = images / seconds
            work = images * training_flops_per_image(config, config.image_size, torch.device("cpu"))
            shares[role] = work / seconds / 1e9 / limit
    finally:
        torch.set_num_threads(previous_threads)
    row = _row(
        f"smoke run {profile_name} baseline ({threads} thread)",
        "train images/s",
        rates["reference"],
        rates["pneumobench"],
    )
    row["flop_limit_share_reference"] = shares["reference"]
    row["flop_limit_share"] = shares["pneumobench"]
    row["matmul_gflops"] = limit
    return [row]


def bench_metrics(repeats: int = 3) -> list[dict[str, Any]]:
    """RLE, Dice and Lovász against their references on CPU tensors."""
    import segmentation_models_pytorch as smp

    rows = []
    rows_, cols_ = np.mgrid[:1024, :1024]
    mask = ((rows_ - 400) / 120) ** 2 + ((cols_ - 600) / 90) ** 2 <= 1
    ref = _median_seconds(lambda: naive_decode(naive_encode(mask), mask.shape), repeats=1)
    ours = _median_seconds(lambda: decode(encode(mask), mask.shape), repeats)
    rows.append(_row("rle decode+encode 1024x1024", "masks/s", 1 / ref, 1 / ours))

    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(32, 1, 256, 256, generator=generator)
    target = (torch.rand(32, 1, 256, 256, generator=generator) < 0.05).long()

    def smp_dice():
        stats = smp.metrics.get_stats(pred, target, mode="binary", threshold=0.5)
        return smp.metrics.f1_score(*stats, reduction=None, zero_division=1.0)

    ref = _median_seconds(smp_dice, repeats)
    ours = _median_seconds(lambda: dice_per_image(pred, target), repeats)
    rows.append(_row("dice per image 32x256x256", "batches/s", 1 / ref, 1 / ours))

    logits = torch.randn(32, 1, 256, 256, generator=generator)
    masks = target.float()

    def loss_and_grad(fn):
        inputs = logits.clone().requires_grad_()
        fn(inputs, masks).backward()

    smp_loss = smp.losses.LovaszLoss("binary", per_image=True)
    ref = _median_seconds(lambda: loss_and_grad(smp_loss), repeats)
    ours = _median_seconds(lambda: loss_and_grad(lovasz_hinge), repeats)
    rows.append(_row("lovasz fwd+bwd 32x256x256", "batches/s", 1 / ref, 1 / ours))
    return rows


def bench_ingest(n_images: int = 64, workers: int | None = None) -> list[dict[str, Any]]:
    """Ingest of synthetic 1024x1024 JPEG DICOM files to 256x256: one worker vs. all cores."""
    from pneumobench.data.siim import prepare
    from pneumobench.data.synthetic import write_siim

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_siim(root / "raw", n_positive=n_images // 2, n_negative=n_images - n_images // 2, seed=0)
        timings = {}
        for label, count in (("one worker", 1), ("all workers", workers)):
            start = time.perf_counter()
            prepare(
                root / "raw",
                root / f"out-{count}",
                size=256,
                per_class=None,
                workers=count,
                progress=False,
                overwrite=True,
            )
            timings[label] = n_images / (time.perf_counter() - start)
    return [_row(f"ingest {n_images} DICOM 1024->256", "images/s", timings["one worker"], timings["all workers"])]


def _worker_ready() -> None:
    """A local worker's start: what it imports before its first run."""
    import pneumobench.training.engine  # noqa: F401


def _nothing(index: int) -> int:
    return index


def bench_workers(workers: int = 2, repeats: int = 3) -> list[dict[str, Any]]:
    """A pool of ``workers`` local workers made ready to train (the engine imported in each):
    spawned interpreters, as before, against processes forked from the fork server that imported
    the engine once (``runs.executors.worker_context``; the server's own start, paid once per
    driver, is made first and left out)."""
    from concurrent.futures import ProcessPoolExecutor

    from pneumobench.runs.executors import worker_context

    def ready(method: str) -> None:
        context = worker_context(method)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_ready) as pool:
            list(pool.map(_nothing, range(workers)))

    ready("forkserver")
    spawned = _median_seconds(lambda: ready("spawn"), repeats)
    forked = _median_seconds(lambda: ready("forkserver"), repeats)
    return [_row(f"{workers} local workers ready to train", "pools/min", 60 / spawned, 60 / forked)]
