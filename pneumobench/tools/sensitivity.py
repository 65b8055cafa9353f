"""Planted bugs: how the sensitivity suite shows that the regression check catches real bugs.

A ``PlantedBug`` is a bug put into training on purpose without editing a core file: registered
modifications (a block, a loss or a schedule, as a user registers them) and/or a patch (a
context manager that the suite applies in this process and in every worker). The core never
knows the bugs; they live in ``suites/test_sensitivity.py``. A bug's runs go to a store of
their own, named after the bug and the source that defines it, so they never mix with real
runs and are trained again when the bug's code changes. A bug only in how a trained model is
scored (``scored_only``) needs no training: ``scored_again`` scores the baseline's kept final
models under it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pneumobench.core.results import RunResult
from pneumobench.data.prepared import PreparedDataset
from pneumobench.experiment.config import ExperimentConfig
from pneumobench.papers.viel_orhan_2020.modifications import MODIFICATIONS
from pneumobench.runs.runner import prefetch, run
from pneumobench.runs.store import ResultStore
from pneumobench.training.rescoring import rescore

__all__ = ["PlantedBug", "bug_runs", "bug_store_path", "scored_again"]

Patch = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class PlantedBug:
    """One planted bug. ``kind``: where it lives (data path, model, optimiser, loss, class
    branch, metric); ``modifications``: registered modifications that plant it; ``patch``: a
    module-level function returning a context manager that plants it (picklable, so workers
    can apply it too)."""

    name: str
    kind: str
    description: str
    modifications: tuple[str, ...] = ()
    patch: Patch | None = None
    # The bug is in how a trained model is scored (validation data, inference, the metric), never
    # in training: a model trained without it, scored under it, is what training with it gives.
    scored_only: bool = False

    def __post_init__(self) -> None:
        if self.scored_only and (self.modifications or self.patch is None):
            raise ValueError(f"planted bug {self.name!r}: a scored-only bug is a patch, with no modification")

    def planted(self) -> AbstractContextManager[Any]:
        """The bug's patch in this process (nothing to patch for a modification)."""
        return self.patch() if self.patch is not None else nullcontext()

    def fingerprint(self) -> str:
        """A hash of the source files that define the bug (its patch and modifications)."""
        objects: list[Any] = [MODIFICATIONS.get(name) for name in self.modifications]
        if self.patch is not None:
            objects.append(self.patch)
        files = sorted({inspect.getsourcefile(obj) or "" for obj in objects} - {""})
        digest = hashlib.sha256(self.name.encode())
        for file in files:
            digest.update(Path(file).read_bytes())
        return digest.hexdigest()[:12]


def _enter(patch: Patch) -> None:
    """Apply ``patch`` for the rest of this (worker) process's life."""
    patch().__enter__()


def bug_store_path(store_path: Path, bug: PlantedBug) -> Path:
    """Where a bug's runs are stored: beside the results store, one file per bug version."""
    return store_path.parent / "sensitivity" / f"{bug.name}-{bug.fingerprint()}.sqlite"


def bug_runs(
    bug: PlantedBug,
    base: ExperimentConfig,
    seeds: tuple[int, ...],
    dataset: PreparedDataset,
    device: torch.device | str | None,
    *,
    store_path: Path,
    workers: int = 2,
    checkpoint_every: int = 1,
) -> list[RunResult]:
    """The runs of ``base`` with the bug planted, one per seed: trained ``workers`` at a time
    (each worker plants the bug first), then fetched (or trained) here under the same patch."""
    config = base.with_modifications(*bug.modifications)
    store = ResultStore(bug_store_path(store_path, bug))
    if workers > 1 and dataset.path is not None:
        setup = functools.partial(_enter, bug.patch) if bug.patch is not None else None
        prefetch(
            [(config, seed) for seed in seeds],
            dataset,
            device,
            store=store,
            workers=workers,
            setup=setup,
            progress=False,
            checkpoint_every=checkpoint_every,
        )
    with bug.planted():
        return [run(config, seed, dataset, device, store=store, progress=False) for seed in seeds]


def scored_again(
    bug: PlantedBug,
    baseline: list[tuple[RunResult, Path]],
    dataset: PreparedDataset,
    device: torch.device | str,
) -> dict[int, RunResult]:
    """A scored-only bug's runs, per seed, from the baseline's runs and their final weights
    (``baseline``: each run with where it kept them): each model scored again under the bug's
    patch (``pneumobench.training.rescoring``). Seeds whose weights were not kept are left out,
    for ``bug_runs`` to train."""
    if not bug.scored_only:
        raise ValueError(f"planted bug {bug.name!r} changes training: its runs must be trained (bug_runs)")
    scored: dict[int, RunResult] = {}
    with bug.planted():
        for result, final_model in baseline:
            again = rescore(result, dataset, final_model, device)
            if again is not None:
                scored[result.seed] = again
    return scored
