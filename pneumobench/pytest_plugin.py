"""pytest plugin (``pytest11`` entry point): options, markers, the ``pb`` session fixture, verdicts.

A claim test calls ``pb.evaluate(claim)`` (its runs trained on demand and cached in the
results store, judged by ``pneumobench.claims`` at the claim family's alpha) and hands the
``ClaimStats`` to ``pb_judge``, which records it and ends the test with the outcome
``pneumobench.verdicts.outcome`` gives. The options are parsed and checked once, when the
session is created; judging, families and the verdict line live in the library, so
``pneumobench report`` and pytest agree. The terminal summary prints one table of every verdict.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MARKERS = {
    "paper": "a claim of the paper, judged against the paper's numbers or a recorded baseline",
    "regression": "compares today's runs with a recorded baseline",
    "sensitivity": "plants bugs and checks that the regression check catches them",
    "gpu": "needs a CUDA device; skipped with a reason where there is none",
    "slow": "takes more than a few seconds on the CPU",
}
PROPERTY = "pneumobench"
SENSITIVITY_PROPERTY = "pneumobench-sensitivity"  # a row of the sensitivity table (JSON), printed at the end


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pneumobench", "pneumobench: paper claims and regression baselines")
    group.addoption(
        "--pb-profile",
        default="smoke",
        help="smoke (default, CPU, synthetic), smoke-authors, paper, authors or nightly (README: Protocol)",
    )
    group.addoption(
        "--pb-data",
        default=None,
        help="a prepared dataset (pneumobench data prepare); default: the profile's synthetic one",
    )
    group.addoption(
        "--pb-seeds",
        default=None,
        help="seeds: a count (5), a list (0,1,2), or auto (sequential: looks at 5, 10, 20 ... seeds, more seeds "
        "only for open claims); default: the profile's",
    )
    group.addoption("--pb-max-seeds", type=int, default=None, help="with --pb-seeds auto: the seed cap (default 40)")
    group.addoption(
        "--pb-spending",
        default=None,
        help="with --pb-seeds auto: alpha spending over the looks, obrien-fleming (default) or pocock",
    )
    group.addoption("--pb-device", default="auto", help="auto (default), cpu, cuda, cuda:1")
    group.addoption(
        "--pb-store", default=None, help="results store (default .pneumobench/results.sqlite in the rootdir)"
    )
    group.addoption("--pb-baselines", default=None, help="baselines directory (default baselines/ in the rootdir)")
    group.addoption(
        "--pb-report", default=None, help="also write the verdict table as JSON and Markdown to this directory"
    )
    group.addoption(
        "--pb-update-baselines", action="store_true", help="rewrite the recorded baseline of this profile and device"
    )
    group.addoption("--pb-strict", action="store_true", help="INCONCLUSIVE verdicts fail instead of xfail")
    group.addoption(
        "--pb-retry-failed",
        action="store_true",
        help="train again the runs the store records as failed (else their claims report the stored error)",
    )
    group.addoption(
        "--pb-workers", type=int, default=None, help="runs trained in parallel (default: 2 on CPU, one per GPU)"
    )
    group.addoption(
        "--pb-executor",
        default="local",
        help="where runs train: local (default: worker processes here) or ray (a Ray cluster; pip install -e '.[ray]')",
    )
    group.addoption(
        "--pb-ray-address",
        default=None,
        help="with --pb-executor ray: auto (the cluster this machine joined) or HOST:PORT; default: a local Ray",
    )
    group.addoption(
        "--pb-gpus-per-run",
        type=float,
        default=1.0,
        help="with --pb-executor ray: GPUs each run asks for (0.5 packs two runs per card; default 1)",
    )
    group.addoption(
        "--pb-checkpoint-dir",
        default=None,
        help="checkpoint directory (default: beside the store); with Ray, storage every node shares, so a run "
        "whose node died resumes",
    )


@dataclass(frozen=True)
class SessionOptions:
    """The pneumobench options, parsed and checked once (``parse_options``)."""

    profile: Any  # pneumobench.profiles.Profile
    seeds: tuple[int, ...]
    data: Path | None
    device: str
    store: Path
    baselines: Path
    report: Path | None
    update_baselines: bool
    strict: bool
    retry_failed: bool
    workers: int | None
    sequential: Any  # pneumobench.sequential_claims.SequentialPlan, or None for fixed seeds
    executor: str
    ray_address: str | None
    gpus_per_run: float
    checkpoint_dir: Path | None


def parse_options(config: pytest.Config) -> SessionOptions:
    """Every ``--pb-*`` option, checked; a bad value is a one-line ``pytest.UsageError``."""
    from pneumobench.devices import DeviceError, check_device
    from pneumobench.profiles import get_profile
    from pneumobench.registry import UnknownNameError
    from pneumobench.seeds import SeedError, parse_seeds

    option = config.getoption
    auto = option("--pb-seeds") == "auto"
    try:
        profile = get_profile(option("--pb-profile"))
        seeds = profile.seeds if option("--pb-seeds") is None or auto else parse_seeds(option("--pb-seeds"))
    except (UnknownNameError, SeedError) as error:
        raise pytest.UsageError(f"pneumobench: {error}") from None
    sequential = _sequential_plan(option("--pb-max-seeds"), option("--pb-spending"), auto)
    executor, ray_address, gpus_per_run = _executor_options(config)
    device = option("--pb-device")
    try:
        check_device(device, local=executor == "local")  # imports torch only for a CUDA device
    except DeviceError as error:
        raise pytest.UsageError(f"pneumobench: --pb-device: {error}") from None
    workers = option("--pb-workers")
    if workers is not None and workers < 1:
        raise pytest.UsageError(f"pneumobench: --pb-workers {workers}: give at least 1")
    data = Path(option("--pb-data")) if option("--pb-data") else None
    if data is not None and not (data / "manifest.json").is_file():
        problem = "no such directory" if not data.is_dir() else "not a prepared dataset (no manifest.json)"
        raise pytest.UsageError(
            f"pneumobench: --pb-data {data}: {problem} (make one with `pneumobench data prepare SIIM_DIR DIR`)"
        )
    if data is not None:
        from pneumobench.data.prepared import DatasetError, load

        try:
            prepared = load(data, verify=False)  # the manifest and the arrays' shapes; contents verified on first use
        except DatasetError as error:
            raise pytest.UsageError(f"pneumobench: --pb-data: {error}") from None
        unsuited = profile.dataset_problem(prepared.preparation)
        if unsuited is not None:
            raise pytest.UsageError(f"pneumobench: --pb-data {data}: {unsuited}")
    store = Path(option("--pb-store") or config.rootpath / ".pneumobench" / "results.sqlite")
    return SessionOptions(
        profile=profile,
        seeds=seeds,
        data=data,
        device=device,
        store=store,
        baselines=Path(option("--pb-baselines") or config.rootpath / "baselines"),
        report=Path(option("--pb-report")) if option("--pb-report") else None,
        update_baselines=option("--pb-update-baselines") and not option("collectonly"),
        strict=option("--pb-strict"),
        retry_failed=option("--pb-retry-failed"),
        workers=workers,
        sequential=sequential,
        executor=executor,
        ray_address=ray_address,
        gpus_per_run=gpus_per_run,
        checkpoint_dir=Path(option("--pb-checkpoint-dir")) if option("--pb-checkpoint-dir") else None,
    )


def _sequential_plan(max_seeds: int | None, spending: str | None, auto: bool) -> Any:
    """``--pb-seeds auto`` with its cap and spending function, checked (None for fixed seeds)."""
    if not auto:
        for name, value in (("--pb-max-seeds", max_seeds), ("--pb-spending", spending)):
            if value is not None:
                raise pytest.UsageError(f"pneumobench: {name} applies only with --pb-seeds auto")
        return None
    from pneumobench.sequential import DEFAULT_MAX_SEEDS, SPENDING, SequentialError
    from pneumobench.sequential_claims import SequentialPlan

    plan = SequentialPlan(DEFAULT_MAX_SEEDS if max_seeds is None else max_seeds, spending or "obrien-fleming")
    if plan.spending not in SPENDING:
        raise pytest.UsageError(f"pneumobench: --pb-spending {plan.spending}: give {' or '.join(SPENDING)}")
    try:
        plan.looks  # noqa: B018 (checks the cap)
    except SequentialError as error:
        raise pytest.UsageError(f"pneumobench: {error}") from None
    return plan


def _executor_options(config: pytest.Config) -> tuple[str, str | None, float]:
    """``--pb-executor`` and its Ray options, checked; Ray missing is a usage error saying how to install it."""
    from pneumobench.executors import EXECUTORS, ExecutorError, import_ray

    option = config.getoption
    executor, address, gpus = option("--pb-executor"), option("--pb-ray-address"), option("--pb-gpus-per-run")
    if executor not in EXECUTORS:
        raise pytest.UsageError(f"pneumobench: --pb-executor {executor}: give {' or '.join(EXECUTORS)}")
    if executor == "local" and address is not None:
        raise pytest.UsageError("pneumobench: --pb-ray-address applies only with --pb-executor ray")
    if not gpus > 0:
        raise pytest.UsageError(f"pneumobench: --pb-gpus-per-run {gpus}: give a share of a GPU above 0 (0.5, 1, 2)")
    if executor == "ray":
        try:
            import_ray()
        except ExecutorError as error:
            raise pytest.UsageError(f"pneumobench: --pb-executor ray: {error}") from None
    return executor, address, gpus


def pytest_configure(config: pytest.Config) -> None:
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    session = PneumobenchSession(parse_options(config))
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "pneumobench-session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any(item.get_closest_marker("gpu") for item in items):
        import torch

        if not torch.cuda.is_available():
            skip = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is False here")
            for item in items:
                if item.get_closest_marker("gpu"):
                    item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    """After -k/-m selection: note the runs the selected claims need (trained up front).
    Selection never changes a verdict: each claim's alpha comes from its family."""
    pb_session = session.config.stash[_SESSION]
    judged = [
        item for item in session.items if item.get_closest_marker("paper") or item.get_closest_marker("regression")
    ]
    for item in judged:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for value in params.values():
            if hasattr(value, "configs"):
                pb_session.claims.setdefault(value.id, value)
                pb_session.needed.update(value.configs())
            elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                pb_session.needed.add(value)


@pytest.fixture(scope="session")
def pb(request: pytest.FixtureRequest) -> PneumobenchSession:
    """The pneumobench session: profile, dataset, runs and the verdict recorder."""
    return request.config.stash[_SESSION]


@pytest.fixture
def pb_judge(pb: PneumobenchSession, request: pytest.FixtureRequest):
    """``pb_judge(claim, stats)``: record the verdict and map it to the test's outcome."""

    def judge(claim: Any, stats: Any) -> None:
        pb.judge(request.node, claim, stats)

    return judge


class PneumobenchSession:
    """The session's runs and verdicts: the dataset and store opened on first use, runs trained
    on a miss (several at a time), verdict records gathered from every test report."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.profile = options.profile
        self.seeds = options.seeds
        self.store_path = options.store
        self.needed: set[tuple[str, ...]] = set()
        self.claims: dict[str, Any] = {}  # the selected claims, by id (judged together with --pb-seeds auto)
        self.records: list[dict[str, Any]] = []
        self.sensitivity_rows: list[dict[str, Any]] = []
        self._dataset: Any = None
        self._store: Any = None
        self._executor: Any = None
        self._run_kind: str | None = None
        self._prefetched = False
        self._sequential: dict[str, Any] = {}
        self._runs: dict[tuple[str, int], Any] = {}

    @property
    def synthetic(self) -> bool:
        """The profile's generated dataset, or a prepared one the generator drew."""
        return self.options.data is None or self.dataset.synthetic

    @property
    def evidence(self) -> bool:
        """Whether a CONTRADICTED verdict here speaks about the paper (fails) or not (xfails)."""
        return not (self.synthetic and not self.profile.paper_numbers)

    @property
    def device(self):
        from pneumobench.runner import select_device

        return select_device(self.options.device)

    @property
    def dataset(self):
        if self._dataset is None:
            from pneumobench.data.cache import synthetic_dataset
            from pneumobench.data.prepared import load

            if self.options.data:
                self._dataset = load(self.options.data)
            elif self.profile.synthetic is not None:
                self._dataset = synthetic_dataset(self.profile.synthetic, progress=True)
            else:
                raise pytest.UsageError(
                    f"profile {self.profile.name!r} runs on the real SIIM-ACR data: pass --pb-data DIR, a dataset "
                    "made with `pneumobench data prepare SIIM_DIR DIR`"
                )
        return self._dataset

    @property
    def store(self):
        if self._store is None:
            from pneumobench.store import ResultStore

            self._store = ResultStore(self.store_path)
            if self.options.retry_failed:
                self._store.clear_failed()  # before this process looks up a run
        return self._store

    def recorded(self):
        """The recorded baseline of this profile and device type, or None."""
        from pneumobench.baselines import load_recorded, recorded_path

        path = recorded_path(self.options.baselines, self.profile.name, self.device.type)
        return load_recorded(path) if path.exists() else None

    def evaluate(self, claim: Any) -> Any:
        """Judge ``claim`` on this session's runs, at its family's alpha (with ``--pb-seeds auto``,
        look by look together with every selected claim: ``pneumobench.sequential_claims``)."""
        from pneumobench.claims import evaluate
        from pneumobench.sequential_claims import SEQUENTIAL_KINDS

        if self.options.sequential is not None and claim.kind in SEQUENTIAL_KINDS:
            if claim.id not in self._sequential:
                self.claims.setdefault(claim.id, claim)
                self._judge_sequentially([c for c in self.claims.values() if c.id not in self._sequential])
            return self._sequential[claim.id]
        return evaluate(
            claim,
            self.runs_for,
            recorded=self.recorded(),
            use_paper_values=self.profile.paper_numbers and not self.synthetic,
            profile=self.profile.name,
        )

    def _judge_sequentially(self, claims: list[Any]) -> None:
        from pneumobench.sequential_claims import judge_sequentially

        def runs_for(mods: tuple[str, ...], seeds: tuple[int, ...]) -> list:
            return [self.run(self.profile.config(*mods), seed) for seed in seeds]

        def before_look(configs: list[tuple[str, ...]], seeds: tuple[int, ...]) -> None:
            runs = [(self.profile.config(*mods), seed) for mods in configs for seed in seeds]
            self._prefetch(runs, None if self.options.device == "auto" else self.options.device, progress=True)

        self._sequential.update(
            judge_sequentially(
                claims,
                runs_for,
                self.options.sequential,
                recorded=self.recorded(),
                use_paper_values=self.profile.paper_numbers and not self.synthetic,
                profile=self.profile.name,
                before_look=before_look,
            )
        )

    @property
    def executor(self) -> Any:
        """Where runs train: ``--pb-executor`` (local worker processes, or Ray)."""
        if self._executor is None:
            from pneumobench.executors import make_executor

            self._executor = make_executor(
                self.options.executor,
                workers=self.default_workers,
                ray_address=self.options.ray_address,
                gpus_per_run=self.options.gpus_per_run,
            )
        return self._executor

    @property
    def run_kind(self) -> str:
        """The device kind of this session's runs (on a Ray cluster: its cards', not this machine's)."""
        if self._run_kind is None:
            from pneumobench.devices import device_kind

            requested = None if self.options.device == "auto" else self.options.device
            ray = self.options.executor == "ray"
            self._run_kind = self.executor.run_device_kind(requested) if ray else device_kind(self.device)
        return self._run_kind

    @property
    def default_workers(self) -> int:
        """``--pb-workers``, else one per GPU, else 2 on the CPU; 1 under pytest-xdist."""
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return 1
        if self.options.workers is not None:
            return self.options.workers
        import torch

        return torch.cuda.device_count() if self.device.type == "cuda" else 2

    def run(self, config: Any, seed: int) -> Any:
        """One run of ``config`` with ``seed`` from this session's store (trained on a miss; by
        the Ray executor when it is the session's)."""
        from pneumobench.runner import run

        if (config.key(), seed) not in self._runs:
            if self.options.executor == "ray":
                self._prefetch([(config, seed)], None if self.options.device == "auto" else self.options.device)
            self._runs[config.key(), seed] = run(
                config,
                seed,
                self.dataset,
                self.device,
                store=self.store,
                checkpoint_every=self.profile.checkpoint_every,
                progress=False,
                kind=self.run_kind,
                checkpoint_dir=self.options.checkpoint_dir,
            )
        return self._runs[config.key(), seed]

    def runs_of(self, config: Any, seeds: tuple[int, ...]) -> list:
        """The runs of ``config`` with ``seeds``, trained ``default_workers`` at a time on a miss."""
        self._prefetch([(config, seed) for seed in seeds], self.device, progress=False)
        return [self.run(config, seed) for seed in seeds]

    def runs_for(self, mods: tuple[str, ...]) -> list:
        """The runs of the profile's configuration with ``mods``, one per seed; the first call
        trains every run the selected claims need, several at a time (spread over the GPUs
        when the device is ``auto``)."""
        if not self._prefetched:
            self._prefetched = True
            needed = [(self.profile.config(*m), seed) for m in sorted(self.needed) for seed in self.seeds]
            self._prefetch(needed, None if self.options.device == "auto" else self.options.device, progress=True)
        config = self.profile.config(*mods)
        return [self.run(config, seed) for seed in self.seeds]

    def _prefetch(self, runs: list[tuple[Any, int]], device: Any, *, progress: bool = False) -> None:
        """Train the runs not yet stored on the executor: always on Ray, locally when more than
        one worker and run (one run trains in this process)."""
        ray = self.options.executor == "ray"
        if ray or (self.default_workers > 1 and len(runs) > 1 and self.dataset.path is not None):
            from pneumobench.runner import prefetch

            prefetch(
                runs,
                self.dataset,
                device,
                store=self.store,
                checkpoint_every=self.profile.checkpoint_every,
                progress=progress,
                executor=self.executor,
                checkpoint_dir=self.options.checkpoint_dir,
            )

    def judge(self, node: pytest.Item, claim: Any, stats: Any) -> None:
        """Record the verdict and end the test with the outcome it maps to."""
        from pneumobench.claims import verdict_record
        from pneumobench.verdicts import Outcome, outcome, outcome_message

        record = verdict_record(claim, stats, synthetic=self.synthetic, profile=self.profile.name, test=node.nodeid)
        node.user_properties.append((PROPERTY, json.dumps(record)))
        result = outcome(stats.verdict, evidence=self.evidence, strict=self.options.strict)
        if result == Outcome.PASS:
            return
        message = outcome_message(record, stats.verdict, synthetic=self.synthetic, strict=self.options.strict)
        if result == Outcome.FAIL:
            pytest.fail(message, pytrace=False)
        pytest.xfail(message)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Gather verdict records from reports (this also works on the pytest-xdist controller)."""
        for name, value in getattr(report, "user_properties", []):
            if name == PROPERTY and report.when == "call":
                self.records.append(json.loads(value))
            elif name == SENSITIVITY_PROPERTY and report.when == "call":
                self.sensitivity_rows.append(json.loads(value))

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return
        if self.options.update_baselines:
            _update_baselines(self, terminalreporter)
        if self.sensitivity_rows:
            from tabulate import tabulate

            terminalreporter.write_sep("=", "pneumobench sensitivity")
            terminalreporter.write_line(
                tabulate(self.sensitivity_rows, headers="keys", disable_numparse=True, tablefmt="github")
            )
        if not self.records:
            return
        from pneumobench.report import summary_lines

        terminalreporter.write_sep("=", "pneumobench verdicts")
        for line in summary_lines(self.records):
            terminalreporter.write_line(line)
        if self.options.report:
            _write_report(self, terminalreporter)


_SESSION = pytest.StashKey["PneumobenchSession"]()


def _write_report(session: PneumobenchSession, terminalreporter: Any) -> None:
    from pneumobench.report import write_report

    assert session.options.report is not None
    dataset = session.dataset if session.needed else None  # claims that trained nothing need no dataset
    report = write_report(
        session.store_path,
        session.options.report,
        baselines_dir=session.options.baselines,
        data=dataset.path if dataset else None,
        profile=session.profile.name,
        dataset_fingerprint=dataset.fingerprint if dataset else None,
        records=session.records,
    )
    terminalreporter.write_line(
        f"report written to {report.directory / 'report.md'} "
        f"({len(report.figures)} figures in {report.directory / 'figures'})"
    )


def _update_baselines(session: PneumobenchSession, terminalreporter: Any) -> None:
    from pneumobench.baselines import record, recorded_path
    from pneumobench.modifications import table6_rows
    from pneumobench.runner import device_kind

    if not session.needed:
        return
    results = [r for mods in table6_rows() if mods in session.needed for r in session.runs_for(mods)]
    path = recorded_path(session.options.baselines, session.profile.name, session.device.type)
    record(path, profile=session.profile.name, device_kind=device_kind(session.device), results=results)
    terminalreporter.write_line(f"recorded baseline written to {path} ({len(results)} runs)")
