"""``pneumobench bench --gpu-check``: the CUDA path checked and measured in one short script.

In order, on one device: the library's tests marked ``gpu`` (a pytest subprocess); training
images/s of the naive loop against the fast path at 256x256 batch 32 with achieved TFLOP/s;
the aggregate images/s of 1, 2 and 3 training processes sharing the card (several seeds at
once, offered as ``--pb-workers`` when it helps); one paper-profile run on synthetic
256x256 data of the paper's size, and from it the projected time of Table 6 over 5 seeds.
Everything lands in one summary table (and JSON). Sized to finish within 8 minutes on an H100.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pneumobench.core.results import RunResult
from pneumobench.experiment.config import ExperimentConfig
from pneumobench.experiment.profiles import get_profile

__all__ = ["GpuCheckSettings", "bench_concurrency", "cuda_tests", "gpu_check"]

PAPER_PER_CLASS = 2669  # images per class the paper samples (DESIGN: 2,669 positives and as many negatives)
TABLE6_RUNS = 16 * 5  # 16 configurations x 5 seeds


@dataclass(frozen=True)
class GpuCheckSettings:
    """Sizes of the check; the defaults are the paper's (the tests shrink them to run on a CPU).

    ``config``: the paper's baseline without ImageNet weights (an offline box cannot fetch
    them, and the speed does not depend on them).
    """

    size: int = 256
    batch: int = 32
    steps: int = 20
    per_class: int = PAPER_PER_CLASS
    processes: tuple[int, ...] = (1, 2, 3)
    run_tests: bool = True
    checkpoint_every: int = field(default_factory=lambda: get_profile("paper").checkpoint_every)
    compiled: bool = True  # also time the run with the compiled step (CUDA graphs)
    config: ExperimentConfig = field(
        default_factory=lambda: get_profile("paper").config().replace_model(encoder_weights=None)
    )


def _row(check: str, value: Any, unit: str, note: str = "") -> dict[str, Any]:
    return {"check": check, "value": value, "unit": unit, "note": note}


def cuda_tests(tests_dir: Path) -> dict[str, Any]:
    """Run ``pytest -m gpu`` on the library's tests; the last line of pytest's summary."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", str(tests_dir), "-m", "gpu", "-q", "-p", "no:cacheprovider", "--no-header"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else completed.stderr.strip()[-200:]
    return _row(
        "CUDA tests (pytest -m gpu)", summary, f"exit {completed.returncode}", f"{time.perf_counter() - started:.0f} s"
    )


def _concurrent_worker(
    config_json: str, size: int, batch: int, steps: int, device: str, threads: int, barrier
) -> tuple[float, float]:
    from pneumobench.tools.bench import make_train_step, synthetic_batches

    torch.set_num_threads(threads)
    device_t = torch.device(device)
    torch.backends.cudnn.benchmark = device_t.type == "cuda"
    sync = torch.cuda.synchronize if device_t.type == "cuda" else (lambda: None)
    _, step = make_train_step(
        ExperimentConfig.from_json(config_json),
        synthetic_batches(4 * batch, size),
        batch=batch,
        device=device_t,
        fast=True,
    )
    for i in range(2):
        step(i)
    sync()
    barrier.wait()
    started = time.monotonic()
    for i in range(steps):
        step(i)
    sync()
    return started, time.monotonic()


def bench_concurrency(
    config: ExperimentConfig, *, size: int, batch: int, steps: int, device: torch.device, processes: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Aggregate training images/s with k processes training at once on ``device``, for each
    k in ``processes`` (which starts at 1: the ratios are against one process).

    Each process builds its own model, warms up, waits at a barrier, then times ``steps``
    steps; the aggregate is all images over the span from the first start to the last end.
    On the CPU the cores are split between the processes.
    """
    if processes[0] != 1:
        raise ValueError(f"processes must start at 1 (the reference), got {processes}")
    context = multiprocessing.get_context("spawn")
    rows = []
    single = None
    with context.Manager() as manager:
        for count in processes:
            threads = max(1, (os.cpu_count() or 1) // count) if device.type == "cpu" else 1
            barrier = manager.Barrier(count)
            with context.Pool(count) as pool:
                spans = pool.starmap(
                    _concurrent_worker, [(config.to_json(), size, batch, steps, str(device), threads, barrier)] * count
                )
            rate = count * steps * batch / (max(end for _, end in spans) - min(start for start, _ in spans))
            single = single or rate
            rows.append(
                _row(f"{count} training process(es) at once", rate, "images/s", f"{rate / single:.2f}x one process")
            )
    return rows


def gpu_check(
    device: torch.device,
    settings: GpuCheckSettings | None = None,
    *,
    tests_dir: Path | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every check on ``device`` and return the summary rows (see the module docstring)."""
    from pneumobench.core.environment import device_name

    settings = settings or GpuCheckSettings()
    rows = [_row("device", device_name(device), "", f"torch {torch.__version__}, CUDA {torch.version.cuda}")]
    if settings.run_tests:
        rows.append(_tests_row(tests_dir or Path(__file__).resolve().parents[1] / "tests"))
    rows += _training_rows(device, settings)
    concurrency = bench_concurrency(
        settings.config,
        size=settings.size,
        batch=settings.batch,
        steps=settings.steps,
        device=device,
        processes=settings.processes,
    )
    return rows + concurrency + _projection_rows(device, settings, concurrency, progress)


def _tests_row(tests_dir: Path) -> dict[str, Any]:
    if tests_dir.is_dir():
        return cuda_tests(tests_dir)
    return _row(
        "CUDA tests (pytest -m gpu)",
        "not run",
        "",
        f"no tests directory at {tests_dir} (installed without the repository)",
    )


def _training_rows(device: torch.device, settings: GpuCheckSettings) -> list[dict[str, Any]]:
    """Images/s of the naive loop and of the fast path, with the achieved TFLOP/s."""
    from pneumobench.tools.bench import bench_train

    train_row = bench_train(
        settings.config, size=settings.size, batch=settings.batch, steps=settings.steps, device=device
    )[0]
    shape = f"{settings.size}x{settings.size} batch {settings.batch}"
    return [
        _row(
            f"training, naive loop, {shape}",
            train_row["reference"],
            "images/s",
            f"{train_row['tflops_naive']:.1f} TFLOP/s",
        ),
        _row(
            f"training, fast path, {shape}",
            train_row["pneumobench"],
            "images/s",
            f"{train_row['tflops_fast']:.1f} TFLOP/s; {train_row['ratio']:.2f}x naive; "
            f"{train_row['gflop_per_image']:.1f} GFLOP per image",
        ),
    ]


def _paper_runs(
    device: torch.device, settings: GpuCheckSettings, progress: bool
) -> tuple[RunResult, RunResult | None, str]:
    """The timed paper-profile run (with checkpoints, as a real run writes them), the same run with
    the compiled step when ``settings.compiled``, and what they trained on."""
    from pneumobench.data.synthetic import write_prepared
    from pneumobench.training.engine import train

    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_prepared(
            Path(tmp) / "synthetic",
            n_positive=settings.per_class,
            n_negative=settings.per_class,
            size=settings.size,
            progress=progress,
        )
        config = settings.config.replace(image_size=settings.size, batch_size=settings.batch)

        def timed_run(compile_model: bool) -> RunResult:
            return train(
                config,
                dataset,
                seed=0,
                device=device,
                progress=progress,
                checkpoint=Path(tmp) / "checkpoint.pt",
                checkpoint_every=settings.checkpoint_every,
                compile_model=compile_model,
            )

        eager = timed_run(compile_model=False)
        compiled = timed_run(compile_model=True) if settings.compiled else None
    what = (
        f"{config.epochs} epochs of {len(dataset.train_indices)} synthetic {settings.size}x{settings.size} images, "
        f"a checkpoint every {settings.checkpoint_every} epochs (written in the background)"
    )
    return eager, compiled, what


def _projection_rows(
    device: torch.device, settings: GpuCheckSettings, concurrency: list[dict[str, Any]], progress: bool
) -> list[dict[str, Any]]:
    """One timed paper-profile run (and its compiled twin), and Table 6 x 5 seeds projected from it
    (with several processes per device when the concurrency rows show that helps)."""
    best = max(zip(settings.processes, concurrency), key=lambda item: item[1]["value"])
    helps = best[0] > 1 and best[1]["value"] > 1.1 * concurrency[0]["value"]
    speedup = best[1]["value"] / concurrency[0]["value"]
    result, compiled, what = _paper_runs(device, settings, progress)
    per_run = result.wall_time_s
    rows = [
        _row(
            "one paper-profile run (baseline, seed 0)",
            per_run,
            "s",
            f"{what}; {result.train_images_per_s:.0f} images/s; target 30 s",
        )
    ]
    if compiled is not None:
        rows.append(
            _row(
                "one paper-profile run, compiled step (CUDA graphs)",
                compiled.wall_time_s,
                "s",
                f"--compile, compile time included; {compiled.train_images_per_s:.0f} images/s; "
                f"{per_run / compiled.wall_time_s:.2f}x the eager run",
            )
        )
    rows.append(
        _row(
            "projected Table 6 x 5 seeds, one process",
            TABLE6_RUNS * per_run / 60,
            "min",
            f"{TABLE6_RUNS} runs x {per_run:.1f} s (every configuration costed as the baseline); target 45 min",
        )
    )
    if helps:
        rows.append(
            _row(
                f"projected Table 6 x 5 seeds, {best[0]} processes",
                TABLE6_RUNS * per_run / speedup / 60,
                "min",
                f"{speedup:.2f}x aggregate: pass --pb-workers {best[0] * max(torch.cuda.device_count(), 1)}",
            )
        )
    else:
        rows.append(_row("several processes per device", "not offered", "", f"best {speedup:.2f}x (needs > 1.1x)"))
    return rows
