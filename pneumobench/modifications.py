"""Modifications: registered functions ``ExperimentConfig -> ExperimentConfig``.

The paper's four (``lovasz``, ``aspp``, ``hypercolumns``, ``scse``) are here; a researcher
registers a new one anywhere with ``@modification("name")`` and names it in
``ExperimentConfig.with_modifications``. Every combination of the paper's four is a row
of Table 6 (see ``table6_rows``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from pneumobench.config import ExperimentConfig
from pneumobench.registry import Registry

__all__ = ["MODIFICATIONS", "PAPER_MODIFICATIONS", "modification", "apply_modifications", "table6_rows"]

Modification = Callable[[ExperimentConfig], ExperimentConfig]
MODIFICATIONS: Registry[Modification] = Registry("modification")
PAPER_MODIFICATIONS = ("lovasz", "aspp", "hypercolumns", "scse")


def modification(name: str) -> Callable[[Modification], Modification]:
    """Decorator: register ``fn(config) -> config`` as modification ``name``."""
    return MODIFICATIONS.register(name)


def apply_modifications(config: ExperimentConfig, names: Iterable[str]) -> ExperimentConfig:
    """Apply each named modification once, in order, recording the set of names in a canonical
    order (the paper's four first, in Table 6's order, then others alphabetically)."""
    applied = set(config.modifications)
    for name in names:
        if name in applied:
            continue
        config = MODIFICATIONS.get(name)(config)
        applied.add(name)
    return config.replace(modifications=tuple(sorted(applied, key=_canonical_order)))


def _canonical_order(name: str) -> tuple[int, str]:
    paper_rank = PAPER_MODIFICATIONS.index(name) if name in PAPER_MODIFICATIONS else len(PAPER_MODIFICATIONS)
    return paper_rank, name


def table6_rows() -> list[tuple[str, ...]]:
    """The 16 subsets of the paper's modifications, in the order of the paper's Table 6."""
    rows: list[tuple[str, ...]] = []
    for size in range(len(PAPER_MODIFICATIONS) + 1):
        rows.extend(itertools.combinations(PAPER_MODIFICATIONS, size))
    return rows


@modification("lovasz")
def lovasz(config: ExperimentConfig) -> ExperimentConfig:
    """Lovász loss (authors' symmetric ELU variant) with a 0.01 classification weight."""
    return config.replace(seg_loss="lovasz", cls_weight=None)


@modification("aspp")
def aspp(config: ExperimentConfig) -> ExperimentConfig:
    """ASPP (1x1, 3x3 at dilations 6/12/18, image pooling; 256 filters) as the center block."""
    return config.replace_model(center="aspp")


@modification("hypercolumns")
def hypercolumns(config: ExperimentConfig) -> ExperimentConfig:
    """The four decoder outputs, upsampled and concatenated, feed the global layer."""
    return config.replace_model(hypercolumns=True)


@modification("scse")
def scse(config: ExperimentConfig) -> ExperimentConfig:
    """scSE on each decoder layer's concatenated input and on its output."""
    return config.replace_model(attention="scse")
