"""The Ray executor on a real multi-node Ray cluster on this machine (a head and two worker
nodes, each its own raylet): the same per-image scores as a local run, each run stored once
with the node that trained it, the dataset through the object store where a node lacks its
path, and a node killed mid-run (its raylet and workers) with the run retried on the other
node, resumed from the shared checkpoint. CI installs the ``ray`` extra and sets
PNEUMOBENCH_REQUIRE_RAY=1, so there these tests can only pass or fail."""

import dataclasses
import os
import threading
import time

import pytest

from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
from pneumobench.runs.executors import ExecutorError, make_executor
from pneumobench.runs.runner import prefetch, run
from pneumobench.runs.store import ResultStore

if os.environ.get("PNEUMOBENCH_REQUIRE_RAY") != "1":
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
import ray  # noqa: E402

TINY = ExperimentConfig(
    model=ModelConfig(encoder="resnet18"),
    image_size=32,
    batch_size=16,
    stages=(StageConfig(1, 3e-3, 1e-3, freeze_encoder=True), StageConfig(2, 3e-3, 1e-4)),
)


@pytest.fixture(scope="module")
def cluster():
    """A head without CPUs that advertises one GPU it does not have (runs here ask for the CPU;
    the GPU probe must fail in one line), and two worker nodes of one CPU each, so two runs at
    a time, one on each node."""
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 1})
    workers = [nodes.add_node(num_cpus=1) for _ in range(2)]
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, include_dashboard=False, log_to_driver=False)
    yield nodes, workers
    ray.shutdown()
    nodes.shutdown()


def test_ray_runs_score_every_image_as_a_local_run_and_are_stored_once(cluster, tiny_dataset, tmp_path):
    local = run(TINY, 0, tiny_dataset, "cpu", store=ResultStore(tmp_path / "local.sqlite"), progress=False)
    store = ResultStore(tmp_path / "ray.sqlite")
    executor = make_executor("ray", gpus_per_run=1.0)
    summary = prefetch([(TINY, 0), (TINY, 1)], tiny_dataset, "cpu", store=store, executor=executor, progress=False)
    assert summary.trained == 2 and not summary.failed and len(summary.nodes) == 2  # one CPU per node
    assert store.counts() == {"done": 2}
    assert set(store.to_dataframe()["node"]) == summary.nodes
    stored = run(TINY, 0, tiny_dataset, "cpu", store=store, progress=False)  # read back, not trained
    assert stored.dice_per_image == local.dice_per_image and stored.cls_prob == local.cls_prob
    assert stored.epoch_scores == local.epoch_scores
    again = prefetch([(TINY, 0), (TINY, 1)], tiny_dataset, "cpu", store=store, executor=executor, progress=False)
    assert again.trained == 0 and store.counts() == {"done": 2}


def test_without_the_datasets_path_the_workers_read_it_from_the_object_store(cluster, tiny_dataset, tmp_path):
    local = run(TINY, 2, tiny_dataset, "cpu", store=ResultStore(tmp_path / "local.sqlite"), progress=False)
    elsewhere = dataclasses.replace(tiny_dataset, path=tmp_path / "not-on-this-node")
    store = ResultStore(tmp_path / "ray.sqlite")
    summary = prefetch([(TINY, 2)], elsewhere, "cpu", store=store, executor=make_executor("ray"), progress=False)
    assert summary.trained == 1 and not summary.failed
    assert not (tmp_path / "not-on-this-node").exists()
    assert run(TINY, 2, elsewhere, "cpu", store=store, progress=False).dice_per_image == local.dice_per_image


def _ray_task_pids() -> list[int]:
    """Worker processes now running a pneumobench task (Ray titles them ``ray::_ray_job``)."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any("ray::_ray_job" in part for part in process.info["cmdline"] or []):
            found.append(process.pid)
    return found


def _node_of(pid, cluster):
    """The cluster's worker node whose raylet started process ``pid``."""
    import psutil

    ancestors = {process.pid for process in psutil.Process(pid).parents()}
    [node] = [node for node in cluster[1] if node.all_processes["raylet"][0].process.pid in ancestors]
    return node


def test_a_killed_node_is_retried_on_the_other_resumes_its_checkpoint_and_is_stored_once(
    cluster, tiny_dataset, tmp_path
):
    config = TINY.replace(stages=(StageConfig(1, 3e-3, 1e-3, True), StageConfig(6, 3e-3, 1e-4)))
    store, shared = ResultStore(tmp_path / "ray.sqlite"), tmp_path / "shared-checkpoints"
    outcome = {}

    def drive():
        outcome["summary"] = prefetch([(config, 3)], tiny_dataset, "cpu", store=store, progress=False,
                                      executor=make_executor("ray"), checkpoint_dir=shared)

    def checkpoints():  # not the scratch files (".<key>.tmp-<pid>.pt") of a save in progress
        return [path for path in shared.glob("*.pt") if not path.name.startswith(".")]

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.time() + 180
    while not checkpoints() and time.time() < deadline and driver.is_alive():
        time.sleep(0.05)
    assert checkpoints(), "the run wrote no checkpoint before it ended"
    [pid] = _ray_task_pids()
    killed = _node_of(pid, cluster)
    cluster[0].remove_node(killed, allow_graceful=False)  # the node's raylet and every process it started
    driver.join(timeout=300)
    summary = outcome["summary"]
    assert summary.trained == 1 and not summary.failed, summary.failed
    label = f"{config.name} seed 3"
    assert 1 <= summary.resumed[label] < config.epochs  # the retry resumed the dead node's checkpoint
    assert summary.nodes == set(store.to_dataframe()["node"]) and killed.unique_id[:12] not in summary.nodes
    assert store.counts() == {"done": 1} and not checkpoints()
    uninterrupted = run(config, 3, tiny_dataset, "cpu", store=ResultStore(tmp_path / "local.sqlite"), progress=False)
    assert run(config, 3, tiny_dataset, "cpu", store=store, progress=False).dice_per_image == uninterrupted.dice_per_image
    cluster[1].remove(killed)
    cluster[1].append(cluster[0].add_node(num_cpus=1))  # the next tests have two worker nodes again
    cluster[0].wait_for_nodes()


def test_cli_runs_on_ray_prints_what_happened(cluster, tiny_dataset, tmp_path, capsys):
    from pneumobench.cli import main

    store = tmp_path / "cli.sqlite"
    args = ["runs", "--profile", "smoke", "--config", "baseline", "--seeds", "1", "--data", str(tiny_dataset.path),
            "--store", str(store), "--executor", "ray", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 runs of 1 configurations x 1 seeds on the ray executor: 1 trained, 0 failed, 0 already stored" in out
    assert ResultStore(store).counts() == {"done": 1}
    assert main(args) == 0 and "0 trained, 0 failed, 1 already stored" in capsys.readouterr().out


def test_a_request_no_node_can_meet_is_refused_instead_of_queued_forever(cluster):
    with pytest.raises(ExecutorError, match="each run asks for 4 CPUs, and no live node of the cluster has that many "
                                            "[(]the largest has 1[)]"):
        make_executor("ray", cpus_per_run=4).run_device_kind("cpu")
    with pytest.raises(ExecutorError, match="each run asks for 2 GPUs, and no live node of the cluster has that many "
                                            "[(]the largest has 1[)]: lower --gpus-per-run"):
        make_executor("ray", gpus_per_run=2.0).run_device_kind(None)


def test_a_node_that_advertises_a_gpu_it_cannot_use_is_named_in_one_line(cluster):
    """Once the probe's "Found no NVIDIA driver" was a traceback."""
    with pytest.raises(ExecutorError) as info:
        make_executor("ray", gpus_per_run=0.5).run_device_kind(None)
    message = str(info.value)
    assert message.startswith("node ") and "advertises a GPU but cannot use it (" in message and "\n" not in message
