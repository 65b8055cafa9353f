"""The import paths of release 0.1 (one flat package), kept working for one release.

The modules now live in stage subpackages (``pneumobench.judging.stats`` was
``pneumobench.stats``). Importing an old path gives the new module itself, so attributes
and monkeypatches are shared, with a ``DeprecationWarning`` naming the new path. Two old
modules were split: ``pneumobench.claims`` (the machinery and the paper's claims) and
``pneumobench.training`` (now the package whose ``engine`` module trains; its names are
re-exported by ``pneumobench.training`` itself).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from typing import Any

__all__ = ["MOVED", "install"]

MOVED: dict[str, tuple[str, ...]] = {
    "pneumobench.registry": ("pneumobench.core.registry",),
    "pneumobench.atomic": ("pneumobench.core.atomic",),
    "pneumobench.environment": ("pneumobench.core.environment",),
    "pneumobench.results": ("pneumobench.core.results",),
    "pneumobench.config": ("pneumobench.experiment.config",),
    "pneumobench.profiles": ("pneumobench.experiment.profiles",),
    "pneumobench.seeds": ("pneumobench.experiment.seeds",),
    "pneumobench.modifications": ("pneumobench.papers.viel_orhan_2020.modifications",),
    "pneumobench.losses": ("pneumobench.training.losses",),
    "pneumobench.metrics": ("pneumobench.training.metrics",),
    "pneumobench.selection": ("pneumobench.training.selection",),
    "pneumobench.checkpoints": ("pneumobench.training.checkpoints",),
    "pneumobench.store": ("pneumobench.runs.store",),
    "pneumobench.runner": ("pneumobench.runs.runner",),
    "pneumobench.executors": ("pneumobench.runs.executors",),
    "pneumobench.devices": ("pneumobench.runs.devices",),
    "pneumobench.claims": ("pneumobench.judging.claims", "pneumobench.papers.viel_orhan_2020.claims"),
    "pneumobench.stats": ("pneumobench.judging.stats",),
    "pneumobench.families": ("pneumobench.judging.families",),
    "pneumobench.baselines": ("pneumobench.judging.baselines",),
    "pneumobench.verdicts": ("pneumobench.judging.verdicts",),
    "pneumobench.sequential": ("pneumobench.judging.spending",),
    "pneumobench.sequential_claims": ("pneumobench.judging.looks",),
    "pneumobench.calibration": ("pneumobench.judging.calibration",),
    "pneumobench.report": ("pneumobench.reporting.report",),
    "pneumobench.protocols": ("pneumobench.reporting.sections",),
    "pneumobench.authors_runs": ("pneumobench.reporting.authors_runs",),
    "pneumobench.figures": ("pneumobench.reporting.figures",),
    "pneumobench.bench": ("pneumobench.tools.bench",),
    "pneumobench.gpu_check": ("pneumobench.tools.gpu_check",),
    "pneumobench.sensitivity": ("pneumobench.tools.sensitivity",),
    "pneumobench.models.registry": ("pneumobench.models.extensions",),
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old path to its new module (or, for a split module, a view of both parts)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        targets = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {' and '.join(targets)}; the old path goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        modules = [importlib.import_module(target) for target in targets]
        if len(modules) == 1:
            return modules[0]
        return _SplitModule(spec.name, modules)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the new module was executed when it was imported."""


class _SplitModule(types.ModuleType):
    """An old module whose names now live in several modules: each looked up in turn."""

    def __init__(self, name: str, parts: list[types.ModuleType]) -> None:
        super().__init__(name, f"moved to {', '.join(part.__name__ for part in parts)}")
        self._parts = parts

    def __getattr__(self, name: str) -> Any:
        for part in self._parts:
            if hasattr(part, name):
                return getattr(part, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (``import pneumobench`` does it)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
