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
from pneumobench.reporting.report import summary_lines

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
    "verdict, synthetic, strict, suffix",
    [
        (Verdict.CONTRADICTED, False, False, ""),
        (Verdict.CONTRADICTED, True, True, f" [{SYNTHETIC_NOTE}]"),  # fails with or without --pb-strict
        (Verdict.REGRESSED, False, True, ""),
        (Verdict.INCONCLUSIVE, False, False, ""),  # an xfail
        (Verdict.INCONCLUSIVE, False, True, " (--pb-strict)"),  # failed only because of --pb-strict
        (Verdict.INCONCLUSIVE, True, True, f" [{SYNTHETIC_NOTE}] (--pb-strict)"),
    ],
)
def test_outcome_message_says_when_strictness_failed_the_test(verdict, synthetic, strict, suffix):
    record = {**RECORD, "verdict": verdict.value}
    assert outcome_message(record, verdict, synthetic=synthetic, strict=strict) == verdict_line(record) + suffix


def test_summary_names_the_profile_each_family_and_the_synthetic_note():
    record = {**RECORD, "claim": "aspp-improves-dice", "source": "paper", "ci_low": -0.02, "ci_high": -0.004,
              "p_outperform": None, "degenerate": [], "family": "paper", "profile": "smoke", "synthetic": True}
    lines = summary_lines([record])
    assert lines[0].startswith("profile smoke; family paper: alpha 0.05 over its ")
    assert lines[1] == f"NOTE: {SYNTHETIC_NOTE}"
    assert "aspp-improves-dice" in lines[2] and "CONTRADICTED" in lines[2]
    assert summary_lines([{**record, "synthetic": False}])[1].split("\n")[0].startswith("claim")


@pytest.mark.parametrize(
    "family, text",
    [
        (Family("f", 0.05, ("a", "b", "c", "d")), "family f: alpha 0.05 over its 4 claims (Bonferroni, 0.0125 per test)"),
        (Family("h", 0.05, ("a",)), "family h: alpha 0.05 over its 1 claim (Bonferroni, 0.05 per test)"),
        (Family("g", 0.01, ("a", "b"), "per-test"), "family g: alpha 0.01 per test"),
    ],
)
def test_a_family_describes_its_alpha(family, text):
    assert family.describe() == text
