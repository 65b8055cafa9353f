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
    group.addoption("--pb-profile", default="smoke", help="smoke (default, CPU, synthetic), paper or nightly")
    group.addoption("--pb-data", default=None, help="a prepared dataset (pneumobench data prepare); default: the profile's synthetic one")
    group.addoption("--pb-seeds", default=None, help="seeds: a count (5) or a list (0,1,2); default: the profile's")
    group.addoption("--pb-device", default="auto", help="auto (default), cpu, cuda, cuda:1")
    group.addoption("--pb-store", default=None, help="results store (default .pneumobench/results.sqlite in the rootdir)")
    group.addoption("--pb-baselines", default=None, help="baselines directory (default baselines/ in the rootdir)")
    group.addoption("--pb-report", default=None, help="also write the verdict table as JSON and Markdown to this directory")
    group.addoption("--pb-update-baselines", action="store_true", help="rewrite the recorded baseline of this profile and device")
    group.addoption("--pb-strict", action="store_true", help="INCONCLUSIVE verdicts fail instead of xfail")
    group.addoption("--pb-workers", type=int, default=None, help="runs trained in parallel (default: 2 on CPU, one per GPU)")


def pytest_configure(config: pytest.Config) -> None:
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    session = PneumobenchSession(config)
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
    judged = [item for item in session.items if item.get_closest_marker("paper") or item.get_closest_marker("regression")]
    for item in judged:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for value in params.values():
            if hasattr(value, "configs"):
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
    """Options parsed and checked once, at configure time (a bad value is a ``pytest.UsageError``),
    plus the lazily opened dataset and store, and the verdicts recorded so far."""

    def __init__(self, config: pytest.Config) -> None:
        from pneumobench.profiles import get_profile
        from pneumobench.registry import UnknownNameError
        from pneumobench.seeds import SeedError, parse_seeds

        self.config = config
        try:
            self.profile = get_profile(config.getoption("--pb-profile"))
            seeds = config.getoption("--pb-seeds")
            self.seeds: tuple[int, ...] = self.profile.seeds if seeds is None else parse_seeds(seeds)
        except (UnknownNameError, SeedError) as error:
            raise pytest.UsageError(f"pneumobench: {error}") from None
        self.data_option: str | None = config.getoption("--pb-data")
        self.device_option: str = config.getoption("--pb-device")
        self.strict: bool = config.getoption("--pb-strict")
        self.workers: int | None = config.getoption("--pb-workers")
        self.baselines_dir = Path(config.getoption("--pb-baselines") or config.rootpath / "baselines")
        self.store_option: str | None = config.getoption("--pb-store")
        self.needed: set[tuple[str, ...]] = set()
        self.records: list[dict[str, Any]] = []
        self.sensitivity_rows: list[dict[str, Any]] = []
        self._dataset: Any = None
        self._store: Any = None
        self._prefetched = False

    @property
    def synthetic(self) -> bool:
        """The profile's generated dataset, or a prepared one the generator drew."""
        return self.data_option is None or self.dataset.synthetic

    @property
    def evidence(self) -> bool:
        """Whether a CONTRADICTED verdict here speaks about the paper (fails) or not (xfails)."""
        return not (self.synthetic and self.profile.name != "paper")

    @property
    def device(self):
        from pneumobench.runner import select_device

        return select_device(self.device_option)

    @property
    def dataset(self):
        if self._dataset is None:
            from pneumobench.data.cache import synthetic_dataset
            from pneumobench.data.prepared import load

            if self.data_option:
                self._dataset = load(self.data_option)
            elif self.profile.synthetic is not None:
                self._dataset = synthetic_dataset(self.profile.synthetic, progress=True)
            else:
                raise pytest.UsageError(
                    f"profile {self.profile.name!r} runs on the real SIIM-ACR data: pass --pb-data DIR, a dataset "
                    "made with `pneumobench data prepare SIIM_DIR DIR`"
                )
        return self._dataset

    @property
    def store_path(self) -> Path:
        """The results store's path (``store`` is imported only here: it loads torch)."""
        from pneumobench.store import DEFAULT_STORE

        return Path(self.store_option or self.config.rootpath / DEFAULT_STORE)

    @property
    def store(self):
        if self._store is None:
            from pneumobench.store import ResultStore

            self._store = ResultStore(self.store_path)
        return self._store

    def paper_numbers(self):
        from pneumobench.baselines import load_paper

        return load_paper(self.baselines_dir / "paper.json")

    def recorded(self):
        """The recorded baseline of this profile and device type, or None."""
        from pneumobench.baselines import load_recorded, recorded_path

        path = recorded_path(self.baselines_dir, self.profile.name, self.device.type)
        return load_recorded(path) if path.exists() else None

    def evaluate(self, claim: Any) -> Any:
        """Judge ``claim`` on this session's runs, at its family's alpha."""
        from pneumobench.claims import evaluate

        return evaluate(claim, self.runs_for, base=self.profile.base, recorded=self.recorded(),
                        use_paper_values=self.profile.name == "paper" and not self.synthetic, profile=self.profile.name)

    @property
    def default_workers(self) -> int:
        """``--pb-workers``, else one per GPU, else 2 on the CPU; 1 under pytest-xdist."""
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return 1
        if self.workers is not None:
            return self.workers
        import torch

        return torch.cuda.device_count() if self.device.type == "cuda" else 2

    def run(self, config: Any, seed: int) -> Any:
        """One run of ``config`` with ``seed`` from this session's store (trained on a miss)."""
        from pneumobench.runner import run

        return run(config, seed, self.dataset, self.device, store=self.store,
                   checkpoint_every=self.profile.checkpoint_every, progress=False)

    def runs_of(self, config: Any, seeds: tuple[int, ...]) -> list:
        """The runs of ``config`` with ``seeds``, trained ``default_workers`` at a time on a miss."""
        if self.default_workers > 1 and self.dataset.path is not None:
            from pneumobench.runner import prefetch

            prefetch([(config, seed) for seed in seeds], self.dataset, self.device, store=self.store,
                     workers=self.default_workers, checkpoint_every=self.profile.checkpoint_every, progress=False)
        return [self.run(config, seed) for seed in seeds]

    def _prefetch(self) -> None:
        """Train every needed run up front, several at a time (not under pytest-xdist)."""
        self._prefetched = True
        workers = self.default_workers
        if workers <= 1 or os.environ.get("PYTEST_XDIST_WORKER") or len(self.needed) * len(self.seeds) < 2:
            return
        from pneumobench.runner import prefetch

        runs = [(self.profile.config(*mods), seed) for mods in sorted(self.needed) for seed in self.seeds]
        device = self.device_option if self.device_option != "auto" else None
        prefetch(runs, self.dataset, device, store=self.store, workers=workers,
                 checkpoint_every=self.profile.checkpoint_every)

    def runs_for(self, mods: tuple[str, ...]) -> list:
        """The runs of the profile's configuration with ``mods``, one per seed."""
        if not self._prefetched:
            self._prefetch()
        config = self.profile.config(*mods)
        return [self.run(config, seed) for seed in self.seeds]

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
        if config.getoption("--pb-update-baselines") and not config.getoption("collectonly"):
            _update_baselines(self, terminalreporter)
        from tabulate import tabulate

        if self.sensitivity_rows:
            terminalreporter.write_sep("=", "pneumobench sensitivity")
            terminalreporter.write_line(tabulate(self.sensitivity_rows, headers="keys", disable_numparse=True,
                                                 tablefmt="github"))
        if not self.records:
            return

        from pneumobench.families import FAMILIES
        from pneumobench.report import verdict_table
        from pneumobench.verdicts import SYNTHETIC_NOTE

        rows = verdict_table(self.records)
        terminalreporter.write_sep("=", "pneumobench verdicts")
        families = sorted({r["family"] for r in self.records if r.get("family") in FAMILIES})
        described = "; ".join(_describe_family(FAMILIES[name]) for name in families)
        terminalreporter.write_line(f"profile {self.records[0]['profile']}; {described}")
        if any(r["synthetic"] for r in self.records):
            terminalreporter.write_line(f"NOTE: {SYNTHETIC_NOTE}")
        terminalreporter.write_line(tabulate(rows, headers="keys", disable_numparse=True))
        report_dir = config.getoption("--pb-report")
        if report_dir:
            from pneumobench.report import write_report

            dataset = self.dataset if self.needed else None  # claims that trained nothing need no dataset
            report = write_report(self.store_path, report_dir, baselines_dir=self.baselines_dir,
                                  data=dataset.path if dataset else None, profile=self.profile.name,
                                  dataset_fingerprint=dataset.fingerprint if dataset else None, records=self.records)
            terminalreporter.write_line(f"report written to {report.directory / 'report.md'} "
                                        f"({len(report.figures)} figures in {report.directory / 'figures'})")

    def judge(self, node: pytest.Item, claim: Any, stats: Any) -> None:
        """Record the verdict and end the test with the outcome it maps to."""
        from pneumobench.claims import verdict_record
        from pneumobench.stats import Verdict
        from pneumobench.verdicts import SYNTHETIC_NOTE, Outcome, outcome, verdict_line

        record = verdict_record(claim, stats, synthetic=self.synthetic, profile=self.profile.name, test=node.nodeid)
        node.user_properties.append((PROPERTY, json.dumps(record)))
        line = verdict_line(record)
        if self.synthetic:
            line += f" [{SYNTHETIC_NOTE}]"
        result = outcome(stats.verdict, evidence=self.evidence, strict=self.strict)
        if result == Outcome.PASS:
            return
        if result == Outcome.FAIL:
            strict_only = stats.verdict not in (Verdict.CONTRADICTED, Verdict.REGRESSED, Verdict.CHANGED)
            pytest.fail(f"{line} (--pb-strict)" if strict_only else line, pytrace=False)
        pytest.xfail(line)


def _describe_family(family: Any) -> str:
    if family.correction == "bonferroni":
        return (f"family {family.name}: alpha {family.alpha} over its {len(family.members)} claims "
                f"(Bonferroni, {family.test_alpha:.3g} per test)")
    return f"family {family.name}: alpha {family.alpha} per test"


_SESSION = pytest.StashKey["PneumobenchSession"]()


def _update_baselines(session: PneumobenchSession, terminalreporter) -> None:
    from pneumobench.baselines import record, recorded_path
    from pneumobench.modifications import table6_rows
    from pneumobench.runner import device_kind

    if not session.needed:
        return
    results = [r for mods in table6_rows() if mods in session.needed for r in session.runs_for(mods)]
    path = recorded_path(session.baselines_dir, session.profile.name, session.device.type)
    record(path, profile=session.profile.name, device_kind=device_kind(session.device), results=results)
    terminalreporter.write_line(f"recorded baseline written to {path} ({len(results)} runs)")
