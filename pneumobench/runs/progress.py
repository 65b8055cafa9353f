"""Progress of a driver's runs: how many to train, each resumed, finished or failed, and an interrupt.

``runner.prefetch`` reports to a ``RunProgress``. ``BarProgress`` is the command line's tqdm
bar. ``LineProgress`` writes one line per event through a function: the pytest plugin hands
it its terminal reporter, whose output pytest does not capture (a bar written to stderr inside
a test is captured and shown only when the test fails). Each line says the runs done, running
and queued (counted from the tasks' own start events) and the nodes used, and an ETA from the
pace of the runs done so far in this session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from tqdm import tqdm

__all__ = ["BarProgress", "LineProgress", "RunProgress", "duration"]


class RunProgress(Protocol):
    """What a driver says while it trains runs."""

    def started(self, total: int, stored: int, executor: str) -> None:
        """``total`` runs to train on ``executor``; ``stored`` more were found in the store."""

    def resuming(self, label: str, epochs_done: int, epochs: int) -> None:
        """A run starts from its checkpoint, ``epochs_done`` of ``epochs`` done."""

    def run_started(self, label: str, node: str, status: str) -> None:
        """A task began training a run on ``node``; ``status``: runs running and queued, nodes used."""

    def finished(self, label: str, status: str, failure: str | None) -> None:
        """A run came back (``failure``: why it failed); ``status``: runs running and queued, nodes used."""

    def interrupted(self, stored: int, kept: list[str]) -> None:
        """The session was interrupted after ``stored`` runs; ``kept``: unfinished runs with a checkpoint."""

    def close(self) -> None:
        """No more runs."""


def duration(seconds: float) -> str:
    """``seconds`` for a person: "45 s", "4 min 10 s", "2 h 05 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _interrupted_line(stored: int, kept: list[str]) -> str:
    runs = f"{stored} run{'' if stored == 1 else 's'} stored"
    if not kept:
        return f"interrupted: {runs}; the next session trains the rest"
    return (
        f"interrupted: {runs}; {len(kept)} unfinished run{'' if len(kept) == 1 else 's'} kept "
        f"{'its checkpoint' if len(kept) == 1 else 'their checkpoints'} ({', '.join(kept)}), "
        "which the next session resumes"
    )


class LineProgress:
    """One line per event through ``write``; ``clock`` (seconds) times the ETA."""

    def __init__(self, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.write = write
        self.clock = clock
        self.total = 0
        self.done = 0
        self.since = clock()

    def started(self, total: int, stored: int, executor: str) -> None:
        self.total, self.done, self.since = total, 0, self.clock()
        found = f" ({stored} more already stored)" if stored else ""
        self.write(f"pneumobench: training {total} run{'' if total == 1 else 's'} on the {executor} executor{found}")

    def resuming(self, label: str, epochs_done: int, epochs: int) -> None:
        self.write(f"pneumobench: {label} resumes from its checkpoint ({epochs_done} of {epochs} epochs done)")

    def run_started(self, label: str, node: str, status: str) -> None:
        self.write(f"pneumobench: {label} started on {node}; {status}")

    def finished(self, label: str, status: str, failure: str | None) -> None:
        self.done += 1
        what = f"run failed: {label}: {failure}" if failure is not None else f"{label} done"
        self.write(f"pneumobench: [{self.done}/{self.total}] {what}; {status}; {self._eta()}")

    def _eta(self) -> str:
        left = self.total - self.done
        if left == 0:
            return f"all {self.total} in {duration(self.clock() - self.since)}"
        per_run = (self.clock() - self.since) / self.done
        return f"ETA {duration(per_run * left)}"

    def interrupted(self, stored: int, kept: list[str]) -> None:
        self.write(f"pneumobench: {_interrupted_line(stored, kept)}")

    def close(self) -> None:
        """Nothing to close: every line is written when it happens."""


class BarProgress:
    """A tqdm bar of runs (``enabled`` False: silent); resumes, failures and an interrupt as lines above it."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None

    def started(self, total: int, stored: int, executor: str) -> None:
        self.bar = tqdm(total=total, desc=f"runs ({executor})", unit="run", disable=not self.enabled)

    def _line(self, text: str) -> None:
        if self.enabled:
            tqdm.write(text)

    def resuming(self, label: str, epochs_done: int, epochs: int) -> None:
        self._line(f"{label} resumes from its checkpoint ({epochs_done} of {epochs} epochs done)")

    def run_started(self, label: str, node: str, status: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{label} started on {node}; {status}")

    def finished(self, label: str, status: str, failure: str | None) -> None:
        if failure is not None:
            self._line(f"run failed: {label}: {failure}")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{label}; {status}")

    def interrupted(self, stored: int, kept: list[str]) -> None:
        self._line(_interrupted_line(stored, kept))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
