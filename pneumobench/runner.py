"""Runs on demand: return the stored result of (config, seed, dataset, device) or train and store it.

``prefetch`` trains many runs in parallel worker processes (one torch thread each on the
CPU, one GPU each when there are several), which on two CPU cores is about 1.3x the
throughput of one two-thread process; the store's claims keep every run unique.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch
from tqdm import tqdm

from pneumobench.config import ExperimentConfig
from pneumobench.data.prepared import PreparedDataset, load
from pneumobench.store import ResultStore, pin_source_fingerprint, run_key, source_fingerprint
from pneumobench.training import RunResult, train

__all__ = ["select_device", "device_kind", "run", "prefetch"]


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
) -> RunResult:
    """The stored result of this run, or train it now (resuming a checkpoint) and store it."""
    store = store or ResultStore()
    device = select_device(device)
    key = run_key(config.key(), seed, dataset.fingerprint, device_kind(device))
    stored = store.fetch_or_claim(
        key, config_key=config.key(), config_name=config.name, seed=seed,
        dataset_fingerprint=dataset.fingerprint, device_kind=device_kind(device), retry_failed=retry_failed,
    )
    if stored is not None:
        return stored
    checkpoint = store.path.parent / "checkpoints" / f"{key}.pt"
    try:
        result = train(config, dataset, seed, device, checkpoint=checkpoint, checkpoint_every=checkpoint_every, progress=progress)
    except Exception as error:
        store.fail(key, error)
        raise
    except BaseException:
        store.release(key)  # interrupted: the next call resumes from the checkpoint
        raise
    store.finish(key, result)
    return result


def _worker_init(threads: int, fingerprint: str) -> None:
    torch.set_num_threads(threads)
    pin_source_fingerprint(fingerprint)


def _worker_run(config_json: str, seed: int, dataset_path: str, device: str | None, store_path: str, checkpoint_every: int) -> tuple[str, int]:
    config = ExperimentConfig.from_json(config_json)
    run(config, seed, load(dataset_path, verify=False), device, store=ResultStore(store_path),
        checkpoint_every=checkpoint_every, progress=False)
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
) -> None:
    """Train every (config, seed) not yet stored, ``workers`` at a time, with a progress bar.

    Failures are recorded in the store (and raised again by ``run`` when asked for).
    """
    store = store or ResultStore()
    pending = list(runs)
    if not pending:
        return
    if dataset.path is None:
        raise ValueError("prefetch needs a dataset loaded from disk (its path is passed to the workers)")
    resolved = select_device(device)
    threads = max(1, (os.cpu_count() or 1) // workers) if resolved.type == "cpu" else 1
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(threads, source_fingerprint())) as pool:
        futures = [
            pool.submit(_worker_run, config.to_json(), seed, str(dataset.path), _device_of_job(device, resolved, job),
                        str(store.path), checkpoint_every)
            for job, (config, seed) in enumerate(pending)
        ]
        bar = tqdm(as_completed(futures), total=len(futures), desc="runs", unit="run", disable=not progress)
        for future in bar:
            try:
                name, seed = future.result()
                bar.set_postfix_str(f"{name} seed {seed}")
            except Exception as error:  # recorded in the store; reported when the claim asks for it
                bar.write(f"run failed: {type(error).__name__}: {error}")
