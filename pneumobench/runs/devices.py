"""Device names: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked before any work.

Light on purpose: the syntax is checked without torch, which is imported only when a CUDA
device is named (to see whether this machine has it), so the pytest plugin can check
``--pb-device`` at startup without loading torch for every session.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_CHOICES", "DeviceError", "check_device", "default_workers", "device_kind", "select_device"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


class DeviceError(ValueError):
    """A device name that is malformed or names a device this machine does not have."""


def check_device(name: str, *, local: bool = True) -> None:
    """Refuse a device name that is malformed, or a CUDA device this machine lacks (one line, the
    fix). ``local=False``: the runs train elsewhere (a Ray cluster), so only the name is checked."""
    match = re.fullmatch(r"auto|cpu|cuda(?::(\d+))?", name)
    if match is None:
        raise DeviceError(f"device {name!r}: give {DEVICE_CHOICES}")
    if not name.startswith("cuda") or not local:
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise DeviceError(
            f"device {name!r}: CUDA is not available here (torch.cuda.is_available() is False); give auto or cpu"
        )
    if match.group(1) is not None and int(match.group(1)) >= count:
        raise DeviceError(f"device {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested``, else CUDA when available (pytest-xdist worker N takes GPU N mod count), else CPU."""
    import torch

    if requested is not None and str(requested) != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = int(worker[2:]) if worker[2:].isdigit() else 0
        return torch.device(f"cuda:{index % torch.cuda.device_count()}")
    return torch.device("cpu")


def device_kind(device: torch.device) -> str:
    """What results depend on: ``cpu`` or ``cuda:<card name>`` (not the card's index)."""
    import torch

    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else "cpu"


def default_workers(device: torch.device) -> int:
    """Runs trained at once when none is asked for: one per GPU on CUDA, else 2 (the CPU's cores)."""
    import torch

    return torch.cuda.device_count() if device.type == "cuda" else 2
