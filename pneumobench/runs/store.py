"""The results store: one SQLite database (WAL) of runs, keyed so stale results are never reused.

A run's key combines the configuration key, the seed, the dataset fingerprint, a
fingerprint of the source that decides a run's numbers (training, losses, metrics, models),
the device kind and the other conditions the numbers depend on (the versions of torch,
torchvision, smp and numpy, the run's CPU thread count, the encoder weights' hash):
changing any of them trains again. A run is claimed (status ``running``) before it starts,
so concurrent processes (pytest-xdist workers) never train the same key twice: the others
wait. A failed run is recorded with its error.

A claim is a lease: its owner refreshes ``heartbeat_at`` while it trains (``keep_alive``), and
a claim whose heartbeat is older than ``LEASE_SECONDS`` is taken over from any host (a driver
SIGKILLed on another login node leaves such a claim); a claim by a dead process on this host
is taken over at once. A result or failure is written only by the claim's owner, so a
session whose claim was taken over cannot overwrite the new owner's run; each run records
the node that trained it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pneumobench.core.atomic import process_alive, write_text_atomic
from pneumobench.core.results import RunResult

__all__ = [
    "DEFAULT_STORE",
    "ResultStore",
    "RunFailedError",
    "StoreError",
    "StoredRun",
    "run_files",
    "run_key",
    "source_fingerprint",
]

DEFAULT_STORE = Path(".pneumobench") / "results.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    config_key TEXT NOT NULL,
    config_name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    dataset_fingerprint TEXT NOT NULL,
    source_fingerprint TEXT NOT NULL,
    device_kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    owner TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    result_json TEXT,
    error TEXT,
    heartbeat_at REAL,
    node TEXT
)
"""
# The recorded baseline each profile and device type was last judged with (content NULL: none
# was found at path), so a report from any folder judges the store as its session did.
JUDGED_WITH_SCHEMA = """
CREATE TABLE IF NOT EXISTS judged_with (
    profile TEXT NOT NULL,
    device_type TEXT NOT NULL,
    path TEXT NOT NULL,
    content TEXT,
    judged_at REAL NOT NULL,
    PRIMARY KEY (profile, device_type)
)
"""
LEASE_SECONDS = 120.0  # a claim not refreshed for this long is taken over, whatever host holds it


class StoreError(RuntimeError):
    """The results store cannot be opened or read (damaged, not a database, locked)."""


class RunFailedError(RuntimeError):
    """A run recorded as failed; the message carries its stored error."""


_SOURCE_OVERRIDE: list[str] = []


def pin_source_fingerprint(value: str) -> None:
    """Use ``value`` as this process's source fingerprint (worker processes take the parent's,
    so runs a parent hands out keep its keys even if files change meanwhile)."""
    _SOURCE_OVERRIDE[:] = [value]


def source_fingerprint() -> str:
    """Hash of the library's result-determining source (a change there invalidates results)."""
    return _SOURCE_OVERRIDE[0] if _SOURCE_OVERRIDE else _hash_sources()


# Fail-safe: every module of the package decides a run's numbers unless it is named here.
# These only read, judge, report or schedule finished runs (the store reads each result with
# today's code, so a change here applies to every run alike); a module added anywhere else,
# or moved, enters the fingerprint by default.
NON_RESULT_SOURCES = (
    "__main__.py",
    "_moved.py",
    "cli.py",
    "options.py",
    "pytest_plugin.py",
    "session.py",
    "judging",
    "reporting",
    "tools",
    "papers/viel_orhan_2020/claims.py",
    "runs/fence.py",
    "runs/progress.py",
    "runs/store.py",
)


def result_source_paths(root: Path) -> list[Path]:
    """The package's ``.py`` files (under ``root``) whose code can change a run's numbers."""

    def excluded(relative: str) -> bool:
        return any(relative == name or relative.startswith(name + "/") for name in NON_RESULT_SOURCES)

    return sorted(path for path in root.rglob("*.py") if not excluded(path.relative_to(root).as_posix()))


def hash_sources(root: Path) -> str:
    """The source fingerprint of the package at ``root``: its result-deciding files and their paths."""
    digest = hashlib.sha256()
    for path in result_source_paths(root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def _hash_sources() -> str:
    return hash_sources(Path(__file__).resolve().parent.parent)


def run_key(
    config_key: str, seed: int, dataset_fingerprint: str, device_kind: str, conditions: Mapping[str, Any]
) -> str:
    """The store key of a run; ``conditions``: what else decides its numbers (see the module doc)."""
    text = json.dumps(
        [config_key, seed, dataset_fingerprint, source_fingerprint(), device_kind, dict(conditions)], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str, heartbeat_at: float | None, lease_seconds: float) -> bool:
    """Whether a claim still stands: its heartbeat is recent, and on this host its process lives."""
    if heartbeat_at is None or time.time() - heartbeat_at > lease_seconds:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host: its heartbeat says it lives
    return process_alive(int(pid))


COLUMNS = (
    "run_key",
    "config_key",
    "config_name",
    "seed",
    "dataset_fingerprint",
    "source_fingerprint",
    "device_kind",
    "status",
    "owner",
    "started_at",
    "finished_at",
    "result_json",
    "error",
    "heartbeat_at",
    "node",
)
# Columns added since the first stores, each added on open to a store that lacks it: heartbeat_at
# (claims became leases), node (which node trained a run).
ADDED_COLUMNS = {"heartbeat_at": "REAL", "node": "TEXT"}
KNOWN_LAYOUTS = tuple(COLUMNS[: len(COLUMNS) - n] for n in range(len(ADDED_COLUMNS) + 1))


def _check_schema(path: Path) -> None:
    """Refuse (``StoreError``) a database that is not a pneumobench store, opened read-only so
    that nothing in it changes (no WAL switch, no new table)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            columns = tuple(row[1] for row in db.execute("PRAGMA table_info(runs)"))
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        raise StoreError(
            f"results store {path} is damaged or not a SQLite database ({error}); move it away "
            "(its runs will be trained again) or pass another --pb-store"
        ) from None
    if columns not in KNOWN_LAYOUTS:
        found = f"tables {sorted(tables)}" if tables else "no tables"
        raise StoreError(
            f"{path} is not a pneumobench results store ({found}; expected a 'runs' table with "
            f"columns {', '.join(COLUMNS)}); it was left untouched: pass another store path"
        )


def _result(key: str, text: str, path: Path) -> RunResult:
    """The stored JSON of run ``key`` as a ``RunResult``; a damaged one is a ``StoreError`` naming it."""
    try:
        return RunResult.from_json(text)
    except (ValueError, TypeError) as error:
        raise StoreError(
            f"results store {path}: the stored result of run {key} is damaged ({error}); "
            f"forget it (pneumobench store forget {key}) and it is trained again"
        ) from None


@dataclass(frozen=True)
class StoredRun:
    """A finished run and what its key was made of besides the configuration and seed."""

    result: RunResult
    source_fingerprint: str
    device_kind: str
    finished_at: float


class ResultStore:
    """Runs on disk. ``fetch_or_claim`` + ``finish``/``fail`` is the protocol the runner uses."""

    def __init__(
        self,
        path: str | os.PathLike = DEFAULT_STORE,
        *,
        poll_seconds: float = 1.0,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size:
            _check_schema(self.path)  # read-only first: a foreign database is refused untouched
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(SCHEMA)
                db.execute(JUDGED_WITH_SCHEMA)
                present = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
                for column, kind in ADDED_COLUMNS.items():
                    if column not in present:
                        db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
                db.execute("SELECT COUNT(*) FROM runs").fetchone()
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"results store {self.path} is damaged or not a pneumobench store ({error}); "
                "move it away (its runs will be trained again) or pass another --pb-store"
            ) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def fetch_or_claim(
        self,
        key: str,
        *,
        config_key: str,
        config_name: str,
        seed: int,
        dataset_fingerprint: str,
        device_kind: str,
        retry_failed: bool = False,
        on_wait: Callable[[str], None] | None = None,
    ) -> RunResult | None:
        """The stored result of ``key``; or None after claiming it (the caller must train).

        Waits while another live process holds the claim (``on_wait`` is told once which run,
        whose claim and how to free it); raises ``RunFailedError`` for a recorded failure
        unless ``retry_failed``.
        """
        identity = (config_key, config_name, seed, dataset_fingerprint, device_kind)
        told = False
        while True:
            row = self._claim_or_row(key, identity, retry_failed)
            if row is None:
                return None
            status, owner, result_json, error, heartbeat_at = row
            if status == "done":
                return _result(key, result_json, self.path)
            if status == "failed":
                raise RunFailedError(f"run {config_name} seed {seed} failed earlier: {error}")
            if on_wait is not None and not told:
                on_wait(f"waiting for {self.describe_claim(key, f'{config_name} seed {seed}', owner, heartbeat_at)}")
                told = True
            time.sleep(self.poll_seconds)  # another live process is training this key

    def describe_claim(self, key: str, label: str, owner: str, heartbeat_at: float | None) -> str:
        """A claim another process holds, for a person: the run, its owner, when the claim lapses
        if that owner is gone, and the command that frees it now."""
        since = 0.0 if heartbeat_at is None else heartbeat_at
        lapses = max(0.0, since + self.lease_seconds - time.time())
        return (
            f"{label}, which {owner} is training (its claim lapses {lapses:.0f} s after that process "
            f"stops; to free it now: pneumobench store forget {key[:12]} --store {self.path})"
        )

    def try_claim(
        self,
        key: str,
        *,
        config_key: str,
        config_name: str,
        seed: int,
        dataset_fingerprint: str,
        device_kind: str,
        retry_failed: bool = False,
    ) -> bool:
        """Claim ``key`` for this process without waiting: False when it is done, failed (unless
        ``retry_failed``) or held by another live process. A driver that hands runs to workers
        claims them so, and alone writes their results."""
        identity = (config_key, config_name, seed, dataset_fingerprint, device_kind)
        return self._claim_or_row(key, identity, retry_failed) is None

    def _claim_or_row(self, key: str, identity: tuple[str, str, int, str, str], retry_failed: bool) -> Any:
        """Claim ``key`` (returns None) unless another row stands: then that row's status, owner,
        result, error and heartbeat. A running row whose claim lapsed, or a failed one with
        ``retry_failed``, is taken over."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT status, owner, result_json, error, heartbeat_at FROM runs WHERE run_key = ?", (key,)
            ).fetchone()
            if (
                row is None
                or (row[0] == "running" and not _owner_alive(row[1], row[4], self.lease_seconds))
                or (row[0] == "failed" and retry_failed)
            ):
                now = time.time()
                db.execute(
                    "INSERT OR REPLACE INTO runs (run_key, config_key, config_name, seed, dataset_fingerprint, "
                    "source_fingerprint, device_kind, status, owner, started_at, heartbeat_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (key, *identity[:4], source_fingerprint(), identity[4], "running", _owner(), now, now),
                )
                db.execute("COMMIT")
                return None
            db.execute("COMMIT")
            return row

    def heartbeat(self) -> None:
        """Refresh every claim this process holds (a claim lapses ``lease_seconds`` after its last heartbeat)."""
        with self._connect() as db:
            db.execute("UPDATE runs SET heartbeat_at=? WHERE status='running' AND owner=?", (time.time(), _owner()))

    @contextmanager
    def keep_alive(self) -> Iterator[None]:
        """Refresh this process's claims from a background thread, four times per lease, while
        the block runs (the block trains them)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease_seconds / 4):
                self.heartbeat()

        thread = threading.Thread(target=beat, name="pneumobench-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def done(self, key: str) -> bool:
        """Whether ``key`` has a finished run."""
        with self._connect() as db:
            row = db.execute("SELECT status FROM runs WHERE run_key = ?", (key,)).fetchone()
        return row is not None and row[0] == "done"

    def finish(self, key: str, result: RunResult, node: str | None = None) -> bool:
        """Store the result of a run this process claimed (``node``: where it trained); False,
        and nothing written, when the claim is no longer this process's (taken over)."""
        with self._connect() as db:
            return bool(
                db.execute(
                    "UPDATE runs SET status='done', finished_at=?, result_json=?, error=NULL, node=? "
                    "WHERE run_key=? AND status='running' AND owner=?",
                    (time.time(), result.to_json(), node, key, _owner()),
                ).rowcount
            )

    def release(self, key: str) -> None:
        """Drop this process's unfinished claim (an interrupted run), so the next call trains it again."""
        with self._connect() as db:
            db.execute("DELETE FROM runs WHERE run_key=? AND status='running' AND owner=?", (key, _owner()))

    def fail(self, key: str, error: BaseException) -> bool:
        """Record the failure of a run this process claimed; False when the claim was taken over."""
        with self._connect() as db:
            return bool(
                db.execute(
                    "UPDATE runs SET status='failed', finished_at=?, error=? "
                    "WHERE run_key=? AND status='running' AND owner=?",
                    (time.time(), f"{type(error).__name__}: {error}", key, _owner()),
                ).rowcount
            )

    def unfinished(self) -> list[dict[str, Any]]:
        """Failed and running (pending) runs, oldest first, with their errors and whether a running
        run's owner process is still alive (a dead owner's claim is taken over by the next caller)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT run_key, config_name, seed, status, owner, started_at, error, heartbeat_at FROM runs "
                "WHERE status != 'done' ORDER BY started_at, run_key"
            ).fetchall()
        names = ("run_key", "config_name", "seed", "status", "owner", "started_at", "error", "heartbeat_at")
        entries = [dict(zip(names, row)) for row in rows]
        for entry in entries:
            alive = _owner_alive(entry["owner"], entry["heartbeat_at"], self.lease_seconds)
            entry["owner_alive"] = entry["status"] == "running" and alive
        return entries

    def status(self, key: str) -> tuple[str, str, float | None] | None:
        """A run's status, owner and last heartbeat (None when the store has no such run)."""
        with self._connect() as db:
            row = db.execute("SELECT status, owner, heartbeat_at FROM runs WHERE run_key = ?", (key,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def clear_failed(self) -> int:
        """Delete every failed run, so the next session trains it again; returns how many."""
        with self._connect() as db:
            return db.execute("DELETE FROM runs WHERE status='failed'").rowcount

    def forget(self, keys: list[str]) -> list[str]:
        """Delete the runs with these keys (or unique key prefixes), whatever their status; returns
        their full keys. An unknown or ambiguous key is a ``StoreError`` naming it, and nothing is deleted."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            matched = []
            for key in keys:
                found = [r[0] for r in db.execute("SELECT run_key FROM runs WHERE run_key LIKE ?", (f"{key}%",))]
                if len(found) != 1:
                    db.execute("ROLLBACK")
                    problem = "matches no run" if not found else f"matches {len(found)} runs; give more characters"
                    raise StoreError(f"run key {key!r} {problem} in {self.path}")
                matched.append(found[0])
            db.executemany("DELETE FROM runs WHERE run_key = ?", [(key,) for key in matched])
            db.execute("COMMIT")
        return sorted(set(matched))

    def remember_judged_with(self, profile: str, device_type: str, path: str | os.PathLike, text: str | None) -> None:
        """Keep the recorded baseline (its path and text; None: there was none) that ``profile``'s
        claims on ``device_type`` were just judged with, replacing the one before."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO judged_with VALUES (?, ?, ?, ?, ?)",
                (profile, device_type, str(Path(path).resolve()), text, time.time()),
            )

    def judged_with(self, profile: str, device_type: str) -> tuple[str, str | None] | None:
        """The path and text of the recorded baseline a session last judged ``profile`` on
        ``device_type`` with (text None: it had none); None when no session judged it here."""
        with self._connect() as db:
            row = db.execute(
                "SELECT path, content FROM judged_with WHERE profile = ? AND device_type = ?", (profile, device_type)
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def results(self) -> list[RunResult]:
        """Every finished run, oldest first."""
        return [stored.result for stored in self.finished()]

    def finished(self, *, source_fingerprint: str | None = None, config_key: str | None = None) -> list[StoredRun]:
        """Every finished run with the code version and device kind it ran with, oldest first;
        only those of one code version and configuration when given (read without decoding the rest)."""
        where, args = ["status='done'"], []
        for column, value in (("source_fingerprint", source_fingerprint), ("config_key", config_key)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        with self._connect() as db:
            rows = db.execute(
                "SELECT result_json, source_fingerprint, device_kind, finished_at, run_key FROM runs "
                f"WHERE {' AND '.join(where)} ORDER BY finished_at, run_key",
                args,
            ).fetchall()
        return [StoredRun(_result(r[4], r[0], self.path), r[1], r[2], r[3]) for r in rows]

    def counts(self) -> dict[str, int]:
        """Runs per status (done, running, failed)."""
        with self._connect() as db:
            return dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())

    def to_dataframe(self):
        """One row per run (finished or not): keys, status, the node that trained it, Dice, accuracy,
        wall time, error."""
        import pandas as pd

        with self._connect() as db:
            rows = db.execute(
                "SELECT run_key, config_name, config_key, seed, dataset_fingerprint, source_fingerprint, "
                "device_kind, status, node, started_at, finished_at, result_json, error FROM runs ORDER BY started_at"
            ).fetchall()
        records: list[dict[str, Any]] = []
        for *head, result_json, error in rows:
            record = dict(
                zip(
                    [
                        "run_key",
                        "config_name",
                        "config_key",
                        "seed",
                        "dataset_fingerprint",
                        "source_fingerprint",
                        "device_kind",
                        "status",
                        "node",
                        "started_at",
                        "finished_at",
                    ],
                    head,
                )
            )
            result = json.loads(result_json) if result_json else {}
            record.update(
                dice=result.get("dice"),
                accuracy=result.get("accuracy"),
                wall_time_s=result.get("wall_time_s"),
                error=error,
            )
            records.append(record)
        return pd.DataFrame.from_records(records)

    def to_csv(self, path: str | os.PathLike) -> None:
        write_text_atomic(Path(path), self.to_dataframe().to_csv(index=False))


def run_files(store: ResultStore, key: str, checkpoint_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Where run ``key`` checkpoints and where it keeps its final weights: in ``checkpoint_dir``
    (storage every node shares), else in a ``checkpoints`` folder beside the store, the weights in
    its ``final`` subfolder. Absolute, so a worker on another node or in another folder finds them."""
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else store.path.parent / "checkpoints"
    checkpoint = folder.resolve() / f"{key}.pt"
    return checkpoint, checkpoint.parent / "final" / f"{key}.pt"
