"""The report: built from a small store of hand-made runs (no training), checked against the
suite's own judgement, hand-computed seed statistics, the figure files and clear errors."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakes import fake_run, store_runs
from PIL import Image
from scipy import stats as scipy_stats

from pneumobench.cli import main
from pneumobench.experiment.config import config_name
from pneumobench.experiment.profiles import get_profile
from pneumobench.judging.baselines import load_paper, load_recorded, paper_path
from pneumobench.judging.claims import evaluate
from pneumobench.papers.viel_orhan_2020.claims import PAPER_CLAIMS, table6_claims
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
from pneumobench.reporting.report import NOT_RUN, ReportError, write_report
from pneumobench.runs.store import ResultStore, StoreError

BASELINES = Path(__file__).resolve().parents[1] / "baselines"
PROFILE = get_profile("smoke")
SEEDS = (0, 1, 2)
ALL_CLAIMS = PAPER_CLAIMS + table6_claims(load_paper(BASELINES / "paper.json"))



def fake(mods, seed, dataset, *, fingerprint=None):
    return fake_run(PROFILE.config(*mods), seed, dataset, fingerprint=fingerprint, synthetic=True)


def fill(store, dataset, rows, *, fingerprint=None):
    store_runs(store, [fake(mods, seed, dataset, fingerprint=fingerprint) for mods in rows for seed in SEEDS])


@pytest.fixture(scope="module")
def full_store(tiny_dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "results.sqlite"
    fill(ResultStore(path), tiny_dataset, table6_rows())
    return path


@pytest.fixture(scope="module")
def small_store(tiny_dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "results.sqlite"
    fill(ResultStore(path), tiny_dataset, [(), ("aspp",)])
    return path


@pytest.fixture(scope="module")
def full_report(full_store, tmp_path_factory):
    return write_report(full_store, tmp_path_factory.mktemp("report"), baselines_dir=BASELINES)


def test_report_holds_every_configuration_and_claim(full_report):
    names = [config_name(mods) for mods in table6_rows()]
    assert full_report.data["configurations"] == names
    assert [r["claim"] for r in full_report.data["claims"]] == [c.id for c in ALL_CLAIMS]
    table6_section, claims_section = full_report.markdown.split("## Claims")
    for name in names:
        assert f"| {name} " in table6_section
    for claim in ALL_CLAIMS:
        assert f"| {claim.id} " in claims_section
    assert "synthetic data" in full_report.markdown
    assert (full_report.directory / "report.json").stat().st_size > 0


def test_table6_rows_are_seed_means_with_t_intervals(full_report, tiny_dataset):
    row = full_report.data["table6"][0]
    values = [fake((), seed, tiny_dataset).dice for seed in SEEDS]
    mean = np.mean(values)
    half = scipy_stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert row["configuration"] == "baseline" and row["seeds"] == list(SEEDS)
    assert row["dice"]["mean"] == pytest.approx(mean)
    assert (row["dice"]["ci_low"], row["dice"]["ci_high"]) == pytest.approx((max(mean - half, 0), min(mean + half, 1)))
    assert row["dice"]["paper"] == 0.583 and row["accuracy"]["paper"] == 0.828


def test_claims_are_judged_as_the_suite_judges_them(full_report, full_store):
    runs = ResultStore(full_store).results()

    def runs_for(mods):
        key = PROFILE.config(*mods).key()
        return sorted((r for r in runs if r.config_key == key), key=lambda r: r.seed)

    records = {r["claim"]: r for r in full_report.data["claims"]}
    for claim in (PAPER_CLAIMS[2], PAPER_CLAIMS[8], ALL_CLAIMS[-1]):  # paired, best-of, a Table 6 row
        stats = evaluate(claim, runs_for, use_paper_values=False, profile="smoke",
                         recorded=load_recorded(BASELINES / "smoke-cpu.json"))
        record = records[claim.id]
        assert str((record["verdict"], record["estimate"], record["p_value"], record["note"])) == str((
            stats.verdict.value, stats.estimate, stats.p_value, stats.note))
        assert record["alpha"] == pytest.approx(0.05 / 32 if claim.kind == "row" else 0.05 / 22)  # its family's, fixed
    assert "p (Holm)" not in full_report.data["claims_table"][0]


def test_the_baselines_extra_regression_seeds_leave_the_claims_on_the_shared_seeds(small_store, tiny_dataset, tmp_path):
    """The store also holds the baseline's seeds 3-7 (its power-sized regression check): the
    paired claim is still judged, on seeds 0-2, exactly as without them."""
    plain = write_report(small_store, tmp_path / "plain", baselines_dir=BASELINES)
    extra = tmp_path / "extra.sqlite"
    shutil.copy(small_store, extra)
    store_runs(ResultStore(extra), [fake((), seed, tiny_dataset) for seed in range(3, 8)])
    with_extra = write_report(extra, tmp_path / "extra", baselines_dir=BASELINES)
    claim = next(c for c in PAPER_CLAIMS if c.id == "aspp-improves-dice")
    records = [{r["claim"]: r for r in report.data["claims"]}[claim.id] for report in (plain, with_extra)]
    assert records[0]["verdict"] != NOT_RUN and records[0]["seeds"] == 3
    assert records[1] == records[0]


def test_figures_are_written_at_their_stated_pixel_size(full_report):
    figures = full_report.data["figures"]
    overlays = [name for name in figures if name.startswith("overlay_")]
    assert set(figures) == {"effects", "seed_spread", "learning_curves", "epoch_selection", "authors_runs", *overlays}
    assert len(overlays) == 5  # three positives (small, middle, large mask) and two negatives
    for name, figure in figures.items():
        path = full_report.directory / figure["path"]
        assert path.stat().st_size > 10_000, name
        with Image.open(path) as image:
            assert list(image.size) == figure["pixels"], name
            assert image.format == "PNG"
        assert f"]({figure['path']})" in full_report.markdown
    assert figures["effects"]["pixels"][0] == 1300
    assert figures["seed_spread"]["pixels"][0] == 1200
    assert figures["learning_curves"]["pixels"] == [1340, 1100]  # 4x4 panels
    assert figures["overlay_1"]["pixels"] == [1320, 750]  # 17 panels, 6 per row


def test_the_same_store_gives_the_same_markdown(small_store, tmp_path):
    first = write_report(small_store, tmp_path / "first", baselines_dir=BASELINES)
    second = write_report(small_store, tmp_path / "second", baselines_dir=BASELINES)
    assert first.markdown == second.markdown
    assert (tmp_path / "first" / "report.md").read_text() == (tmp_path / "second" / "report.md").read_text()


def test_rewriting_a_report_removes_its_stale_figures_and_keeps_the_users_files(small_store, tmp_path):
    """Once the report replaced figures/ whole, deleting whatever else the user kept there."""
    figures_dir = tmp_path / "figures"
    first = write_report(small_store, tmp_path, baselines_dir=BASELINES)
    listed = json.loads((figures_dir / ".pneumobench-figures.json").read_text())
    assert listed == sorted(p.name for p in first.figures.values())
    (figures_dir / "overlay-9-positive.png").write_bytes(b"an earlier report's figure")
    (figures_dir / ".pneumobench-figures.json").write_text(json.dumps([*listed, "overlay-9-positive.png"]))
    (figures_dir / "my-notes.txt").write_text("mine")
    report = write_report(small_store, tmp_path, baselines_dir=BASELINES)
    assert sorted(p.name for p in figures_dir.iterdir()) == sorted(
        [".pneumobench-figures.json", "my-notes.txt", *(p.name for p in report.figures.values())])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".figures.tmp-")]


def test_a_missing_store_is_an_error_naming_it(tmp_path):
    with pytest.raises(ReportError, match=r"no results store at .*nowhere\.sqlite.*pytest suites -m paper"):
        write_report(tmp_path / "nowhere.sqlite", tmp_path / "out", baselines_dir=BASELINES)
    assert not (tmp_path / "out").exists()


def test_a_store_without_finished_runs_is_an_error(tmp_path, tiny_dataset):
    store = ResultStore(tmp_path / "results.sqlite")
    with pytest.raises(ReportError, match="holds no finished runs .no runs at all."):
        write_report(store.path, tmp_path / "out", baselines_dir=BASELINES)
    store.fetch_or_claim("k", config_key="c", config_name="baseline", seed=0, dataset_fingerprint="d", device_kind="cpu")
    store.fail("k", RuntimeError("boom"))
    with pytest.raises(ReportError, match="holds no finished runs .1 failed."):
        write_report(store.path, tmp_path / "out", baselines_dir=BASELINES)


def test_claims_without_their_runs_are_listed_as_not_run(small_store, tmp_path):
    report = write_report(small_store, tmp_path / "out", baselines_dir=BASELINES)
    records = {r["claim"]: r for r in report.data["claims"]}
    assert len(records) == len(ALL_CLAIMS)
    assert records["lovasz-improves-dice"]["verdict"] == NOT_RUN
    assert records["lovasz-improves-dice"]["note"] == "no runs of lovasz"
    assert records["aspp-improves-dice"]["verdict"] != NOT_RUN
    # the family's alpha, not a share of the claims that could be judged: the report of a partial
    # store and a full session judge the same runs alike
    assert records["aspp-improves-dice"]["alpha"] == pytest.approx(0.05 / 22)
    assert report.data["configurations"] == ["baseline", "aspp"]
    assert "| lovasz-improves-dice " in report.markdown and NOT_RUN in report.markdown


def test_runs_of_another_dataset_are_listed_not_merged(tmp_path, tiny_dataset):
    store = ResultStore(tmp_path / "results.sqlite")
    fill(store, tiny_dataset, [()])
    fill(store, tiny_dataset, [("aspp",)], fingerprint="another-dataset")
    newest = write_report(store.path, tmp_path / "newest", baselines_dir=BASELINES)
    assert newest.data["dataset_fingerprint"] == "another-dataset"
    assert newest.data["configurations"] == ["aspp"]
    assert "3 runs of 1 other" in newest.markdown
    chosen = write_report(store.path, tmp_path / "chosen", baselines_dir=BASELINES, dataset_fingerprint=tiny_dataset.fingerprint)
    assert chosen.data["configurations"] == ["baseline"]
    with pytest.raises(ReportError, match="no runs on dataset nope"):
        write_report(store.path, tmp_path / "x", baselines_dir=BASELINES, dataset_fingerprint="nope")


def test_overlays_say_why_they_are_missing_and_use_data(tmp_path, tiny_dataset):
    moved = tmp_path / "moved"
    shutil.copytree(tiny_dataset.path, moved)
    store = ResultStore(tmp_path / "results.sqlite")
    fill(store, tiny_dataset, [()])
    with store._connect() as db:  # the runs recorded a dataset path that no longer exists
        rows = db.execute("SELECT run_key, result_json FROM runs").fetchall()
        for key, text in rows:
            db.execute("UPDATE runs SET result_json=? WHERE run_key=?", (text.replace(str(tiny_dataset.path), "/gone"), key))
    report = write_report(store.path, tmp_path / "out", baselines_dir=BASELINES)
    assert not [n for n in report.data["figures"] if n.startswith("overlay")]
    assert any(n.startswith("qualitative overlays not drawn: /gone is not a prepared dataset") for n in report.data["notes"])
    assert "pass --data DIR" in report.markdown
    with_data = write_report(store.path, tmp_path / "out2", baselines_dir=BASELINES, data=moved)
    assert len([n for n in with_data.data["figures"] if n.startswith("overlay")]) == 5


def test_cli_report(small_store, tmp_path, capsys):
    assert main(["report", "--store", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "r")]) == 2
    assert "no results store at" in capsys.readouterr().err
    args = ["report", "--store", str(small_store), "--out", str(tmp_path / "r"), "--baselines", str(BASELINES)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "6 runs of 2 configurations (profile smoke" in out
    assert "verdicts: " in out and f"{len(ALL_CLAIMS) - 7} NOT RUN" in out
    assert "report written to" in out and (tmp_path / "r" / "report.md").is_file()


def test_the_papers_numbers_ship_with_the_package():
    assert paper_path().read_text() == (BASELINES / "paper.json").read_text()
    assert load_paper() == load_paper(BASELINES / "paper.json")
    assert paper_path(BASELINES) == BASELINES / "paper.json"


def test_report_works_from_any_folder(small_store, tmp_path, monkeypatch):
    """Once `pneumobench report` failed outside the repository root: baselines/paper.json not found."""
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--store", str(small_store), "--out", "elsewhere"]) == 0
    data = json.loads((tmp_path / "elsewhere" / "report.json").read_text())
    baseline = next(row for row in data["table6"] if row["configuration"] == "baseline")
    assert baseline["dice"]["paper"] == load_paper().table6(())["dice"]


def test_report_refuses_a_foreign_database_and_leaves_it_untouched(tmp_path, capsys):
    """Once `report --store` on a foreign SQLite file switched it to WAL and added a table."""
    import sqlite3

    foreign = tmp_path / "app.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    before = foreign.read_bytes()
    assert main(["report", "--store", str(foreign), "--out", str(tmp_path / "out")]) == 2
    assert f"{foreign} is not a pneumobench results store (tables ['users']" in capsys.readouterr().err
    assert foreign.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["app.sqlite"]


def test_a_damaged_stored_result_is_a_store_error_naming_the_run(small_store, tmp_path):
    import sqlite3

    copy = tmp_path / "results.sqlite"
    shutil.copy(small_store, copy)
    db = sqlite3.connect(copy)
    key = db.execute("SELECT run_key FROM runs WHERE status='done' LIMIT 1").fetchone()[0]
    db.execute("UPDATE runs SET result_json='{not json' WHERE run_key=?", (key,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=f"the stored result of run {key} is damaged.*pneumobench store forget {key}"):
        ResultStore(copy).results()


def _claim_lines(report) -> dict[str, str]:
    return {r["claim"]: f"{r['verdict']} {r.get('note') or ''}" for r in report.data["claims"]}


@pytest.fixture
def judged_store(small_store, tmp_path):
    """A copy of the small store that remembers being judged with the shipped smoke-cpu baseline."""
    path = tmp_path / "judged" / "results.sqlite"
    path.parent.mkdir()
    with ResultStore(small_store)._connect() as source, ResultStore(path)._connect() as target:
        source.backup(target)
    recorded = BASELINES / "smoke-cpu.json"
    ResultStore(path).remember_judged_with("smoke", "cpu", recorded, recorded.read_text())
    return path


def test_a_store_is_judged_with_the_baseline_its_session_used_from_any_folder(judged_store, tmp_path, monkeypatch):
    """Issue 26 (11): outside the repository no ``baselines/`` is found, yet the verdicts equal those
    with the session's own file; a different ``./baselines`` file does not change them either, and
    the first lines say which baseline judged and that the local file differs."""
    in_repository = write_report(judged_store, tmp_path / "repo", baselines_dir=BASELINES)
    rows = {claim for claim, line in _claim_lines(in_repository).items() if claim.startswith("table6-")}
    assert any(not _claim_lines(in_repository)[c].startswith(("NOT RUN", "INCONCLUSIVE no recorded")) for c in rows)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _claim_lines(write_report(judged_store, tmp_path / "out")) == _claim_lines(in_repository)
    other = json.loads((BASELINES / "smoke-cpu.json").read_text())
    other["configs"]["baseline"]["dice"] = {seed: 0.5 for seed in other["configs"]["baseline"]["dice"]}
    (elsewhere / "baselines").mkdir()
    (elsewhere / "baselines" / "smoke-cpu.json").write_text(json.dumps(other))
    local = write_report(judged_store, tmp_path / "local")
    assert _claim_lines(local) == _claim_lines(in_repository)
    first_note = local.markdown.split("- Note: ")[1].splitlines()[0]
    assert first_note.startswith("judged with the recorded baseline the session used") and "differs" in first_note
    assert local.markdown.index("- Note: judged with") < local.markdown.index("## Table 6")


def test_a_named_baselines_folder_that_differs_from_the_sessions_is_refused(judged_store, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "smoke-cpu.json").write_text((BASELINES / "smoke-cpu.json").read_text().replace("0.9", "0.8", 1))
    args = ["report", "--store", str(judged_store), "--out", str(tmp_path / "r"), "--baselines", str(other)]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "the session judged this store with" in error
    assert str(other / "smoke-cpu.json") in error and str(BASELINES / "smoke-cpu.json") in error
    assert not (tmp_path / "r" / "report.md").exists()


def test_a_store_judged_without_a_baseline_says_so_first_and_stays_so(small_store, tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultStore(small_store)._connect() as source, ResultStore(path)._connect() as target:
        source.backup(target)
    ResultStore(path).remember_judged_with("smoke", "cpu", tmp_path / "none" / "smoke-cpu.json", None)
    report = write_report(path, tmp_path / "out", baselines_dir=tmp_path / "none")
    assert report.data["notes"][0].startswith("judged without a recorded baseline, as the session was")
    row = next(r for r in report.data["claims"] if r["claim"] == "table6-baseline-dice")
    assert row["verdict"] == "INCONCLUSIVE" and "no recorded baseline" in row["note"]
