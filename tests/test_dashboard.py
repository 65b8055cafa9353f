"""The dashboard page (``pneumobench report --html DIR``) on a store with three code versions,
one with a planted Dice drop: one verdict row per claim, equal to ``report.json``; every figure
embedded; the history plot marks exactly the regressed version; and, in headless Chromium, every
image loads and the page's verdicts are the report's (a screenshot is kept, its path printed).

CI installs Debian's ``chromium`` and sets PNEUMOBENCH_REQUIRE_BROWSER=1, so there the browser
test can only pass or fail; elsewhere it skips with the install command."""

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_history import _store_version

from pneumobench.cli import main
from pneumobench.judging.baselines import record
from pneumobench.reporting.history import history_rows
from pneumobench.reporting.html import history_svg, write_html
from pneumobench.reporting.report import write_report
from pneumobench.runs.store import ResultStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = "apt-get install chromium (Debian's package; CI installs it)"


class _Page(HTMLParser):
    """The parts of the page the tests read: verdict rows, images, regressed markers, <body>'s attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.verdicts: dict[str, str] = {}
        self.images: list[str] = []
        self.regressed: list[str] = []
        self.body: dict[str, str] = {}
        self._history: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-claim" in attrs:
            self.verdicts[attrs["data-claim"]] = attrs["data-verdict"]
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "div" and "data-config" in attrs:
            self._history = f"{attrs['data-config']}:{attrs['data-metric']}"
        elif tag == "circle" and attrs.get("class") == "regressed":
            self.regressed.append(self._history)
        elif tag == "body":
            self.body = attrs


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def dashboard(tiny_dataset, tmp_path_factory):
    """A store of three smoke versions (v1 recorded as the baseline, v3 the baseline's Dice 0.05
    lower), its report and its page."""
    root = tmp_path_factory.mktemp("dashboard")
    store = ResultStore(root / "results.sqlite")
    with pytest.MonkeyPatch.context() as monkeypatch:
        first = _store_version(store, tiny_dataset, monkeypatch, "a" * 16, "1" * 40)
        _store_version(store, tiny_dataset, monkeypatch, "b" * 16, "2" * 40)
        _store_version(store, tiny_dataset, monkeypatch, "c" * 16, "3" * 40, shift=-0.05)
    (root / "baselines").mkdir()
    record(root / "baselines" / "smoke-cpu.json", profile="smoke", device_kind="cpu", results=first)
    report = write_report(store.path, root / "report", baselines_dir=root / "baselines")
    rows = history_rows(store.path, baselines_dir=root / "baselines", repo=None)
    page = write_html(report.directory, root / "site", rows)
    return report, page


def test_the_page_holds_the_reports_verdicts_figures_and_the_regressed_version(dashboard):
    report, page = dashboard
    parsed = parse(page.read_text())
    recorded = json.loads((report.directory / "report.json").read_text())
    assert parsed.verdicts == {r["claim"]: r["verdict"] for r in recorded["claims"]}
    assert len(parsed.verdicts) == len(recorded["claims"]) > 40
    assert len(parsed.images) == len(recorded["figures"]) > 0
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images)  # self-contained
    assert parsed.regressed == ["baseline:dice"]  # v3 against v2 and against the record


def test_a_history_plot_marks_regressed_and_changed_versions_and_draws_the_band():
    rows = [
        {"version": v, "commits": c, "mean": m, "ci_low": m - 0.01, "ci_high": m + 0.01, "vs_previous": p,
         "vs_baseline": b}
        for v, c, m, p, b in [(1, "1111111", 0.9, "", "NO REGRESSION"), (2, "2222222", 0.8, "REGRESSED", "REGRESSED"),
                              (3, "3333333", 0.95, "CHANGED", "NO REGRESSION")]
    ]
    svg = history_svg(rows, (0.88, 0.9, 0.92))
    assert svg.count('class="regressed"') == 2 and svg.count('class="version"') == 1
    assert svg.count('class="baseline-band"') == 1 and "1111111" in svg and "3333333" in svg
    assert 'class="baseline-band"' not in history_svg(rows, None)


def test_the_cli_writes_the_page_beside_the_report(dashboard, tmp_path, capsys):
    report, _ = dashboard
    store = Path(json.loads((report.directory / "report.json").read_text())["store"])
    code = main(["report", "--store", str(store), "--out", str(tmp_path / "r"), "--html", str(tmp_path / "site"),
                 "--baselines", str(store.parent / "baselines")])
    assert code == 0 and f"dashboard page written to {tmp_path / 'site' / 'index.html'}" in capsys.readouterr().out
    parsed = parse((tmp_path / "site" / "index.html").read_text())
    assert parsed.regressed == ["baseline:dice"] and parsed.images


def _browser_or_skip() -> str:
    if CHROMIUM is None:
        if os.environ.get("PNEUMOBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"PNEUMOBENCH_REQUIRE_BROWSER=1 but no chromium on PATH: {INSTALL}")
        pytest.skip(f"no headless browser here: {INSTALL}")
    return CHROMIUM


def _chromium(*args: str) -> subprocess.CompletedProcess:
    command = [_browser_or_skip(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_in_headless_chromium_every_image_loads_and_the_verdicts_are_the_reports(dashboard, tmp_path):
    report, page = dashboard
    rendered = parse(_chromium("--dump-dom", page.as_uri()).stdout)
    recorded = json.loads((report.directory / "report.json").read_text())
    figures = len(recorded["figures"])
    assert rendered.body.get("data-images") == f"{figures}/{figures}"  # set by the page once every image loaded
    assert rendered.verdicts == {r["claim"]: r["verdict"] for r in recorded["claims"]}
    artifacts = Path(os.environ.get("PNEUMOBENCH_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    screenshot = artifacts / "dashboard.png"
    _chromium(f"--screenshot={screenshot}", "--window-size=1280,2400", page.as_uri())
    assert screenshot.stat().st_size > 10_000
    print(f"dashboard screenshot: {screenshot}")
