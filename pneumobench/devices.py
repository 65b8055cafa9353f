"""Device names: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked before any work.

Light on purpose: the syntax is checked without torch, which is imported only when a CUDA
device is named (to see whether this machine has it), so the pytest plugin can check
``--pb-device`` at startup without loading torch for every session.
"""

from __future__ import annotations

import re

__all__ = ["DEVICE_CHOICES", "DeviceError", "check_device"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


class DeviceError(ValueError):
    """A device name that is malformed or names a device this machine does not have."""


def check_device(name: str) -> None:
    """Refuse a device name that is malformed, or a CUDA device this machine lacks (one line, the fix)."""
    match = re.fullmatch(r"auto|cpu|cuda(?::(\d+))?", name)
    if match is None:
        raise DeviceError(f"device {name!r}: give {DEVICE_CHOICES}")
    if not name.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise DeviceError(
            f"device {name!r}: CUDA is not available here (torch.cuda.is_available() is False); give auto or cpu"
        )
    if match.group(1) is not None and int(match.group(1)) >= count:
        raise DeviceError(f"device {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
