"""Executors: where the runs a driver hands out are trained.

The driver (``runner.prefetch``) claims each missing run in the results store, hands the
executor ``Job``s and stores each ``Trained`` it gets back: workers never open the store. Two
implementations of one interface:

- ``LocalExecutor``: worker processes on this machine, one run each at a time, forked from a
  server process that imported the training engine once (``worker_context``).
- ``RayExecutor`` (``pip install -e '.[ray]'``): each run is one Ray task asking for
  ``gpus_per_run`` GPUs (a fraction packs several runs on one card) or, on a CPU cluster, the
  run's CPU threads, so Ray's scheduler places runs on free devices across machines. The
  prepared dataset is read from its path where a node has it (the fingerprint is checked),
  else from Ray's object store, where the driver put it once. A task whose worker or node
  dies is retried by Ray; it resumes from its checkpoint when the checkpoint directory is
  storage the nodes share, else starts over, and is stored once either way.

An executor yields a ``Started`` event when a task begins (and the node it runs on, reported
by the task itself) and a ``Finished`` event with its result or error, so the driver counts
running and queued runs and the nodes in use from the tasks. A worker reports its source
fingerprint and device kind with each result; the driver refuses a result made by other code
or on another kind of card than the run's key says. A task checks its claim before it writes
its checkpoint (``pneumobench.runs.fence``) and stops when another session took it over.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Protocol

from pneumobench.core.registry import Registry, UnknownNameError, extension_modules, import_extensions
from pneumobench.data.prepared import PreparedDataset, load
from pneumobench.experiment.config import ExperimentConfig
from pneumobench.runs.devices import device_kind, select_device
from pneumobench.runs.fence import ClaimFence
from pneumobench.runs.store import pin_source_fingerprint, source_fingerprint

__all__ = [
    "EXECUTORS",
    "Event",
    "Executor",
    "ExecutorError",
    "ExecutorSettings",
    "Finished",
    "InlineExecutor",
    "Job",
    "LocalExecutor",
    "RayExecutor",
    "Started",
    "Trained",
    "checkpoint_epochs",
    "make_executor",
    "train_job",
    "worker_context",
]

RAY_INSTALL = "install the optional extra: pip install -e '.[ray]' (or pip install 'ray>=2.9')"


class ExecutorError(RuntimeError):
    """An executor that cannot start: Ray missing, or no cluster at the address (one line, the fix)."""


@dataclass(frozen=True)
class Job:
    """One run to train: what the worker needs, and the store key the driver will file it under."""

    config_json: str
    seed: int
    key: str
    device: str | None  # None: the worker's own choice (CUDA when it has a card, else the CPU)
    checkpoint: str
    checkpoint_every: int
    cpu_threads: int
    claim: str = ""  # the claim's token (pneumobench.runs.fence); "": no fence (a run outside a driver)
    final_model: str = ""  # where the run keeps its final weights; "": not kept

    @property
    def label(self) -> str:
        return f"{ExperimentConfig.from_json(self.config_json).name} seed {self.seed}"


@dataclass(frozen=True)
class Trained:
    """A finished run as a worker returns it."""

    result_json: str
    resumed_from: int  # epochs done in the checkpoint the run resumed from (0: started afresh)
    node: str
    source: str  # the worker's source fingerprint
    device_kind: str


@dataclass(frozen=True)
class Started:
    """A task began training ``job`` on ``node`` (again, when Ray retries it elsewhere)."""

    job: Job
    node: str


@dataclass(frozen=True)
class Finished:
    """A task ended: its ``Trained`` result, or the error that ended it."""

    job: Job
    outcome: Trained | BaseException


Event = Started | Finished
POLL_SECONDS = 0.25  # how often a driver waiting for results looks for tasks that started


def checkpoint_epochs(path: Path) -> int:
    """Epochs done in the checkpoint at ``path`` (0 when there is none or it cannot be read;
    training itself verifies it before resuming)."""
    if not path.is_file():
        return 0
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True).get("epochs_done", 0))
    except Exception:
        return 0


def train_job(
    job: Job, dataset: PreparedDataset, node: str | None = None, on_start: Callable[[str], None] | None = None
) -> Trained:
    """Train ``job`` here (resuming its checkpoint if one exists) and return the result.

    ``on_start`` is told this task's node once its claim is checked; a claim another session
    took over stops the task (``ClaimTakenOver``) before it writes anything."""
    from pneumobench.training.engine import train

    node = node or socket.gethostname()
    checkpoint = Path(job.checkpoint)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    fence = ClaimFence(checkpoint, job.claim, job.label) if job.claim else None
    if fence is not None:
        fence.adopt()
    if on_start is not None:
        on_start(node)
    resumed_from = checkpoint_epochs(checkpoint)
    device = select_device(job.device)
    config = ExperimentConfig.from_json(job.config_json)
    result = train(
        config,
        dataset,
        job.seed,
        device,
        checkpoint=checkpoint,
        checkpoint_every=job.checkpoint_every,
        progress=False,
        cpu_threads=job.cpu_threads,
        checkpoint_guard=fence.check if fence is not None else None,
        final_model=job.final_model or None,
    )
    return Trained(result.to_json(), resumed_from, node, source_fingerprint(), device_kind(device))


class Executor(Protocol):
    """Trains jobs somewhere and yields each one's outcome as it finishes."""

    name: str

    def run_device_kind(self, requested: str | None) -> str:
        """The device kind this executor's runs will have (part of their store key)."""
        ...

    def job_device(self, requested: str | None, index: int) -> str | None:
        """The device the ``index``-th job asks for."""
        ...

    def train(self, jobs: list[Job], dataset: PreparedDataset) -> Iterator[Event]:
        """``Started`` as each job's task begins (reported by the task), ``Finished`` with its
        ``Trained`` result or the error that ended it."""
        ...

    def nodes(self) -> int:
        """How many nodes can train runs now (for the progress line)."""
        ...


class InlineExecutor:
    """Runs trained one after another in this process: the pytest session's driver when it has
    one worker, so that its runs report progress and are filed exactly as a pool's are."""

    name = "in-process"

    def run_device_kind(self, requested: str | None) -> str:
        return device_kind(select_device(requested))

    def job_device(self, requested: str | None, index: int) -> str | None:
        return requested

    def train(self, jobs: list[Job], dataset: PreparedDataset) -> Iterator[Event]:
        for job in jobs:
            yield Started(job, socket.gethostname())
            try:
                trained: Trained | BaseException = train_job(job, dataset)
            except Exception as error:  # filed as the run's failure; an interrupt propagates
                trained = error
            yield Finished(job, trained)

    def nodes(self) -> int:
        return 1


_STARTS: list[Any] = []  # in a local worker: the queue its tasks report their start to


# What a local worker imports before its first run: torch, smp and timm (with torchvision),
# about 4.5 s of CPU. The fork server imports it once for every pool a driver starts.
WORKER_PRELOAD = ("pneumobench.training.engine",)


def worker_context(start_method: str | None = None) -> BaseContext:
    """How local workers start: by default ``forkserver`` where the platform has one (each
    worker is forked from a server that imported ``WORKER_PRELOAD`` once), else ``spawn`` (a
    fresh interpreter that imports it again). A worker runs in the driver's folder with the
    driver's environment and import path as they are when its pool starts; ask for ``spawn`` when a setting
    must reach torch's own import (``ATEN_CPU_CAPABILITY``)."""
    method = start_method or ("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(list(WORKER_PRELOAD))
    return context


def _local_init(
    fingerprint: str,
    extensions: list[str],
    setup: Callable[[], None] | None,
    starts: Any,
    environment: dict[str, str],
    folder: str,
    import_path: list[str],
) -> None:
    os.chdir(folder)  # a worker forked from the server has the server's folder, environment and path
    os.environ.clear()
    os.environ.update(environment)
    sys.path[:] = import_path
    pin_source_fingerprint(fingerprint)
    import_extensions(extensions)
    _STARTS[:] = [starts]
    if setup is not None:
        setup()


def _local_job(job: Job, dataset_path: str) -> Trained:
    return train_job(job, load(dataset_path, verify=False), on_start=lambda node: _STARTS[0].put((job.key, node)))


class LocalExecutor:
    """``workers`` processes on this machine (CUDA cards in turn when there are several),
    started as ``worker_context(start_method)`` says.

    Each worker imports the modules that registered a user's blocks, losses and modifications,
    and calls ``setup`` once (the sensitivity suite plants a bug with it)."""

    name = "local"

    def __init__(
        self, workers: int = 2, setup: Callable[[], None] | None = None, start_method: str | None = None
    ) -> None:
        self.workers = workers
        self.setup = setup
        self.start_method = start_method

    def run_device_kind(self, requested: str | None) -> str:
        return device_kind(select_device(requested))

    def job_device(self, requested: str | None, index: int) -> str | None:
        if requested is not None and requested != "auto":
            return requested
        resolved = select_device(requested)
        if resolved.type == "cuda":
            import torch

            return f"cuda:{index % torch.cuda.device_count()}"
        return None

    def train(self, jobs: list[Job], dataset: PreparedDataset) -> Iterator[Event]:
        if dataset.path is None:
            raise ValueError("the local executor needs a dataset loaded from disk (its path is passed to the workers)")
        context = worker_context(self.start_method)
        starts = context.Queue()
        driver = (dict(os.environ), os.getcwd(), list(sys.path))
        initargs = (source_fingerprint(), extension_modules(), self.setup, starts, *driver)
        by_key = {job.key: job for job in jobs}
        with ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_local_init, initargs=initargs
        ) as pool:
            futures: dict[Future[Trained], Job] = {pool.submit(_local_job, job, str(dataset.path)): job for job in jobs}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                yield from _drain_starts(starts, by_key)
                for future in done:
                    error = future.exception()
                    yield Finished(futures[future], error if error is not None else future.result())

    def nodes(self) -> int:
        return 1


def _drain_starts(starts: Any, by_key: dict[str, Job]) -> Iterator[Started]:
    """The starts the local workers reported since the last look."""
    import queue

    while True:
        try:
            key, node = starts.get_nowait()
        except queue.Empty:
            return
        yield Started(by_key[key], node)


def import_ray() -> Any:
    """The ``ray`` module, or ``ExecutorError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"the ray executor needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


def _ray_job(
    job: Job,
    dataset_path: str,
    fingerprint: str,
    dataset_ref: list[Any],
    extensions: list[str],
    setup: Callable[[], None] | None,
    board: Any,
) -> Trained:
    """A Ray task: the dataset from the node's disk when it holds the same one, else from the object store."""
    import ray

    import_extensions(extensions)
    if setup is not None:
        setup()
    manifest = Path(dataset_path) / "manifest.json"
    dataset = None
    if manifest.is_file():
        local = load(dataset_path, verify=False)
        dataset = local if local.fingerprint == fingerprint else None
    if dataset is None:
        dataset = ray.get(dataset_ref[0])
    node = ray.get_runtime_context().get_node_id()[:12]
    return train_job(job, dataset, node=node, on_start=lambda where: board.started.remote(job.key, where))


class _StartBoard:
    """A Ray actor the tasks of one ``train`` call report their start to; the driver reads it."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, str]] = []

    def started(self, key: str, node: str) -> None:
        self.starts.append((key, node))

    def since(self, seen: int) -> list[tuple[str, str]]:
        return self.starts[seen:]


class RayExecutor:
    """Runs as Ray tasks on the cluster at ``address`` (``auto``: the one this machine belongs to;
    None: a Ray instance on this machine, started here)."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        gpus_per_run: float = 1.0,
        cpus_per_run: int = 1,
        max_retries: int = 3,
        setup: Callable[[], None] | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.ray = import_ray()
        self.address = address
        self.connect_timeout_s = connect_timeout_s
        self.gpus_per_run = gpus_per_run
        self.cpus_per_run = cpus_per_run
        self.max_retries = max_retries
        self.setup = setup
        self._dataset_refs: dict[str, Any] = {}  # one put per dataset per session
        self._use_gpus: bool | None = None

    def connect(self) -> None:
        """Join (or start) the cluster once. An address where nothing answers within
        ``connect_timeout_s`` is an ``ExecutorError`` at once (Ray itself retries for minutes)."""
        if self.ray.is_initialized():
            return
        address = self._bootstrap_address()
        if address is not None:
            _check_reachable(address, self.address, self.connect_timeout_s)
        try:
            self.ray.init(address=address, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, RuntimeError, TimeoutError) as error:
            raise ExecutorError(
                f"ray address {self.address}: no Ray cluster there ({type(error).__name__}: {error}); start one "
                "with `ray start --head` (docs/scaling.md)"
            ) from None

    def _bootstrap_address(self) -> str | None:
        """HOST:PORT of the cluster to join (``auto``: RAY_ADDRESS, else the cluster this machine
        last joined with ``ray start``); None: start a Ray instance here."""
        if self.address is None:
            return None
        if self.address.startswith("ray://"):
            raise ExecutorError(
                f"ray address {self.address}: Ray Client (ray://) is not supported; run the driver on a machine "
                "of the cluster with --ray-address auto, or give the head's HOST:PORT (default port 6379)"
            )
        if self.address != "auto":
            return self.address
        from ray._private.services import find_bootstrap_address

        found = os.environ.get("RAY_ADDRESS") or find_bootstrap_address(None)
        if not found:
            raise ExecutorError(
                "ray address auto: this machine has joined no Ray cluster (no RAY_ADDRESS, and no `ray start` "
                "here); start one with `ray start --head` or give the head's HOST:PORT (docs/scaling.md)"
            )
        return str(found)

    def _gpus(self, requested: str | None) -> bool:
        if self._use_gpus is None:
            self.connect()
            has_gpus = self.ray.cluster_resources().get("GPU", 0) > 0
            self._use_gpus = requested != "cpu" and has_gpus and self.gpus_per_run > 0
            self._check_feasible()
        return self._use_gpus

    def _check_feasible(self) -> None:
        """A run's request that no live node can satisfy is an ``ExecutorError`` (Ray would queue it forever)."""
        resource, wanted = ("GPU", self.gpus_per_run) if self._use_gpus else ("CPU", float(self.cpus_per_run))
        largest = max((node["Resources"].get(resource, 0) for node in self.ray.nodes() if node.get("Alive")), default=0)
        if largest < wanted:
            option = "--gpus-per-run" if resource == "GPU" else "the run's CPU threads"
            raise ExecutorError(
                f"each run asks for {wanted:g} {resource}s, and no live node of the cluster has that many "
                f"(the largest has {largest:g}): lower {option} or add such a node"
            )

    def run_device_kind(self, requested: str | None) -> str:
        """``cpu``, or the cluster's card model, asked of one GPU task (a failure: one line naming the node)."""
        if not self._gpus(requested):
            return "cpu"

        def card() -> tuple[str, str]:
            import ray

            node = ray.get_runtime_context().get_node_id()[:12]
            try:
                return node, device_kind(select_device("cuda"))
            except Exception as error:  # a node that advertises a GPU without a working CUDA
                return node, f"error: {type(error).__name__}: {error}"

        probe = self.ray.remote(num_gpus=min(self.gpus_per_run, 1.0), num_cpus=0)(card)
        node, kind = self.ray.get(probe.remote())
        if kind.startswith("error: "):
            raise ExecutorError(f"node {node} advertises a GPU but cannot use it ({kind[7:]}); fix or remove that node")
        return str(kind)

    def job_device(self, requested: str | None, index: int) -> str | None:
        return "cuda" if self._gpus(requested) else "cpu"

    def _dataset_ref(self, dataset: PreparedDataset) -> Any:
        if dataset.fingerprint not in self._dataset_refs:
            self._dataset_refs[dataset.fingerprint] = self.ray.put(dataset)
        return self._dataset_refs[dataset.fingerprint]

    def train(self, jobs: list[Job], dataset: PreparedDataset) -> Iterator[Event]:
        self.connect()
        gpus = self.gpus_per_run if self._use_gpus else 0
        task = self.ray.remote(_ray_job).options(
            num_gpus=gpus, num_cpus=0 if gpus else self.cpus_per_run, max_retries=self.max_retries
        )
        board = self._start_board()
        reference = self._dataset_ref(dataset)
        extensions = extension_modules()
        path = str(dataset.path or "")
        refs = {
            task.remote(job, path, dataset.fingerprint, [reference], extensions, self.setup, board): job for job in jobs
        }
        by_key = {job.key: job for job in jobs}
        pending, seen = list(refs), 0
        try:
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
                starts = self.ray.get(board.since.remote(seen))
                seen += len(starts)
                for key, node in starts:
                    yield Started(by_key[key], node)
                for ref in done:
                    try:
                        trained = self.ray.get(ref)
                    except Exception as error:
                        yield Finished(refs[ref], getattr(error, "cause", None) or error)
                        continue
                    yield Finished(refs[ref], trained)
        finally:
            for ref in pending:  # an interrupted driver: the runs it released must not go on training
                self.ray.cancel(ref, force=True)
            self.ray.kill(board)

    def _start_board(self) -> Any:
        """The actor the tasks report their start to, on the driver's own node (a worker node
        that dies must not take it along)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(self.ray.get_runtime_context().get_node_id(), soft=False)
        return self.ray.remote(num_cpus=0, scheduling_strategy=here)(_StartBoard).remote()

    def nodes(self) -> int:
        return sum(1 for node in self.ray.nodes() if node.get("Alive"))


def _check_reachable(address: str, given: str | None, timeout_s: float) -> None:
    """An ``ExecutorError`` unless a TCP connection to ``address`` (HOST:PORT) opens within ``timeout_s``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"ray address {given}: give auto or HOST:PORT (the head's port, 6379 by default)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        where = address if given == address else f"{given} ({address})"
        raise ExecutorError(
            f"ray address {where}: nothing answers there within {timeout_s:g} s ({type(error).__name__}: {error}); "
            "start the cluster with `ray start --head`, or give its head's HOST:PORT"
        ) from None


@dataclass(frozen=True)
class ExecutorSettings:
    """What an executor may be built with (each takes the settings it uses): local worker
    processes, a setup run once in each worker, and the Ray cluster's address and shares."""

    workers: int = 2
    setup: Callable[[], None] | None = None
    ray_address: str | None = None
    gpus_per_run: float = 1.0
    cpus_per_run: int = 1


ExecutorFactory = Callable[[ExecutorSettings], Executor]
EXECUTORS: Registry[ExecutorFactory] = Registry("executor")  # --pb-executor / runs --executor choose by name


@EXECUTORS.register("local")
def _local(settings: ExecutorSettings) -> Executor:
    return LocalExecutor(settings.workers, settings.setup)


@EXECUTORS.register("ray")
def _ray(settings: ExecutorSettings) -> Executor:
    return RayExecutor(
        settings.ray_address,
        gpus_per_run=settings.gpus_per_run,
        cpus_per_run=settings.cpus_per_run,
        setup=settings.setup,
    )


def make_executor(
    name: str,
    *,
    workers: int = 2,
    setup: Callable[[], None] | None = None,
    ray_address: str | None = None,
    gpus_per_run: float = 1.0,
    cpus_per_run: int = 1,
) -> Executor:
    """The executor registered as ``name`` (``local``, ``ray`` or a user's); ``ExecutorError``
    for an unknown name or Ray missing."""
    try:
        factory = EXECUTORS.get(name)
    except UnknownNameError as error:
        raise ExecutorError(str(error)) from None
    return factory(ExecutorSettings(workers, setup, ray_address, gpus_per_run, cpus_per_run))
