"""Runs on demand: return the stored result of (config, seed, dataset, device) or train and store it.

``run`` trains one run in this process on a miss. ``prefetch`` is the driver for many: it
claims every missing run in the store, hands them to an executor (``pneumobench.runs.executors``:
local worker processes, or Ray tasks across a cluster's GPUs) and alone stores what comes
back. Locally every run fixes its own torch thread count (one on the CPU by default; one GPU
each when there are several), which on two CPU cores is about 1.3x the throughput of one
two-thread process; the store's claims keep every run unique.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pneumobench.core.environment import library_versions
from pneumobench.core.results import RunResult
from pneumobench.data.prepared import PreparedDataset
from pneumobench.experiment.config import ExperimentConfig
from pneumobench.models.encoder import weights_fingerprint
from pneumobench.runs.devices import device_kind, select_device
from pneumobench.runs.executors import Executor, Job, LocalExecutor, Started, Trained, checkpoint_epochs
from pneumobench.runs.fence import ClaimTakenOver, new_claim_token, release_claim_file, stamp_claim_file
from pneumobench.runs.progress import BarProgress, RunProgress
from pneumobench.runs.store import ResultStore, run_files, run_key, source_fingerprint
from pneumobench.training.engine import CPU_THREADS, train

__all__ = [
    "PrefetchSummary",
    "device_kind",
    "final_model_path",
    "key_of",
    "key_of_kind",
    "prefetch",
    "run",
    "run_conditions",
    "select_device",
]


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


def key_of_kind(
    config: ExperimentConfig, seed: int, dataset_fingerprint: str, kind: str, cpu_threads: int = CPU_THREADS
) -> str:
    """The store key of this run on a device of ``kind`` (``cpu``, ``cuda:<card>``), wherever it trains."""
    return _run_identity(config, seed, dataset_fingerprint, kind, cpu_threads)[0]


def _run_identity(
    config: ExperimentConfig, seed: int, fingerprint: str, kind: str, cpu_threads: int
) -> tuple[str, dict[str, Any]]:
    """A run's store key and the fields the store records beside it."""
    key = run_key(config.key(), seed, fingerprint, kind, run_conditions(config, cpu_threads))
    fields = {
        "config_key": config.key(),
        "config_name": config.name,
        "seed": seed,
        "dataset_fingerprint": fingerprint,
        "device_kind": kind,
    }
    return key, fields


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
    kind: str | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    on_wait: Callable[[str], None] | None = None,
    keep_model: bool = False,
) -> RunResult:
    """The stored result of this run, or train it now (resuming a checkpoint) and store it.
    ``keep_model``: a run trained now keeps its final weights (``final_model_path``).

    ``kind``: the device kind the run is filed under when an executor trained it elsewhere (a
    Ray cluster's cards); such a run is never trained here on a miss. ``on_wait``: told once
    when another process holds the run's claim (which run, whose, how to free it)."""
    store = store or ResultStore()
    device = select_device(device)
    here = device_kind(device)
    kind = kind or here
    key, identity = _run_identity(config, seed, dataset.fingerprint, kind, cpu_threads)
    stored = store.fetch_or_claim(key, **identity, retry_failed=retry_failed, on_wait=on_wait)
    if stored is not None:
        return stored
    if kind != here:
        store.release(key)
        raise RuntimeError(f"run {config.name} seed {seed} is for {kind}, not this machine's {here}: prefetch it")
    try:
        checkpoint, final_model = run_files(store, key, checkpoint_dir)
        with store.keep_alive():
            result = train(
                config,
                dataset,
                seed,
                device,
                checkpoint=checkpoint,
                checkpoint_every=checkpoint_every,
                progress=progress,
                cpu_threads=cpu_threads,
                final_model=final_model if keep_model else None,
            )
    except Exception as error:
        store.fail(key, error)
        raise
    except BaseException:
        store.release(key)  # interrupted: the next call resumes from the checkpoint
        raise
    store.finish(key, result)
    return result


@dataclass
class PrefetchSummary:
    """What one ``prefetch`` did: runs trained, failed and resumed, runs another session took
    over, and the nodes used."""

    trained: int = 0
    failed: list[str] = field(default_factory=list)  # "<config> seed <n>: <error>"
    resumed: dict[str, int] = field(default_factory=dict)  # run label -> epochs done in its checkpoint
    nodes: set[str] = field(default_factory=set)
    taken_over: list[str] = field(default_factory=list)  # labels of runs whose claim another session took


@dataclass
class _Tally:
    """Runs running and queued and the nodes used, counted from the tasks' own start and end events."""

    queued: set[str]
    running: dict[str, str] = field(default_factory=dict)  # run key -> the node training it
    nodes_used: set[str] = field(default_factory=set)

    def started(self, key: str, node: str) -> None:
        self.queued.discard(key)
        self.running[key] = node  # a retried task: its new node
        self.nodes_used.add(node)

    def finished(self, key: str) -> None:
        self.queued.discard(key)
        self.running.pop(key, None)

    def line(self, nodes_alive: int) -> str:
        return (
            f"{len(self.running)} running, {len(self.queued)} queued, "
            f"nodes {len(self.nodes_used)} used of {nodes_alive}"
        )


def final_model_path(
    store: ResultStore,
    config: ExperimentConfig,
    seed: int,
    dataset: PreparedDataset,
    kind: str,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    cpu_threads: int = CPU_THREADS,
) -> Path:
    """Where the run of ``config`` with ``seed`` on a device of ``kind`` keeps its final weights
    when it was trained with ``keep_model`` (``pneumobench.training.rescoring`` reads them)."""
    return run_files(store, key_of_kind(config, seed, dataset.fingerprint, kind, cpu_threads), checkpoint_dir)[1]


def _file_result(store: ResultStore, job: Job, outcome: Trained | BaseException, kind: str, summary: PrefetchSummary):
    """Store one job's outcome (the driver alone writes the store); a result made by other code
    or on another kind of device than its key says is recorded as a failure, naming both. A run
    whose claim another session took over is left to that session."""
    problem: BaseException | None = outcome if isinstance(outcome, BaseException) else None
    if isinstance(outcome, Trained):
        if outcome.source != source_fingerprint():
            problem = RuntimeError(
                f"node {outcome.node} runs other pneumobench code (source {outcome.source}, driver "
                f"{source_fingerprint()}): install the same version on every node"
            )
        elif outcome.device_kind != kind:
            problem = RuntimeError(
                f"node {outcome.node} trained on {outcome.device_kind}, not {kind}: give the cluster one kind of card"
            )
    release_claim_file(Path(job.checkpoint), job.claim)
    if isinstance(problem, ClaimTakenOver):
        store.release(job.key)  # a no-op where another session holds it now; else the next one trains it
        summary.taken_over.append(job.label)
        return
    if problem is not None:
        if not store.fail(job.key, problem):
            summary.taken_over.append(job.label)
            return
        summary.failed.append(f"{job.label}: {type(problem).__name__}: {problem}")
        return
    assert isinstance(outcome, Trained)
    if not store.finish(job.key, RunResult.from_json(outcome.result_json), node=outcome.node):
        summary.taken_over.append(job.label)
        return
    summary.trained += 1
    summary.nodes.add(outcome.node)
    if outcome.resumed_from:
        summary.resumed[job.label] = outcome.resumed_from


def _claim_jobs(
    runs: Iterable[tuple[ExperimentConfig, int]],
    dataset: PreparedDataset,
    store: ResultStore,
    executor: Executor,
    device: str | None,
    kind: str,
    options: dict[str, Any],
) -> list[Job]:
    """A job for every run not stored that this process could claim (others are another
    process's to train: ``run`` waits for them)."""
    jobs: list[Job] = []
    for config, seed in runs:
        key, identity = _run_identity(config, seed, dataset.fingerprint, kind, options["cpu_threads"])
        if store.try_claim(key, **identity):
            checkpoint, final_model = run_files(store, key, options["checkpoint_dir"])
            token = new_claim_token()
            stamp_claim_file(checkpoint, token)  # the claim's tasks alone may write this checkpoint
            job_device = executor.job_device(device, len(jobs))
            keep = config.key() in options["keep_models"]
            final = final_model if keep else ""
            jobs.append(
                Job(
                    config.to_json(),
                    seed,
                    key,
                    job_device,
                    str(checkpoint),
                    options["checkpoint_every"],
                    options["cpu_threads"],
                    token,
                    str(final),
                )
            )
    return jobs


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
    executor: Executor | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    reporter: RunProgress | None = None,
    keep_models: Collection[str] = (),
) -> PrefetchSummary:
    """Train every (config, seed) not yet stored on ``executor`` (default: ``workers`` local
    processes), reporting to ``reporter`` (default: one progress bar of runs done, running and
    queued and the nodes in use, unless ``progress`` is False).

    This process (the driver) claims each run, the executor's workers train them and return
    their results, and the driver stores them: workers never open the store. A failure is
    recorded in the store (and raised again by ``run`` when asked for); an interrupted
    session releases its claims, and the next resumes each run from its checkpoint.
    ``setup``: a picklable callable each local worker calls once before its first run (the
    sensitivity suite plants a bug with it; give such runs their own store). ``keep_models``:
    configuration keys whose runs trained now keep their final weights (``final_model_path``).
    """
    store = store or ResultStore()
    executor = executor or LocalExecutor(workers, setup)
    reporter = reporter or BarProgress(progress)
    requested = None if device is None else str(device)
    summary = PrefetchSummary()
    pending = [(config, seed) for config, seed in runs]
    if not pending:
        return summary
    kind = executor.run_device_kind(requested)
    options = {
        "cpu_threads": cpu_threads,
        "checkpoint_every": checkpoint_every,
        "checkpoint_dir": checkpoint_dir,
        "keep_models": keep_models,
    }
    jobs = _claim_jobs(pending, dataset, store, executor, requested, kind, options)
    if not jobs:
        return summary  # everything stored or in another process's hands
    reporter.started(len(jobs), len(pending) - len(jobs), executor.name)
    _report_resumed(jobs, reporter)
    _train_and_file(executor, jobs, dataset, store, kind, reporter, summary)
    return summary


def _train_and_file(
    executor: Executor,
    jobs: list[Job],
    dataset: PreparedDataset,
    store: ResultStore,
    kind: str,
    reporter: RunProgress,
    summary: PrefetchSummary,
) -> None:
    """Train ``jobs`` on ``executor``, storing each outcome as it comes and reporting it; on an
    interruption, release the claims of the runs not finished (the next session resumes them)."""
    unfinished = {job.key: job for job in jobs}
    tally = _Tally(set(unfinished))
    try:
        with store.keep_alive():  # the claims are leases: refreshed while their runs train
            for event in executor.train(jobs, dataset):
                if isinstance(event, Started):
                    tally.started(event.job.key, event.node)
                    reporter.run_started(event.job.label, event.node, tally.line(executor.nodes()))
                    continue
                job, outcome = event.job, event.outcome
                _file_result(store, job, outcome, kind, summary)
                del unfinished[job.key]
                tally.finished(job.key)
                failure = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException) else None
                reporter.finished(job.label, tally.line(executor.nodes()), failure)
    except BaseException:
        reporter.interrupted(summary.trained, _with_checkpoints(unfinished.values()))
        raise
    finally:
        reporter.close()
        for job in unfinished.values():  # interrupted: the next session trains them, resuming checkpoints
            store.release(job.key)
            release_claim_file(Path(job.checkpoint), job.claim)  # a task still running stops at its next save


def _report_resumed(jobs: Iterable[Job], reporter: RunProgress) -> None:
    """Tell ``reporter`` which jobs resume a checkpoint, and from which epoch."""
    for job in jobs:
        done = checkpoint_epochs(Path(job.checkpoint))
        if done:
            reporter.resuming(job.label, done, ExperimentConfig.from_json(job.config_json).epochs)


def _with_checkpoints(jobs: Iterable[Job]) -> list[str]:
    """The jobs that leave a checkpoint to resume from, as "<label> at epoch <n>"."""
    kept = []
    for job in jobs:
        done = checkpoint_epochs(Path(job.checkpoint))
        if done:
            kept.append(f"{job.label} at epoch {done}")
    return kept
