"""Runs on demand: return the stored result of (config, seed, dataset, device) or train and store it.

``prefetch`` trains many runs in parallel worker processes (every run fixes its own torch
thread count, one on the CPU by default; one GPU each when there are several), which on two
CPU cores is about 1.3x the throughput of one two-thread process; the store's claims keep
every run unique. Workers import the modules that registered a user's blocks, losses and
modifications, so a configuration that names them trains there too.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import torch
from tqdm import tqdm

from pneumobench.config import ExperimentConfig
from pneumobench.data.prepared import PreparedDataset, load
from pneumobench.environment import library_versions
from pneumobench.models.encoder import weights_fingerprint
from pneumobench.registry import extension_modules, import_extensions
from pneumobench.results import RunResult
from pneumobench.store import (
    ResultStore,
    pin_source_fingerprint,
    run_key,
    source_fingerprint,
)
from pneumobench.training import CPU_THREADS, train

__all__ = ["device_kind", "key_of", "prefetch", "run", "run_conditions", "select_device"]


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested``, else CUDA when available (pytest-xdist worker N takes GPU N mod count), else CPU."""
    if requested is not None and str(requested) != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = int(worker[2:]) if worker[2:].isdigit() else 0
        return torch.device(f"cuda:{index % torch.cuda.device_count()}")
    return torch.device("cpu")


def device_kind(device: torch.device) -> str:
    """What results depend on: ``cpu`` or ``cuda:<card name>`` (not the card's index)."""
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else "cpu"


def run_conditions(config: ExperimentConfig, cpu_threads: int = CPU_THREADS) -> dict[str, Any]:
    """What decides a run's numbers besides its configuration, seed, data, code and device kind."""
    return {
        **library_versions(),
        "cpu_threads": cpu_threads,
        "encoder_weights": weights_fingerprint(config.model.encoder_weights),
    }


def key_of(
    config: ExperimentConfig, seed: int, dataset_fingerprint: str, device: torch.device, cpu_threads: int = CPU_THREADS
) -> str:
    """The store key this run is saved and looked up under."""
    return run_key(config.key(), seed, dataset_fingerprint, device_kind(device), run_conditions(config, cpu_threads))


def run(
    config: ExperimentConfig,
    seed: int,
    dataset: PreparedDataset,
    device: str | torch.device | None = None,
    *,
    store: ResultStore | None = None,
    checkpoint_every: int = 1,
    progress: bool = True,
    retry_failed: bool = False,
    cpu_threads: int = CPU_THREADS,
) -> RunResult:
    """The stored result of this run, or train it now (resuming a checkpoint) and store it."""
    store = store or ResultStore()
    device = select_device(device)
    key = key_of(config, seed, dataset.fingerprint, device, cpu_threads)
    stored = store.fetch_or_claim(
        key,
        config_key=config.key(),
        config_name=config.name,
        seed=seed,
        dataset_fingerprint=dataset.fingerprint,
        device_kind=device_kind(device),
        retry_failed=retry_failed,
    )
    if stored is not None:
        return stored
    checkpoint = store.path.parent / "checkpoints" / f"{key}.pt"
    try:
        result = train(
            config,
            dataset,
            seed,
            device,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            progress=progress,
            cpu_threads=cpu_threads,
        )
    except Exception as error:
        store.fail(key, error)
        raise
    except BaseException:
        store.release(key)  # interrupted: the next call resumes from the checkpoint
        raise
    store.finish(key, result)
    return result


def _worker_init(fingerprint: str, extensions: list[str], setup: Callable[[], None] | None) -> None:
    pin_source_fingerprint(fingerprint)
    import_extensions(extensions)
    if setup is not None:
        setup()


def _worker_run(
    config_json: str,
    seed: int,
    dataset_path: str,
    device: str | None,
    store_path: str,
    checkpoint_every: int,
    cpu_threads: int,
) -> tuple[str, int]:
    config = ExperimentConfig.from_json(config_json)
    run(
        config,
        seed,
        load(dataset_path, verify=False),
        device,
        store=ResultStore(store_path),
        checkpoint_every=checkpoint_every,
        progress=False,
        cpu_threads=cpu_threads,
    )
    return config.name, seed


def _device_of_job(requested: str | torch.device | None, resolved: torch.device, job: int) -> str | None:
    """The device of the ``job``-th run: the one requested, else CUDA cards in turn (several
    workers may share one card), else the CPU."""
    if requested is not None and str(requested) != "auto":
        return str(requested)
    if resolved.type == "cuda":
        return f"cuda:{job % torch.cuda.device_count()}"
    return None


def prefetch(
    runs: Iterable[tuple[ExperimentConfig, int]],
    dataset: PreparedDataset,
    device: str | torch.device | None = None,
    *,
    store: ResultStore | None = None,
    workers: int = 2,
    checkpoint_every: int = 1,
    progress: bool = True,
    cpu_threads: int = CPU_THREADS,
    setup: Callable[[], None] | None = None,
) -> None:
    """Train every (config, seed) not yet stored, ``workers`` at a time, with a progress bar.

    Failures are recorded in the store (and raised again by ``run`` when asked for).
    ``setup``: a picklable callable each worker calls once before its first run (the
    sensitivity suite plants a bug with it; give such runs their own store).
    """
    store = store or ResultStore()
    resolved = select_device(device)
    pending = [
        (config, seed)
        for config, seed in runs
        if not store.done(key_of(config, seed, dataset.fingerprint, resolved, cpu_threads))
    ]
    if not pending:
        return  # everything stored: no worker to start
    if dataset.path is None:
        raise ValueError("prefetch needs a dataset loaded from disk (its path is passed to the workers)")
    context = multiprocessing.get_context("spawn")
    initargs = (source_fingerprint(), extension_modules(), setup)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_worker_init, initargs=initargs
    ) as pool:
        futures = [
            pool.submit(
                _worker_run,
                config.to_json(),
                seed,
                str(dataset.path),
                _device_of_job(device, resolved, job),
                str(store.path),
                checkpoint_every,
                cpu_threads,
            )
            for job, (config, seed) in enumerate(pending)
        ]
        bar = tqdm(as_completed(futures), total=len(futures), desc="runs", unit="run", disable=not progress)
        for future in bar:
            try:
                name, seed = future.result()
                bar.set_postfix_str(f"{name} seed {seed}")
            except Exception as error:  # recorded in the store; reported when the claim asks for it
                bar.write(f"run failed: {type(error).__name__}: {error}")
