"""Claims in the results store are leases: a claim whose owner died, on this host or any other,
is taken over once its heartbeat lapses; a live owner keeps it; a waiting process names the run,
its owner and the command that frees it; a store from before leases opens and gains the column."""

import os
import socket
import sqlite3
import threading
import time

import pytest

from pneumobench.runs.store import COLUMNS, KNOWN_LAYOUTS, SCHEMA, ResultStore

IDENTITY = {"config_key": "c", "config_name": "aspp", "seed": 1, "dataset_fingerprint": "d", "device_kind": "cpu"}


def _set(store, key, **fields):
    with sqlite3.connect(store.path) as db:
        for name, value in fields.items():
            db.execute(f"UPDATE runs SET {name}=? WHERE run_key=?", (value, key))


def _claim_by(store, key, owner, heartbeat_age):
    """``key`` claimed by ``owner`` (host:pid), last refreshed ``heartbeat_age`` seconds ago."""
    assert store.try_claim(key, **IDENTITY)
    _set(store, key, owner=owner, heartbeat_at=time.time() - heartbeat_age)


def test_a_claim_from_another_host_stands_while_fresh_and_is_taken_over_once_lapsed(tmp_path):
    """Once a driver SIGKILLed on another host left a claim no process ever took over."""
    store = ResultStore(tmp_path / "s.sqlite", lease_seconds=60)
    _claim_by(store, "k", "otherhost:123", heartbeat_age=10)
    assert not store.try_claim("k", **IDENTITY)
    assert [e["owner_alive"] for e in store.unfinished()] == [True]
    _set(store, "k", heartbeat_at=time.time() - 61)
    assert [e["owner_alive"] for e in store.unfinished()] == [False]
    assert store.try_claim("k", **IDENTITY)
    assert store.status("k")[:2] == ("running", f"{socket.gethostname()}:{os.getpid()}")


def test_a_dead_process_on_this_host_loses_its_claim_at_once(tmp_path):
    store = ResultStore(tmp_path / "s.sqlite", lease_seconds=3600)
    _claim_by(store, "k", f"{socket.gethostname()}:999999999", heartbeat_age=0)
    assert store.try_claim("k", **IDENTITY)


def _heartbeat_age(store):
    with sqlite3.connect(store.path) as db:
        return time.time() - db.execute("SELECT heartbeat_at FROM runs").fetchone()[0]


def test_keep_alive_refreshes_this_process_claims_while_it_trains_and_stops_after(tmp_path):
    lease = 0.4
    store = ResultStore(tmp_path / "s.sqlite", lease_seconds=lease)
    assert store.try_claim("k", **IDENTITY)
    with store.keep_alive():
        time.sleep(3 * lease)  # three leases: without the heartbeat the claim would have lapsed
        assert _heartbeat_age(store) < lease
    assert [t.name for t in threading.enumerate() if t.name == "pneumobench-lease"] == []
    time.sleep(1.5 * lease)
    assert _heartbeat_age(store) > lease  # no heartbeat once the block ended


def test_a_waiting_process_names_the_run_its_owner_and_the_command_that_frees_it(tmp_path):
    store = ResultStore(tmp_path / "s.sqlite", poll_seconds=0.05, lease_seconds=0.5)
    _claim_by(store, "abcdef1234567890", "otherhost:77", heartbeat_age=0)
    told = []
    assert store.fetch_or_claim("abcdef1234567890", **IDENTITY, on_wait=told.append) is None  # claimed once lapsed
    assert len(told) == 1
    assert told[0].startswith("waiting for aspp seed 1, which otherhost:77 is training (its claim lapses ")
    assert told[0].endswith(f"to free it now: pneumobench store forget abcdef123456 --store {store.path})")


@pytest.mark.parametrize("dropped", [",\n    heartbeat_at REAL,\n    node TEXT", ",\n    node TEXT"])
def test_a_store_from_before_leases_or_nodes_opens_and_its_old_claims_count_as_lapsed(tmp_path, dropped):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(SCHEMA.replace(dropped, ""))
        db.execute(
            "INSERT INTO runs (run_key, config_key, config_name, seed, dataset_fingerprint, source_fingerprint, "
            "device_kind, status, owner, started_at) VALUES ('k', 'c', 'aspp', 1, 'd', 's', 'cpu', 'running', "
            "'otherhost:1', 0)"
        )
        assert tuple(row[1] for row in db.execute("PRAGMA table_info(runs)")) in KNOWN_LAYOUTS[1:]
    store = ResultStore(path)
    with sqlite3.connect(path) as db:
        assert tuple(row[1] for row in db.execute("PRAGMA table_info(runs)")) == COLUMNS
    assert store.try_claim("k", **IDENTITY)


def test_only_the_claims_owner_files_its_result_or_failure_or_releases_it(tmp_path, tiny_dataset):
    """A session whose claim was taken over (its lease lapsed) once overwrote the new owner's run."""
    from fakes import fake_run

    from pneumobench.experiment.profiles import get_profile

    store = ResultStore(tmp_path / "s.sqlite")
    result = fake_run(get_profile("smoke").config(), 1, tiny_dataset)
    _claim_by(store, "k", "otherhost:77", heartbeat_age=0)
    assert not store.finish("k", result, node="n1") and not store.fail("k", RuntimeError("x"))
    store.release("k")
    assert store.status("k") == ("running", "otherhost:77", pytest.approx(time.time(), abs=5))
    store.forget(["k"])
    assert store.try_claim("k", **IDENTITY) and store.finish("k", result, node="n1")
    assert store.to_dataframe()["node"].tolist() == ["n1"]


@pytest.mark.parametrize("columns", ["run_key TEXT, other TEXT"])
def test_a_foreign_table_is_still_refused(tmp_path, columns):
    from pneumobench.runs.store import StoreError

    path = tmp_path / "foreign.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE runs ({columns})")
    with pytest.raises(StoreError, match="is not a pneumobench results store"):
        ResultStore(path)
