"""A store's history across code versions: on three versions of the smoke profile, one with a
planted Dice drop, exactly that version is REGRESSED (against the previous version and against
the recorded baseline); a version in another environment is shown as such, never compared;
``git log`` orders the versions when the repository knows their commits; the CLI prints it."""

import json
import subprocess

import pytest
from fakes import cpu_environment, fake_run, store_runs

from pneumobench.experiment.profiles import get_profile
from pneumobench.judging.baselines import record
from pneumobench.reporting.history import HistoryError, history, history_rows
from pneumobench.runs import store as store_module
from pneumobench.runs.store import ResultStore

SMOKE = get_profile("smoke")


def _store_version(store, dataset, monkeypatch, source, commit, *, shift=0.0, threads=1, mods=((), ("aspp",))):
    """The smoke runs of ``mods`` made by code ``source`` at ``commit``: Dice of the baseline
    shifted by ``shift``, the torch thread count ``threads``."""
    monkeypatch.setattr(store_module, "_SOURCE_OVERRIDE", [source])
    env = {**cpu_environment(), "git_commit": commit, "cpu_threads": threads}
    runs = [fake_run(SMOKE.config(*m), seed, dataset, dice_shift=shift if m == () else 0.0, env=env)
            for m in mods for seed in SMOKE.seeds]
    store_runs(store, runs)
    return runs


@pytest.fixture
def three_versions(tiny_dataset, tmp_path, monkeypatch):
    """v1 (recorded as the baseline), v2 the same numbers, v3 the baseline's Dice 0.05 lower."""
    store = ResultStore(tmp_path / "s.sqlite")
    first = _store_version(store, tiny_dataset, monkeypatch, "a" * 16, "1" * 40)
    _store_version(store, tiny_dataset, monkeypatch, "b" * 16, "2" * 40)
    _store_version(store, tiny_dataset, monkeypatch, "c" * 16, "3" * 40, shift=-0.05)
    (tmp_path / "baselines").mkdir()
    record(tmp_path / "baselines" / "smoke-cpu.json", profile="smoke", device_kind="cpu", results=first)
    return store, tmp_path / "baselines"


def test_exactly_the_version_with_the_planted_drop_is_regressed(three_versions):
    store, baselines = three_versions
    rows = history_rows(store.path, baselines_dir=baselines, repo=None)
    baseline_dice = [r for r in rows if r["config"] == "baseline" and r["metric"] == "dice"]
    assert [r["source_fingerprint"] for r in baseline_dice] == ["a" * 16, "b" * 16, "c" * 16]
    assert [r["vs_previous"] for r in baseline_dice] == ["", "NO REGRESSION", "REGRESSED"]
    assert [r["vs_baseline"] for r in baseline_dice] == ["NO REGRESSION", "NO REGRESSION", "REGRESSED"]
    assert baseline_dice[2]["mean"] == pytest.approx(baseline_dice[1]["mean"] - 0.05, abs=0.01)  # clipped at 0
    others = [r for r in rows if r not in baseline_dice]
    assert {r["vs_previous"] for r in others} == {"", "NO REGRESSION"} and len(others) == 9
    assert all(r["seeds"] == len(SMOKE.seeds) and r["commits"] for r in rows)


def test_a_version_in_another_environment_is_shown_as_such_and_never_compared(three_versions, tiny_dataset,
                                                                               monkeypatch):
    store, baselines = three_versions
    _store_version(store, tiny_dataset, monkeypatch, "d" * 16, "4" * 40, shift=-0.2, threads=2, mods=((),))
    rows = history_rows(store.path, configs=["baseline"], metrics=["dice"], baselines_dir=baselines, repo=None)
    last = rows[-1]
    assert last["vs_previous"] == "other environment: CPU threads 1 -> 2"
    assert last["vs_baseline"].startswith("recorded baseline smoke-cpu: CPU thread count 1 recorded, 2 in baseline")


def test_git_log_orders_the_versions_when_the_repository_knows_their_commits(tiny_dataset, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    commits = []
    for n in range(2):
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", f"c{n}"], check=True)
        commits.append(subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip())
    store = ResultStore(tmp_path / "s.sqlite")
    _store_version(store, tiny_dataset, monkeypatch, "later" * 3 + "x", commits[1], mods=((),))  # stored first
    _store_version(store, tiny_dataset, monkeypatch, "early" * 3 + "x", commits[0], mods=((),))
    by_time = [r["source_fingerprint"] for r in history_rows(store.path, metrics=["dice"], repo=None)]
    by_git = [r["source_fingerprint"] for r in history_rows(store.path, metrics=["dice"], repo=repo)]
    assert by_time == ["laterlaterlaterx", "earlyearlyearlyx"] and by_git == by_time[::-1]


def test_the_library_gives_a_dataframe_and_the_cli_a_table_and_json(three_versions, tmp_path, capsys):
    from pneumobench.cli import main

    store, baselines = three_versions
    frame = history(store.path, baselines_dir=baselines, repo=None)
    assert len(frame) == 12 and list(frame.query("vs_previous == 'REGRESSED'")["source_fingerprint"]) == ["c" * 16]
    out = tmp_path / "history.json"
    assert main(["history", "--store", str(store.path), "--baselines", str(baselines), "--config", "baseline",
                 "--metric", "dice", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "baseline dice (dataset " in printed and "REGRESSED (p=" in printed
    assert [r["vs_previous"] for r in json.loads(out.read_text())] == ["", "NO REGRESSION", "REGRESSED"]


@pytest.mark.parametrize("args, message", [
    (["--config", "nosuch"], "pneumobench history: no runs of nosuch in "),
    (["--dataset", "0" * 32], "nothing to show for dataset 00000000000000000000000000000000; it has runs on "),
])
def test_history_usage_errors_are_one_line(three_versions, capsys, args, message):
    from pneumobench.cli import main

    store, _ = three_versions
    assert main(["history", "--store", str(store.path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_no_store_is_an_error_that_says_how_to_make_one(tmp_path):
    with pytest.raises(HistoryError, match="no results store at .*: run the suites first"):
        history_rows(tmp_path / "none.sqlite")


def test_the_store_reads_one_code_version_and_configuration_alone(three_versions):
    store, _ = three_versions
    everything = store.finished()
    version = store.finished(source_fingerprint="b" * 16)
    assert len(everything) == 18 and len(version) == 6 and {s.source_fingerprint for s in version} == {"b" * 16}
    key = SMOKE.config().key()
    one = store.finished(source_fingerprint="b" * 16, config_key=key)
    assert sorted(s.result.seed for s in one) == list(SMOKE.seeds) and {s.result.config_key for s in one} == {key}
    assert [s.result.seed for s in one] == [s.result.seed for s in everything if s in one]  # oldest first, as before
