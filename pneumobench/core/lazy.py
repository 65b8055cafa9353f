"""Lazy re-exports for the stage packages' ``__init__`` (PEP 562).

Each stage package lists its public names and the submodule that defines each; a name is
imported on first access. So ``import pneumobench.runs.store`` stays light (no torch) even
though ``pneumobench.runs`` also offers ``run``, which trains.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``, whose submodule ``module``
    defines each name in ``exports[module]``."""
    where = {name: module for module, names in exports.items() for name in names}

    def getattr_(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def dir_() -> list[str]:
        return sorted(where)

    return sorted(where), getattr_, dir_
