"""The claim fence on checkpoints: a task whose claim another session took over stops before it
writes its checkpoint, whether it runs here or is the orphan of a driver killed with SIGKILL."""

import dataclasses
import json
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
from pneumobench.runs.executors import InlineExecutor, Job, checkpoint_epochs, train_job
from pneumobench.runs.fence import (
    ClaimFence,
    ClaimTakenOver,
    claim_file,
    release_claim_file,
    stamp_claim_file,
)
from pneumobench.runs.runner import _claim_jobs, prefetch, run
from pneumobench.runs.store import ResultStore

TINY = ExperimentConfig(
    model=ModelConfig(encoder="resnet18"),
    image_size=32,
    batch_size=16,
    stages=(StageConfig(1, 3e-3, 1e-3, freeze_encoder=True), StageConfig(3, 3e-3, 1e-4)),
)


def test_a_fence_owns_its_file_until_another_claim_replaces_it(tmp_path):
    checkpoint = tmp_path / "k.pt"
    fence = ClaimFence(checkpoint, "mine", "aspp seed 0")
    fence.adopt()  # no driver's file (a node without the shared folder): the task creates it
    assert claim_file(checkpoint).read_text() == "mine"
    fence.check()
    with pytest.raises(ClaimTakenOver, match="aspp seed 0: its claim late was taken over .* holds claim mine"):
        ClaimFence(checkpoint, "late", "aspp seed 0").adopt()  # an existing claim is never replaced by a task
    stamp_claim_file(checkpoint, "theirs")  # a session that took the run over
    with pytest.raises(ClaimTakenOver, match="holds claim theirs"):
        fence.check()
    release_claim_file(checkpoint, "mine")  # not ours: stays
    assert claim_file(checkpoint).read_text() == "theirs"
    release_claim_file(checkpoint, "theirs")
    assert not claim_file(checkpoint).exists()
    with pytest.raises(ClaimTakenOver, match="holds no claim"):
        fence.check()


def test_a_task_whose_claim_is_taken_over_mid_run_stops_before_its_next_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    from pneumobench.training import engine

    checkpoint = tmp_path / "k.pt"
    stamp_claim_file(checkpoint, "first")
    saved = []
    original = engine._save_checkpoint

    def save_then_lose_the_claim(writer, state, identity, path, elapsed_s):
        original(writer, state, identity, path, elapsed_s)
        writer.wait()
        saved.append(checkpoint_epochs(path))
        stamp_claim_file(checkpoint, "second")  # another session claims the run after the first save

    monkeypatch.setattr(engine, "_save_checkpoint", save_then_lose_the_claim)
    job = Job(TINY.to_json(), 0, "k", "cpu", str(checkpoint), 1, 1, claim="first")
    with pytest.raises(ClaimTakenOver):
        train_job(job, tiny_dataset)
    assert saved == [1] and checkpoint_epochs(checkpoint) == 1  # nothing written after the takeover


ORPHAN = textwrap.dedent(
    """
    import dataclasses, json, sys
    sys.path.insert(0, {tests!r})
    from fence_probe import log_checkpoint_saves
    from pneumobench.data.prepared import load
    from pneumobench.runs.executors import Job, train_job

    log_checkpoint_saves({log!r})
    train_job(Job(**json.loads({job!r})), load({data!r}))
    """
)


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _dead_pid():
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_the_orphan_of_a_killed_driver_stops_when_the_next_session_takes_its_run_over(tiny_dataset, tmp_path):
    """Once a SIGKILLed driver's worker trained on to the end, writing the checkpoints the
    restarted session resumed from. The killed driver: a claim in the store whose owner process
    is dead, and the job it handed out, training in a process of its own (as a pool worker
    outlives its driver) that saves slowly (0.4 s a checkpoint), so that it is mid-run when the
    next session claims the run and trains it here."""
    store = ResultStore(tmp_path / "store.sqlite")
    [job] = _claim_jobs([(TINY, 5)], tiny_dataset, store, InlineExecutor(), "cpu", "cpu",
                        {"cpu_threads": 1, "checkpoint_every": 1, "checkpoint_dir": tmp_path / "checkpoints",
                         "keep_models": ()})
    with sqlite3.connect(store.path) as db:  # the driver that claimed it was killed
        db.execute("UPDATE runs SET owner=?", (f"{socket.gethostname()}:{_dead_pid()}",))
    log = tmp_path / "saves.jsonl"
    script = ORPHAN.format(tests=str(Path(__file__).parent), log=str(log), job=json.dumps(dataclasses.asdict(job)),
                           data=str(tiny_dataset.path))
    orphan = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 120
        while not _log(log) and time.time() < deadline and orphan.poll() is None:
            time.sleep(0.05)
        assert _log(log), f"the orphan wrote no checkpoint (exit {orphan.poll()})"
        took_over = time.time()
        summary = prefetch([(TINY, 5)], tiny_dataset, "cpu", store=store, progress=False, executor=InlineExecutor(),
                           checkpoint_dir=tmp_path / "checkpoints")
        assert summary.trained == 1 and summary.resumed
        assert orphan.wait(timeout=30) != 0  # it stopped: ClaimTakenOver
        entries = _log(log)
        assert entries[-1]["event"] == "taken over"
        late = [entry for entry in entries if entry["event"] == "saved" and entry["started"] > took_over]
        assert len(late) <= 1, late  # one save may pass its check just before the takeover; unfenced: every epoch
    finally:
        orphan.kill()
    uninterrupted = run(TINY, 5, tiny_dataset, "cpu", store=ResultStore(tmp_path / "local.sqlite"), progress=False)
    stored = run(TINY, 5, tiny_dataset, "cpu", store=store, progress=False)
    assert stored.dice_per_image == uninterrupted.dice_per_image and stored.cls_prob == uninterrupted.cls_prob
