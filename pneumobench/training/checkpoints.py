"""Training checkpoints that are verified before a run resumes from them.

A checkpoint is a dict saved with ``torch.save`` (written atomically) that carries a SHA-256
of its own contents: every tensor's dtype, shape and bytes and every other value, walked in
a fixed order. On resume the file is loaded with ``weights_only=True`` and the checksum
recomputed; a zero-byte, truncated, unreadable or altered file (a flipped byte in a tensor
loads without complaint otherwise) is set aside under a new name with a warning naming both,
and the run starts over. A sound checkpoint of another run is refused (``TrainingSetupError``
in ``training``), never resumed from.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from pneumobench.core.atomic import atomic_file, process_alive

__all__ = ["CheckpointWarning", "CheckpointWriter", "content_checksum", "load_verified", "save_verified"]

CHECKSUM_KEY = "checksum"


class CheckpointWarning(RuntimeWarning):
    """A damaged checkpoint was set aside; the run starts over."""


def _feed(digest: Any, value: Any) -> None:
    """Add ``value`` to ``digest`` unambiguously: type tags, sorted mapping keys, tensor bytes."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"V{type(value).__name__}:{value!r};".encode())


def content_checksum(state: dict[str, Any]) -> str:
    """SHA-256 of everything in ``state`` but its checksum."""
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in state.items() if key != CHECKSUM_KEY})
    return digest.hexdigest()


def save_verified(state: dict[str, Any], path: Path) -> None:
    """Save ``state`` and its checksum to ``path`` atomically."""
    with atomic_file(path) as scratch:
        torch.save({**state, CHECKSUM_KEY: content_checksum(state)}, scratch)


def _remove_stale_scratch(path: Path) -> None:
    """Delete scratch files of ``path`` left by writers that died (a kill or a full disk mid-save)."""
    for scratch in path.parent.glob(f".{path.stem}.tmp-*{path.suffix}"):
        pid = scratch.name[len(f".{path.stem}.tmp-") : len(scratch.name) - len(path.suffix)]
        if pid.isdigit() and not process_alive(int(pid)):
            scratch.unlink(missing_ok=True)


def load_verified(path: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists and is intact; a damaged one is set aside (None).
    Scratch files of earlier writers that died are removed first."""
    _remove_stale_scratch(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        problem = None
        if not isinstance(state, dict) or CHECKSUM_KEY not in state:
            problem = "no checksum (not a pneumobench checkpoint, or an older format)"
        elif state[CHECKSUM_KEY] != content_checksum(state):
            problem = "its contents do not match its checksum"
    except Exception as error:  # zero bytes, truncated, not a torch file: every reader error means damaged
        problem = f"unreadable ({type(error).__name__}: {error})"
    if problem is None:
        return state
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    warnings.warn(
        f"checkpoint {path}: {problem}; set aside as {aside}; the run starts over", CheckpointWarning, stacklevel=3
    )
    return None


def _snapshot(value: Any) -> Any:
    """A copy of ``value`` that later training cannot change: tensors cloned on their own device
    (on CUDA an asynchronous copy, no wait for the host), containers rebuilt, other values kept."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _snapshot(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_snapshot(item) for item in value)
    return value


class CheckpointWriter:
    """Saves checkpoints off the training loop's critical path: ``submit`` snapshots the state on
    its device and returns; a background thread copies the snapshot to the host, checksums it and
    writes it atomically (``save_verified``) while the next epoch trains. One write is in flight at
    a time: ``submit`` and ``wait`` first finish the previous one and raise its error, if any."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, state: dict[str, Any], path: Path) -> None:
        self._join()
        snapshot = _snapshot(state)
        self._thread = threading.Thread(target=self._write, args=(snapshot, path), name="checkpoint", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Finish the write in flight (before the run reports, or removes its checkpoint)."""
        self._join()

    def _write(self, snapshot: dict[str, Any], path: Path) -> None:
        try:
            save_verified(snapshot, path)
        except BaseException as error:  # raised in the training thread by the next submit or wait
            self._error = error

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
