"""The pytest session of pneumobench: its options, runs and verdicts.

``parse_options`` reads and checks every ``--pb-*`` option once (a bad value is one
``pytest.UsageError`` line); ``PneumobenchSession`` (registered by the plugin as a plugin
object, as pytest-benchmark registers its ``BenchmarkSession``) opens the dataset and the
store on first use, trains the runs the selected claims need (several at a time, on the
executor the options name), judges each claim through the one ``JudgingContext`` that
``pneumobench report`` also uses, and prints the verdict table at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pneumobench.options import OptionError, encoder_weights, parse_option

if TYPE_CHECKING:
    from pneumobench.experiment.profiles import Profile
    from pneumobench.judging.context import JudgingContext
    from pneumobench.judging.looks import SequentialPlan

__all__ = ["PROPERTY", "SENSITIVITY_PROPERTY", "PneumobenchSession", "SessionOptions", "parse_options"]

PROPERTY = "pneumobench"
SENSITIVITY_PROPERTY = "pneumobench-sensitivity"  # a row of the sensitivity table (JSON), printed at the end


@dataclass(frozen=True)
class SessionOptions:
    """The pneumobench options, parsed and checked once (``parse_options``)."""

    profile: Profile
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
    sequential: SequentialPlan | None  # None: fixed seeds
    executor: str
    ray_address: str | None
    gpus_per_run: float
    checkpoint_dir: Path | None

    @property
    def requested_device(self) -> str | None:
        """``--pb-device`` as runs ask for it: None for ``auto`` (the executor spreads runs over the cards)."""
        return None if self.device == "auto" else self.device


def _shared(config: pytest.Config, name: str) -> Any:
    """The shared option ``--pb-NAME`` (``pneumobench.options``), parsed; a bad value is a usage error."""
    value = config.getoption(f"--pb-{name}")
    try:
        return parse_option(name, value)
    except OptionError as error:
        raise pytest.UsageError(f"pneumobench: --pb-{name} {error}") from None


def parse_options(config: pytest.Config) -> SessionOptions:
    """Every ``--pb-*`` option, checked; a bad value is a one-line ``pytest.UsageError``."""
    from pneumobench.core.registry import UnknownNameError
    from pneumobench.experiment.profiles import get_profile
    from pneumobench.experiment.seeds import SeedError, parse_seeds

    option = config.getoption
    auto = option("--pb-seeds") == "auto"
    try:
        profile = get_profile(option("--pb-profile"))
        seeds = profile.seeds if option("--pb-seeds") is None or auto else parse_seeds(option("--pb-seeds"))
    except (UnknownNameError, SeedError) as error:
        raise pytest.UsageError(f"pneumobench: {error}") from None
    executor, ray_address, gpus_per_run = _executor_options(config)
    weights = _shared(config, "encoder-weights")
    if weights is not None:
        profile = profile.with_encoder_weights(encoder_weights(weights))
    return SessionOptions(
        profile=profile,
        seeds=seeds,
        data=_data_option(_shared(config, "data"), profile),
        device=_device_option(option("--pb-device"), executor),
        store=Path(option("--pb-store") or config.rootpath / ".pneumobench" / "results.sqlite"),
        baselines=Path(option("--pb-baselines") or config.rootpath / "baselines"),
        report=Path(option("--pb-report")) if option("--pb-report") else None,
        update_baselines=option("--pb-update-baselines") and not option("collectonly"),
        strict=option("--pb-strict"),
        retry_failed=option("--pb-retry-failed"),
        workers=_shared(config, "workers"),
        sequential=_sequential_plan(option("--pb-max-seeds"), option("--pb-spending"), auto),
        executor=executor,
        ray_address=ray_address,
        gpus_per_run=gpus_per_run,
        checkpoint_dir=_shared(config, "checkpoint-dir"),
    )


def _device_option(device: str, executor: str) -> str:
    from pneumobench.runs.devices import DeviceError, check_device

    try:
        check_device(device, local=executor == "local")  # imports torch only for a CUDA device
    except DeviceError as error:
        raise pytest.UsageError(f"pneumobench: --pb-device: {error}") from None
    return device


def _data_option(data: Path | None, profile: Profile) -> Path | None:
    """``--pb-data``: a prepared dataset (manifest and arrays' shapes checked now, contents on
    first use) prepared with the profile's rules."""
    if data is None:
        return None
    if not (data / "manifest.json").is_file():
        problem = "no such directory" if not data.is_dir() else "not a prepared dataset (no manifest.json)"
        raise pytest.UsageError(
            f"pneumobench: --pb-data {data}: {problem} (make one with `pneumobench data prepare SIIM_DIR DIR`)"
        )
    from pneumobench.data.prepared import DatasetError, load

    try:
        prepared = load(data, verify=False)
    except DatasetError as error:
        raise pytest.UsageError(f"pneumobench: --pb-data: {error}") from None
    unsuited = profile.dataset_problem(prepared.preparation)
    if unsuited is not None:
        raise pytest.UsageError(f"pneumobench: --pb-data {data}: {unsuited}")
    return data.resolve()  # the path workers on other nodes look for


def _sequential_plan(max_seeds: int | None, spending: str | None, auto: bool) -> SequentialPlan | None:
    """``--pb-seeds auto`` with its cap and spending function, checked (None for fixed seeds)."""
    if not auto:
        for name, value in (("--pb-max-seeds", max_seeds), ("--pb-spending", spending)):
            if value is not None:
                raise pytest.UsageError(f"pneumobench: {name} applies only with --pb-seeds auto")
        return None
    from pneumobench.judging.looks import SequentialPlan
    from pneumobench.judging.spending import DEFAULT_MAX_SEEDS, SPENDING, SequentialError

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
    from pneumobench.runs.executors import EXECUTORS, ExecutorError, import_ray

    executor, address = config.getoption("--pb-executor"), config.getoption("--pb-ray-address")
    if executor not in EXECUTORS:
        raise pytest.UsageError(
            f"pneumobench: --pb-executor {executor}: unknown executor; registered: {', '.join(EXECUTORS.names())}"
        )
    if executor == "local" and address is not None:
        raise pytest.UsageError("pneumobench: --pb-ray-address applies only with --pb-executor ray")
    gpus = _shared(config, "gpus-per-run")
    if executor == "ray":
        try:
            import_ray()
        except ExecutorError as error:
            raise pytest.UsageError(f"pneumobench: --pb-executor ray: {error}") from None
    return executor, address, gpus


class PneumobenchSession:
    """The session's runs and verdicts: the dataset and store opened on first use, runs trained
    on a miss (several at a time), verdict records gathered from every test report."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.profile = options.profile
        self.seeds = options.seeds
        # The baseline's regression check runs the profile's regression seeds, unless --pb-seeds chose all seeds.
        self.regression_seeds = options.profile.regression_seeds if options.seeds == options.profile.seeds else None
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
        self._judging: JudgingContext | None = None
        self._runs: dict[tuple[str, int], Any] = {}
        self.write_line: Callable[[str], None] = print  # the plugin binds pytest's terminal reporter

    def bind_terminal(self, config: pytest.Config) -> None:
        """Write progress lines through pytest's terminal reporter, past its output capture
        (as live logging does), so that they appear while a test trains its runs."""

        def write(line: str) -> None:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            capture = config.pluginmanager.get_plugin("capturemanager")
            if reporter is None:
                return
            with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
                reporter.write_line(line)

        self.write_line = write

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
        from pneumobench.runs.runner import select_device

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
                    f"pneumobench: profile {self.profile.name!r} runs on the real SIIM-ACR data: pass --pb-data DIR, "
                    "a dataset made with `pneumobench data prepare SIIM_DIR DIR`"
                )
        return self._dataset

    @property
    def store(self):
        if self._store is None:
            from pneumobench.runs.store import ResultStore

            self._store = ResultStore(self.store_path)
            if self.options.retry_failed:
                self._store.clear_failed()  # before this process looks up a run
        return self._store

    @property
    def judging(self) -> JudgingContext:
        """How this session's claims are judged (the same context ``pneumobench report`` builds):
        on the profile's seeds, or look by look with ``--pb-seeds auto``, training what each look needs."""
        if self._judging is None:
            from pneumobench.judging.context import JudgingContext

            self._judging = JudgingContext.load(
                self.profile,
                baselines_dir=self.options.baselines,
                device_type=self.device.type,
                synthetic=self.synthetic,
                runs_for=self.runs_for,
                runs_for_seeds=self._runs_for_seeds,
                sequential=self.options.sequential,
                before_look=self._before_look,
                regression_seeds=self.regression_seeds,
            )
            baseline = self._judging.baseline
            if baseline is not None and self.needed:  # kept with the runs, so a report judges as this session
                self.store.remember_judged_with(self.profile.name, self.device.type, baseline.path, baseline.text)
        return self._judging

    def check_preconditions(self) -> None:
        """Before any run trains: the dataset is at hand and suits every configuration the
        selected claims need, the encoder weights are available, and the executor can start (a
        Ray cluster answers, a request some node can meet). A problem is one ``pytest.UsageError``
        line, and nothing is stored as a failed run."""
        from pneumobench.runs.executors import ExecutorError
        from pneumobench.training.preconditions import TrainingSetupError, check_runs

        configs = [self.profile.config(*mods) for mods in sorted(self.needed)]
        try:
            check_runs(configs, self.dataset)
        except TrainingSetupError as error:
            raise pytest.UsageError(f"pneumobench: profile {self.profile.name!r}: {error}") from None
        try:
            self.run_kind  # noqa: B018 (joins the Ray cluster and asks its card model now)
        except ExecutorError as error:
            raise pytest.UsageError(f"pneumobench: --pb-executor {self.options.executor}: {error}") from None

    def evaluate(self, claim: Any) -> Any:
        """Judge ``claim`` on this session's runs, at its family's alpha (with ``--pb-seeds auto``,
        look by look together with every selected claim: ``pneumobench.judging.looks``)."""
        if not self.judging.is_sequential(claim):
            return self.judging.judge(claim)
        if claim.id not in self._sequential:
            self.claims.setdefault(claim.id, claim)
            open_claims = [c for c in self.claims.values() if c.id not in self._sequential]
            self._sequential.update(self.judging.judge_sequentially(open_claims))
        return self._sequential[claim.id]

    def _runs_for_seeds(self, mods: tuple[str, ...], seeds: tuple[int, ...]) -> list:
        return [self.run(self.profile.config(*mods), seed) for seed in seeds]

    def _before_look(self, configs: list[tuple[str, ...]], seeds: tuple[int, ...]) -> None:
        runs = [(self.profile.config(*mods), seed) for mods in configs for seed in seeds]
        self._prefetch(runs, self.options.requested_device)

    @property
    def executor(self) -> Any:
        """Where runs train: ``--pb-executor`` (local worker processes, or Ray)."""
        if self._executor is None:
            from pneumobench.runs.executors import make_executor

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
            from pneumobench.runs.devices import device_kind

            requested = self.options.requested_device
            ray = self.options.executor == "ray"
            self._run_kind = self.executor.run_device_kind(requested) if ray else device_kind(self.device)
        return self._run_kind

    @property
    def default_workers(self) -> int:
        """``--pb-workers``, else one per GPU, else 2 on the CPU; 1 under pytest-xdist."""
        from pneumobench.runs.devices import default_workers

        if os.environ.get("PYTEST_XDIST_WORKER"):
            return 1
        return self.options.workers if self.options.workers is not None else default_workers(self.device)

    def run(self, config: Any, seed: int) -> Any:
        """One run of ``config`` with ``seed`` from this session's store (trained on a miss; by
        the Ray executor when it is the session's)."""
        from pneumobench.runs.runner import run

        if (config.key(), seed) not in self._runs:
            if self.options.executor == "ray":
                self._prefetch([(config, seed)], self.options.requested_device)
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
                on_wait=lambda message: self.write_line(f"pneumobench: {message}"),
                keep_model=config.key() in self.kept_models,
            )
        return self._runs[config.key(), seed]

    @property
    def kept_models(self) -> set[str]:
        """The configuration keys whose runs keep their final weights: the baseline's, where the
        profile says so (``Profile.keep_baseline_models``; the sensitivity suite scores them again)."""
        return {self.profile.config().key()} if self.profile.keep_baseline_models else set()

    def final_model(self, config: Any, seed: int) -> Any:
        """Where the run of ``config`` with ``seed`` keeps its final weights, if it kept them."""
        from pneumobench.runs.runner import final_model_path

        return final_model_path(
            self.store, config, seed, self.dataset, self.run_kind, checkpoint_dir=self.options.checkpoint_dir
        )

    def runs_of(self, config: Any, seeds: tuple[int, ...]) -> list:
        """The runs of ``config`` with ``seeds``, trained ``default_workers`` at a time on a miss."""
        self._prefetch([(config, seed) for seed in seeds], self.device)
        return [self.run(config, seed) for seed in seeds]

    def runs_for(self, mods: tuple[str, ...]) -> list:
        """The runs of the profile's configuration with ``mods``, one per seed; the first call
        trains every run the selected claims need, several at a time (spread over the GPUs
        when the device is ``auto``)."""
        if not self._prefetched:
            self._prefetched = True
            needed = [(self.profile.config(*m), seed) for m in sorted(self.needed) for seed in self.seeds]
            needed += [(self.profile.config(), seed) for seed in self._regression_only_seeds()]
            self._prefetch(needed, self.options.requested_device)
        config = self.profile.config(*mods)
        return [self.run(config, seed) for seed in self.seeds]

    def _regression_only_seeds(self) -> list[int]:
        """The baseline's regression seeds beyond the session's, when its regression check is selected."""
        checked = any(c.kind == "regression" and c.treatment == () for c in self.claims.values())
        return [s for s in self.regression_seeds or () if s not in self.seeds] if checked else []

    def baseline_runs(self, mods: tuple[str, ...]) -> list:
        """The runs of ``mods`` that a recorded baseline keeps: the baseline's regression seeds, else the session's."""
        if mods or self.regression_seeds is None:
            return self.runs_for(mods)
        return self.runs_of(self.profile.config(), self.regression_seeds)

    def _prefetch(self, runs: list[tuple[Any, int]], device: Any) -> None:
        """Train the runs not yet stored, reporting each to the terminal: on the session's
        executor (always on Ray; locally with more than one worker and run), else one after
        another in this process."""
        from pneumobench.runs.executors import InlineExecutor
        from pneumobench.runs.progress import LineProgress
        from pneumobench.runs.runner import prefetch

        ray = self.options.executor == "ray"
        pooled = ray or (self.default_workers > 1 and len(runs) > 1 and self.dataset.path is not None)
        prefetch(
            runs,
            self.dataset,
            device,
            store=self.store,
            checkpoint_every=self.profile.checkpoint_every,
            executor=self.executor if pooled else InlineExecutor(),
            checkpoint_dir=self.options.checkpoint_dir,
            reporter=LineProgress(self.write_line),
            keep_models=self.kept_models,
        )

    def judge(self, node: pytest.Item, claim: Any, stats: Any) -> None:
        """Record the verdict and end the test with the outcome it maps to."""
        from pneumobench.judging.verdicts import Outcome, outcome, outcome_message

        record = self.judging.record(claim, stats, test=node.nodeid)
        node.user_properties.append((PROPERTY, json.dumps(record)))
        result = outcome(stats.verdict, evidence=self.evidence, strict=self.options.strict)
        if result == Outcome.PASS:
            return
        message = outcome_message(record, stats.verdict, strict=self.options.strict)
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
        from pneumobench.reporting.summary import summary_lines

        terminalreporter.write_sep("=", "pneumobench verdicts")
        for line in summary_lines(self.records):
            terminalreporter.write_line(line)
        if self.options.report:
            _write_report(self, terminalreporter)


def _write_report(session: PneumobenchSession, terminalreporter: Any) -> None:
    from pneumobench.reporting.report import write_report

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
    from pneumobench.judging.baselines import record, recorded_path
    from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
    from pneumobench.runs.runner import device_kind

    if not session.needed:
        return
    results = [r for mods in table6_rows() if mods in session.needed for r in session.baseline_runs(mods)]
    path = recorded_path(session.options.baselines, session.profile.name, session.device.type)
    record(path, profile=session.profile.name, device_kind=device_kind(session.device), results=results)
    terminalreporter.write_line(f"recorded baseline written to {path} ({len(results)} runs)")
