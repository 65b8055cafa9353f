"""pytest plugin (registered through the ``pytest11`` entry point): markers and GPU skips."""

from __future__ import annotations

import pytest

MARKERS = {
    "paper": "a claim of the paper, judged against the paper's numbers or a recorded baseline",
    "regression": "compares today's runs with a recorded baseline",
    "gpu": "needs a CUDA device; skipped with a reason where there is none",
    "slow": "takes more than a few seconds on the CPU",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is False here")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
