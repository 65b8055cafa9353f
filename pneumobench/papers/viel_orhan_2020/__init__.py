"""Viel & Orhan (2020), *Deep Learning for Pneumothorax Segmentation*: its four
modifications, Table 6's rows, its claims and families, its numbers (``paper.json``) and the
authors' own runs.
"""

from pneumobench.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "claims": ("PAPER_CLAIMS", "all_claims", "regression_claims", "table6_claims"),
        "modifications": ("table6_rows",),
    },
)
