"""The authors' own runs: the shipped logs load and check, and the numbers docs/protocol.md's table
and the issue quote come out of them exactly."""

import shutil

import pytest

from pneumobench.judging.baselines import load_paper
from pneumobench.reporting.authors_runs import (
    AuthorsRunsError,
    claim_signs,
    default_path,
    load_authors_runs,
    selection_effects,
    table6_by_rule,
)


@pytest.fixture(scope="module")
def runs():
    return load_authors_runs()


def test_the_shipped_logs_hold_16_runs_of_43_epochs(runs):
    assert len(runs) == 16 and all(len(run.curves) == 43 for run in runs.values())
    assert sum(len(run.curves) for run in runs.values()) == 688
    baseline = runs["baseline"]
    assert [e["lr"] for e in baseline.curves[:3]] == [4e-4, 2e-4, 1e-4]  # the per-epoch cosine, stepped first
    assert (baseline.curves[-1]["val_dice"], baseline.curves[-1]["val_accuracy"]) == (0.583, 0.828)


def test_the_published_table6_is_the_best_epoch_except_for_the_baseline(runs):
    rows = {row["configuration"]: row for row in table6_by_rule(runs, load_paper())}
    assert all(row["as-published"]["matches_paper"] for row in rows.values())
    best_matches = {name for name, row in rows.items() if row["best-val"]["matches_paper"]}
    assert best_matches == set(rows) - {"baseline"}
    assert rows["baseline"]["last"]["matches_paper"]
    assert rows["baseline"]["best-val"] == {"epoch": 32, "dice": 0.585, "accuracy": 0.834, "matches_paper": False}
    assert rows["scse"]["best-val"]["epoch"] == 37  # a three-way Dice tie, broken by accuracy
    assert rows["aspp+hypercolumns"]["last"] == {"epoch": 43, "dice": 0.567, "accuracy": 0.841, "matches_paper": False}


def test_selection_effects_are_best_minus_last(runs):
    effects = {e["configuration"]: e for e in selection_effects(runs)}
    assert effects["aspp+hypercolumns"] == {
        "configuration": "aspp+hypercolumns",
        "best_epoch": 32,
        "dice": 0.026,
        "accuracy": -0.004,
    }
    assert max(e["dice"] for e in effects.values()) == 0.026
    assert all(e["dice"] >= 0 for e in effects.values())
    assert effects["lovasz+aspp"]["dice"] == 0 and effects["lovasz+aspp"]["best_epoch"] == 43


def test_claim_signs_at_the_last_epoch(runs):
    signs = {row["claim"]: row for row in claim_signs(runs)}
    assert signs["lovasz-improves-dice"]["last"] == pytest.approx(0.580 - 0.583)
    assert not signs["lovasz-improves-dice"]["last_agrees"]
    assert signs["lovasz-improves-dice"]["best-val"] == pytest.approx(0.588 - 0.585)
    assert signs["all-four-worse-than-aspp"]["last"] == pytest.approx(0.563 - 0.584)
    assert signs["all-four-worse-than-aspp"]["last_agrees"]
    assert signs["hypercolumns-improve-accuracy"]["last"] == pytest.approx(0.844 - 0.828)
    for row in signs.values():  # the published epochs give back the paper's own differences
        assert row["as-published"] == pytest.approx(row["paper"], abs=1e-9) and row["as-published_agrees"]
    against = {claim for claim, row in signs.items() if not row["last_agrees"]}
    assert against == {"lovasz-improves-dice", "aspp-improves-accuracy", "hypercolumns-improve-dice"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("baseline,1,2,2,2.0e-04", "baseline,1,2,2,abc", 1), "line 3: a field is not a number"),
        (lambda text: text.replace(",0.583,0.828\n", ",1.583,0.828\n", 1), "must lie in"),
        (lambda text: "\n".join(line for i, line in enumerate(text.split("\n")) if i != 5), "epoch 6 follows epoch 4"),
        (lambda text: text.replace("configuration,", "config,", 1), "columns"),
        (lambda text: "\n".join(line for line in text.split("\n") if not line.startswith("scse,")), "missing \\['scse'\\]"),
    ],
)
def test_a_damaged_log_names_its_file_and_row(tmp_path, edit, message):
    path = tmp_path / "epochs.csv"
    path.write_text(edit(default_path().read_text()))
    with pytest.raises(AuthorsRunsError, match=message):
        load_authors_runs(path)


def test_a_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(AuthorsRunsError, match="cannot be read"):
        load_authors_runs(tmp_path / "nope.csv")
    shutil.copy(default_path(), tmp_path / "copy.csv")
    assert len(load_authors_runs(tmp_path / "copy.csv")) == 16
