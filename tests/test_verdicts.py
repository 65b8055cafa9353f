"""Verdict to test outcome, and the verdict line: plain tables, no inner pytest runs."""

import math

import pytest

from pneumobench.stats import Verdict
from pneumobench.verdicts import Outcome, outcome, verdict_line

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
