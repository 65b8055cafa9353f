"""The paper's four modifications (``lovasz``, ``aspp``, ``hypercolumns``, ``scse``) and Table 6's rows.

A modification is a registered function ``ExperimentConfig -> ExperimentConfig`` (the registry
and ``apply_modifications`` live in ``pneumobench.experiment.config``, re-exported here); a researcher
registers a new one anywhere with ``@modification("name")`` and names it in
``ExperimentConfig.with_modifications``. Every combination of the paper's four is a row
of Table 6 (see ``table6_rows``).
"""

from __future__ import annotations

import itertools

from pneumobench.experiment.config import (
    MODIFICATIONS,
    PAPER_MODIFICATIONS,
    ExperimentConfig,
    apply_modifications,
    modification,
)

__all__ = ["MODIFICATIONS", "PAPER_MODIFICATIONS", "apply_modifications", "modification", "table6_rows"]


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
    """scSE on each decoder layer's concatenated input and on its output (the block named by
    ``model.scse_block``: smp's by default, the authors' C->C spatial gate with ``"scse_cc"``)."""
    return config.replace_model(attention=config.model.scse_block)
