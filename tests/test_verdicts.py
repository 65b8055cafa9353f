"""Verdict to test outcome, and the verdict line: plain tables, no inner pytest runs."""

import math

import pytest

from pneumobench.judging.families import Family
from pneumobench.judging.stats import Verdict
from pneumobench.judging.verdicts import (
    SYNTHETIC_NOTE,
    Outcome,
    outcome,
    outcome_message,
    verdict_line,
)
from pneumobench.reporting.summary import count_line, next_step, summary_lines

P, F, X = Outcome.PASS, Outcome.FAIL, Outcome.XFAIL


@pytest.mark.parametrize(
    "verdict, evidence, strict, expected",
    [
        (Verdict.REPRODUCED, True, False, P), (Verdict.REPRODUCED, False, True, P),
        (Verdict.NO_REGRESSION, True, True, P), (Verdict.NO_REGRESSION, False, False, P),
        (Verdict.REGRESSED, True, False, F), (Verdict.REGRESSED, False, False, F),
        (Verdict.CHANGED, True, False, F), (Verdict.CHANGED, False, False, F),
        (Verdict.CONTRADICTED, True, False, F), (Verdict.CONTRADICTED, False, False, X),
        (Verdict.CONTRADICTED, False, True, F),
        (Verdict.INCONCLUSIVE, True, False, X), (Verdict.INCONCLUSIVE, False, False, X),
        (Verdict.INCONCLUSIVE, True, True, F), (Verdict.INCONCLUSIVE, False, True, F),
    ],
)
def test_outcome_table(verdict, evidence, strict, expected):
    assert outcome(verdict, evidence=evidence, strict=strict) == expected


RECORD = {"verdict": "CONTRADICTED", "text": "ASPP improves Dice", "claim": "aspp-improves-dice", "estimate": -0.012,
          "paper": 0.009, "p_value": 0.0004, "decided_by": "paired t, T < C", "alpha": 0.05 / 43, "seeds": 5,
          "seeds_needed": 40, "note": "significant in the opposite direction"}


def test_verdict_line_names_the_deciding_test():
    assert verdict_line(RECORD) == (
        "CONTRADICTED: ASPP improves Dice: measured -0.0120 (target +0.0090), p=0.0004 (paired t, T < C) "
        "at alpha=0.00116, 5 seeds; significant in the opposite direction"
    )


def test_inconclusive_line_says_how_many_seeds_would_decide_and_skips_a_missing_p():
    record = {**RECORD, "verdict": "INCONCLUSIVE", "p_value": math.nan, "note": "no recorded baseline"}
    assert verdict_line(record) == (
        "INCONCLUSIVE: ASPP improves Dice: measured -0.0120 (target +0.0090), 5 seeds; "
        "about 40 seeds would decide at the paper's effect size; no recorded baseline"
    )


@pytest.mark.parametrize(
    "verdict, strict, suffix",
    [
        (Verdict.CONTRADICTED, False, ""),
        (Verdict.CONTRADICTED, True, ""),  # fails with or without --pb-strict
        (Verdict.REGRESSED, True, ""),
        (Verdict.INCONCLUSIVE, False, ""),  # an xfail
        (Verdict.INCONCLUSIVE, True, " (--pb-strict)"),  # failed only because of --pb-strict
    ],
)
def test_outcome_message_says_when_strictness_failed_the_test(verdict, strict, suffix):
    """The synthetic-data note is not repeated per test (once 37 xfail lines of ~300 characters)."""
    record = {**RECORD, "verdict": verdict.value}
    assert outcome_message(record, verdict, strict=strict) == verdict_line(record) + suffix


def test_a_row_judged_against_the_recorded_baseline_names_it_and_gives_the_papers_value():
    """Once "measured +0.9450 (target +0.9450)" with no word of where the target came from."""
    record = {**RECORD, "verdict": "REPRODUCED", "text": "aspp reaches the paper's dice", "estimate": 0.945,
              "paper": 0.945, "paper_value": 0.592, "reference": "recorded baseline, same seeds", "p_value": 0.0008,
              "decided_by": "TOST, margin 0.01", "seeds": 3, "note": "within +-0.01"}
    assert verdict_line(record) == (
        "REPRODUCED: aspp reaches the paper's dice: measured +0.9450 (target +0.9450 from the recorded baseline, "
        "same seeds; paper +0.5920), p=0.0008 (TOST, margin 0.01) at alpha=0.00116, 3 seeds; within +-0.01"
    )


def _records(*rows):
    return [{"kind": kind, "verdict": verdict, "synthetic": synthetic, "seeds_needed": needed, "note": note}
            for kind, verdict, synthetic, needed, note in rows]


def test_the_count_line_counts_claims_and_regression_checks_apart():
    records = _records(("paired", "REPRODUCED", True, None, ""), ("row", "INCONCLUSIVE", True, None, ""),
                       ("paired", "INCONCLUSIVE", True, 9, ""), ("regression", "NO REGRESSION", True, None, ""),
                       ("regression", "REGRESSED", True, None, ""), ("best", "NOT RUN", True, None, "missing"))
    assert count_line(records) == (
        "4 claims: 1 REPRODUCED, 2 INCONCLUSIVE, 0 CONTRADICTED, 1 NOT RUN; "
        "2 regression checks: 1 NO REGRESSION, 1 REGRESSED, 0 CHANGED, 0 INCONCLUSIVE"
    )


@pytest.mark.parametrize("rows, step", [
    ([("paired", "REPRODUCED", False, None, "")], ""),
    ([("paired", "INCONCLUSIVE", False, 9, ""), ("paired", "INCONCLUSIVE", False, 41, ""),
      ("paired", "REPRODUCED", False, 3, "")],
     "1 of 2 open claims would decide within 40 seeds at the paper's effect sizes: --pb-seeds auto trains only the "
     "seeds each needs"),
    ([("row", "INCONCLUSIVE", True, None, "no recorded baseline (record one with --pb-update-baselines)")],
     "judge the paper on its data: pneumobench data prepare SIIM_DIR DIR, then pytest suites -m paper --pb-profile "
     'paper --pb-data DIR; or record a baseline: pytest suites -m "paper or regression" --pb-update-baselines'),
])
def test_the_next_step_says_what_would_teach_more(rows, step):
    assert next_step(_records(*rows)) == step


def test_summary_names_the_profile_each_family_and_the_synthetic_note():
    record = {**RECORD, "claim": "aspp-improves-dice", "source": "paper", "ci_low": -0.02, "ci_high": -0.004,
              "p_outperform": None, "degenerate": [], "family": "paper", "profile": "smoke", "synthetic": True}
    lines = summary_lines([record])
    assert lines[0].startswith("profile smoke; family paper: alpha 0.05 over its ")
    assert lines[1] == f"NOTE: {SYNTHETIC_NOTE}"
    assert "aspp-improves-dice" in lines[2] and "CONTRADICTED" in lines[2]
    assert lines[3] == "1 claim: 0 REPRODUCED, 0 INCONCLUSIVE, 1 CONTRADICTED"
    assert lines[4].startswith("next: judge the paper on its data: ")
    assert summary_lines([{**record, "synthetic": False}])[1].split("\n")[0].startswith("claim")


@pytest.mark.parametrize(
    "family, text",
    [
        (Family("f", 0.05, ("a", "b", "c", "d")), "family f: alpha 0.05 over its 4 claims (Bonferroni, 0.0125 per test)"),
        (Family("h", 0.05, ("a",)), "family h: alpha 0.05 over its 1 claim (Bonferroni, 0.05 per test)"),
        (Family("g", 0.01, ("a", "b"), "per-test"), "family g: alpha 0.01 per test"),
        (Family("w", 0.05, ("a", "b"), both_ways=True),
         "family w: alpha 0.05 over its 2 claims, both directions (Bonferroni, 0.0125 per test)"),
    ],
)
def test_a_family_describes_its_alpha(family, text):
    assert family.describe() == text
