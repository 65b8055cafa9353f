"""The driver and its executors without training: results filed by the driver alone, results
from other code or another card refused, claims released on interrupt, Ray missing as a usage
error (the Ray executor itself: tests/test_ray.py)."""

import sys

import pytest
from fakes import fake_run

from pneumobench.experiment.profiles import get_profile
from pneumobench.runs.executors import ExecutorError, Finished, Started, Trained, make_executor
from pneumobench.runs.runner import prefetch
from pneumobench.runs.store import ResultStore, source_fingerprint

SMOKE = get_profile("smoke")


class FakeExecutor:
    """Returns hand-made results (``fake_run``) as a worker would, or the given failure."""

    name = "fake"

    def __init__(self, dataset, *, source=None, kind="cpu", fail=None, interrupt_after=None):
        self.dataset, self.source, self.kind, self.fail, self.interrupt_after = dataset, source, kind, fail, interrupt_after
        self.jobs = []

    def run_device_kind(self, requested):
        return "cpu"

    def job_device(self, requested, index):
        return "cpu"

    def train(self, jobs, dataset):
        self.jobs.extend(jobs)
        for index, job in enumerate(jobs):
            if self.interrupt_after is not None and index == self.interrupt_after:
                raise KeyboardInterrupt
            yield Started(job, "node-a")
            if self.fail is not None:
                yield Finished(job, self.fail)
                continue
            yield Finished(job, self.trained(job, "node-a"))

    def trained(self, job, node):
        result = fake_run(SMOKE.config(), job.seed, self.dataset)
        return Trained(result.to_json(), 2 if job.seed == 1 else 0, node, self.source or source_fingerprint(), self.kind)

    def nodes(self):
        return 3


def test_the_driver_files_every_result_once_and_notes_resumed_runs(tiny_dataset, tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    executor = FakeExecutor(tiny_dataset)
    runs = [(SMOKE.config(), seed) for seed in range(3)]
    summary = prefetch(runs, tiny_dataset, "cpu", store=store, executor=executor, progress=False)
    assert summary.trained == 3 and summary.resumed == {"baseline seed 1": 2} and summary.nodes == {"node-a"}
    assert store.counts() == {"done": 3} and [j.seed for j in executor.jobs] == [0, 1, 2]
    again = prefetch(runs, tiny_dataset, "cpu", store=store, executor=executor, progress=False)
    assert again.trained == 0 and len(executor.jobs) == 3  # nothing handed out twice


@pytest.mark.parametrize("problem, message", [
    ({"source": "0" * 24}, "node node-a runs other pneumobench code (source 000000000000000000000000, driver "),
    ({"kind": "cuda:NVIDIA H100"}, "node node-a trained on cuda:NVIDIA H100, not cpu: give the cluster one kind of card"),
    ({"fail": RuntimeError("CUDA out of memory")}, "RuntimeError: CUDA out of memory"),
])
def test_a_result_from_other_code_or_card_or_a_failure_is_recorded_failed(tiny_dataset, tmp_path, problem, message):
    store = ResultStore(tmp_path / "s.sqlite")
    summary = prefetch([(SMOKE.config(), 0)], tiny_dataset, "cpu", store=store,
                       executor=FakeExecutor(tiny_dataset, **problem), progress=False)
    assert summary.trained == 0 and len(summary.failed) == 1 and message in summary.failed[0]
    [entry] = store.unfinished()
    assert entry["status"] == "failed" and message in entry["error"]


def test_an_interrupted_driver_releases_the_runs_it_had_not_filed(tiny_dataset, tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    with pytest.raises(KeyboardInterrupt):
        prefetch([(SMOKE.config(), s) for s in range(3)], tiny_dataset, "cpu", store=store, progress=False,
                 executor=FakeExecutor(tiny_dataset, interrupt_after=1))
    assert store.counts() == {"done": 1} and store.unfinished() == []  # the next session trains the other two


def test_unknown_executor_names_the_choices():
    with pytest.raises(ExecutorError, match="unknown executor 'spark'; registered: local, ray"):
        make_executor("spark")


def test_without_ray_the_executor_is_a_one_line_usage_error(monkeypatch, tiny_dataset, tmp_path, capsys):
    from pneumobench.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ExecutorError, match=r"needs Ray, which is not installed: install the optional extra: "
                                            r"pip install -e '\.\[ray\]'"):
        make_executor("ray")
    code = main(["runs", "--executor", "ray", "--data", str(tiny_dataset.path), "--store", str(tmp_path / "s.sqlite"),
                 "--config", "baseline", "--seeds", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install -e '.[ray]'" in err


@pytest.mark.parametrize("args, message", [
    (["--config", "nosuch"], "pneumobench runs: unknown modification 'nosuch'"),
    (["--seeds", "0,0"], "pneumobench runs: seed 0 is given more than once"),
    (["--device", "banana"], "pneumobench runs: device 'banana': give auto, cpu, cuda or cuda:N"),
    (["--gpus-per-run", "0"], "argument --gpus-per-run: 0: give a share of one GPU (0 < x <= 1, e.g. 0.5) or a "
                              "whole number of GPUs (1, 2)"),
    (["--gpus-per-run", "1.5"], "argument --gpus-per-run: 1.5: give a share of one GPU"),  # Ray cannot split 1.5
    (["--gpus-per-run", "x"], "argument --gpus-per-run: 'x' is not a number: give a share of one GPU"),
    (["--executor", "spark"], "argument --executor: invalid choice: 'spark'"),
])
def test_cli_runs_usage_errors_are_one_line(args, message, tmp_path, capsys):
    from pneumobench.cli import main

    try:
        code = main(["runs", "--store", str(tmp_path / "s.sqlite"), "--quiet", *args])
    except SystemExit as exited:  # argparse's own errors
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


class OverlappingExecutor(FakeExecutor):
    """Three tasks on two nodes, the third queued until the first ends: the events a cluster sends."""

    def train(self, jobs, dataset):
        first, second, third = jobs
        yield Started(first, "node-a")
        yield Started(second, "node-b")
        yield Finished(first, self.trained(first, "node-a"))
        yield Started(third, "node-a")
        yield Finished(second, self.trained(second, "node-b"))
        yield Finished(third, self.trained(third, "node-a"))


def test_running_queued_and_nodes_are_counted_from_the_tasks_and_each_run_records_its_node(tiny_dataset, tmp_path):
    """Once "running" was the free slots, the figures came only after the first run ended, and a
    cluster whose three nodes all trained said "nodes 1 used of 3"."""
    from pneumobench.runs.progress import LineProgress

    store, lines = ResultStore(tmp_path / "s.sqlite"), []
    runs = [(SMOKE.config(), seed) for seed in (0, 2, 3)]
    prefetch(runs, tiny_dataset, "cpu", store=store, executor=OverlappingExecutor(tiny_dataset),
             reporter=LineProgress(lines.append))
    assert [line.split("; ")[:2] for line in lines[1:]] == [
        ["pneumobench: baseline seed 0 started on node-a", "1 running, 2 queued, nodes 1 used of 3"],
        ["pneumobench: baseline seed 2 started on node-b", "2 running, 1 queued, nodes 2 used of 3"],
        ["pneumobench: [1/3] baseline seed 0 done", "1 running, 1 queued, nodes 2 used of 3"],
        ["pneumobench: baseline seed 3 started on node-a", "2 running, 0 queued, nodes 2 used of 3"],
        ["pneumobench: [2/3] baseline seed 2 done", "1 running, 0 queued, nodes 2 used of 3"],
        ["pneumobench: [3/3] baseline seed 3 done", "0 running, 0 queued, nodes 2 used of 3"],
    ]
    frame = store.to_dataframe().sort_values("seed")
    assert frame["node"].tolist() == ["node-a", "node-b", "node-a"]


def test_a_task_stopped_by_the_fence_leaves_the_run_to_whoever_holds_it(tiny_dataset, tmp_path):
    """A ClaimTakenOver is no failure: a claim still this driver's is released (the next session
    trains the run), one another session took is left alone."""
    import sqlite3

    from pneumobench.runs.fence import ClaimTakenOver

    store = ResultStore(tmp_path / "s.sqlite")
    stopped = FakeExecutor(tiny_dataset, fail=ClaimTakenOver("baseline seed 0: taken over"))
    summary = prefetch([(SMOKE.config(), 0)], tiny_dataset, "cpu", store=store, executor=stopped, progress=False)
    assert summary.taken_over == ["baseline seed 0"] and summary.failed == [] and store.counts() == {}

    class TakenMidRun(FakeExecutor):
        def train(self, jobs, dataset):
            [job] = jobs
            with sqlite3.connect(store.path) as db:  # another session took the claim over meanwhile
                db.execute("UPDATE runs SET owner='otherhost:9'")
            yield Finished(job, self.trained(job, "node-a"))

    summary = prefetch([(SMOKE.config(), 1)], tiny_dataset, "cpu", store=store, executor=TakenMidRun(tiny_dataset),
                       progress=False)
    assert summary.taken_over == ["baseline seed 1"] and summary.trained == 0
    [entry] = store.unfinished()
    assert entry["owner"] == "otherhost:9" and entry["status"] == "running"  # its run, untouched
