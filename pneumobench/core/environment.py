"""The environment a result came from: library versions, device, CPU, threads and the git commit.

``library_versions`` are the libraries whose version changes a run's numbers (smp provides
the encoder, ASPP and scSE; timm the ``tu-`` encoders); they are part of every run's store key and a recorded baseline
only judges runs made with the same ones. torch is imported by the functions that ask it, so
the judging stage can name ``RESULT_LIBRARIES`` without loading it.
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pneumobench import __version__

if TYPE_CHECKING:
    import torch

__all__ = ["RESULT_LIBRARIES", "cpu_model", "device_name", "environment", "git_commit", "library_versions"]

RESULT_LIBRARIES = ("torch", "torchvision", "smp", "timm", "numpy")


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout pneumobench runs from (with ``-dirty``), or None."""
    root = Path(__file__).resolve().parents[2]  # the checkout (pneumobench/core/ is two levels down)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """The versions of ``RESULT_LIBRARIES`` in this process."""
    import numpy as np
    import segmentation_models_pytorch as smp
    import timm
    import torch
    import torchvision

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "smp": smp.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
    }


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: torch.device) -> str:
    """The card's model name on CUDA, else the CPU's."""
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_model()


def environment(device: torch.device | str = "cpu", *, cpu_threads: int | None = None) -> dict[str, Any]:
    """Everything needed to tell two results' environments apart. ``cpu_threads``: the torch
    thread count a run fixed for itself (default: this process's current one)."""
    import torch

    device = torch.device(device)
    return {
        "pneumobench": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        **library_versions(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "device_name": device_name(device),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_threads": cpu_threads if cpu_threads is not None else torch.get_num_threads(),
        "platform": platform.platform(),
    }
