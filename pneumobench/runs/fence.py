"""Checkpoint fences: only the task that holds a run's claim writes (or removes) its checkpoint.

A driver killed mid-session can leave its tasks training: a local pool's workers finish the
run in hand, Ray tasks go on until Ray notices the driver is gone. The next session takes
the claims over once their leases lapse and trains the same runs again from their
checkpoints. So that the orphans cannot write those checkpoints, the driver writes a claim
file beside each checkpoint when it claims the run (a fresh token per claim; a session that
takes a claim over writes its own); the task checks that file before each checkpoint write
and before it removes the checkpoint at the end, and stops with ``ClaimTakenOver`` when
another claim has replaced its own. A task on a node that does not share the checkpoint
folder finds no claim file and creates it, exclusively, so two tasks on one node are fenced
too.

What is left: between a check and the write that follows it an orphan may save one more
checkpoint. That checkpoint is of the same run (its identity is verified on resume) and
training is deterministic, so a resumed run's result is unchanged either way.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from pneumobench.core.atomic import write_text_atomic

__all__ = ["ClaimFence", "ClaimTakenOver", "claim_file", "new_claim_token", "release_claim_file", "stamp_claim_file"]


class ClaimTakenOver(RuntimeError):
    """Another session claimed this run after its lease lapsed: this task stops and writes nothing."""


def claim_file(checkpoint: Path) -> Path:
    """The claim file beside ``checkpoint``."""
    return checkpoint.with_name(f"{checkpoint.stem}.claim")


def new_claim_token() -> str:
    """A token for one claim: the claiming process and a random part (never reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def stamp_claim_file(checkpoint: Path, token: str) -> None:
    """Record ``token`` as the claim that owns ``checkpoint`` (the driver, when it claims the run)."""
    write_text_atomic(claim_file(checkpoint), token)


def _holder(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def release_claim_file(checkpoint: Path, token: str) -> None:
    """Remove the claim file if ``token`` still owns it (a run filed, failed or released)."""
    path = claim_file(checkpoint)
    if _holder(path) == token:
        path.unlink(missing_ok=True)


class ClaimFence:
    """What a task checks before it touches its run's checkpoint."""

    def __init__(self, checkpoint: Path, token: str, label: str) -> None:
        self.path = claim_file(checkpoint)
        self.token = token
        self.label = label

    def adopt(self) -> None:
        """At the task's start: create the claim file where the driver's is not to be seen (a
        node without the shared folder), then check it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(self.token)
        self.check()

    def check(self) -> None:
        """``ClaimTakenOver`` unless this task's claim still owns the checkpoint."""
        holder = _holder(self.path)
        if holder != self.token:
            now = "no claim" if holder is None else f"claim {holder}"
            raise ClaimTakenOver(
                f"{self.label}: its claim {self.token} was taken over ({self.path} now holds {now}); "
                "this task stops without writing its checkpoint"
            )
