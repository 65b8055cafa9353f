"""The verdict rules: error rates under the null and power, checked by simulation."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from pneumobench.stats import (
    MIN_SEEDS,
    Verdict,
    _one_sided_t,
    best_claim,
    equivalence_claim,
    holm,
    paired_claim,
    regression_check,
    seeds_for_power,
)

SIMULATIONS = 2000


def runs(rng, base, seeds, shift=0.0, seed_sd=0.01):
    """(seeds, images) scores: a per-image base shared by the arms, per-seed noise, an effect."""
    return base + shift + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, 0.01, (seeds, base.size))


def rate(outcomes):
    return float(np.mean(outcomes))


def bound(alpha, n=SIMULATIONS):
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / n)


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_paired_claim_false_reproduced_rate_under_the_null(seeds):
    rng = np.random.default_rng(seeds)
    alpha = 0.05
    verdicts = []
    for _ in range(SIMULATIONS):
        base = rng.uniform(0.3, 0.8, 20)
        t = base + rng.normal(0, 0.01, (seeds, 1))
        c = base + rng.normal(0, 0.01, (seeds, 1))
        verdicts.append(paired_claim(t, c, direction=+1, alpha=alpha, bootstrap=False).verdict)
    assert rate([v == Verdict.REPRODUCED for v in verdicts]) <= bound(alpha)
    assert rate([v == Verdict.CONTRADICTED for v in verdicts]) <= bound(alpha)


def test_paper_sized_effect_is_detected_with_enough_seeds():
    rng = np.random.default_rng(1)
    alpha, effect, sd = 0.05 / 12, 0.009, 0.006  # ASPP's Dice gain; Bonferroni over 12 claims
    n = seeds_for_power(effect, sd, alpha)
    assert n is not None and n >= 3
    detected = []
    for _ in range(SIMULATIONS):
        base = rng.uniform(0.3, 0.8, 20)
        t = base + effect + rng.normal(0, sd / math.sqrt(2), (n, 1))
        c = base + rng.normal(0, sd / math.sqrt(2), (n, 1))
        detected.append(paired_claim(t, c, direction=+1, alpha=alpha, bootstrap=False).verdict == Verdict.REPRODUCED)
    assert rate(detected) >= 0.8 - 3 * math.sqrt(0.16 / SIMULATIONS)


@pytest.mark.parametrize("seeds", [1, 2])
def test_fewer_than_three_seeds_never_pass_or_fail(seeds):
    huge = np.ones((seeds, 10))
    zero = np.zeros((seeds, 10))
    assert paired_claim(huge, zero, direction=+1, alpha=0.05).verdict == Verdict.INCONCLUSIVE
    assert paired_claim(zero, huge, direction=+1, alpha=0.05).verdict == Verdict.INCONCLUSIVE
    assert equivalence_claim(np.full(seeds, 0.5), 0.5, margin=0.01, alpha=0.05).verdict == Verdict.INCONCLUSIVE
    assert regression_check(np.zeros(seeds), np.ones(seeds), margin=0.02).verdict == Verdict.INCONCLUSIVE
    assert best_claim(huge, {"other": zero}, alpha=0.05).verdict == Verdict.INCONCLUSIVE


def test_clear_effects_give_clear_verdicts():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.3, 0.8, 20)
    t, c = runs(rng, base, 5, shift=0.05), runs(rng, base, 5)
    result = paired_claim(t, c, direction=+1, alpha=0.01, paper_diff=0.05)
    assert result.verdict == Verdict.REPRODUCED and result.p_outperform == 1.0
    assert result.ci_low < result.estimate < result.ci_high and result.ci_low > 0
    assert paired_claim(c, t, direction=+1, alpha=0.01).verdict == Verdict.CONTRADICTED
    assert paired_claim(c, t, direction=-1, alpha=0.01).verdict == Verdict.REPRODUCED


def test_equivalence_false_reproduced_rate_at_the_margin():
    rng = np.random.default_rng(3)
    alpha, margin = 0.05, 0.01
    outcomes = [
        equivalence_claim(rng.normal(0.5 + margin, 0.01, 5), 0.5, margin=margin, alpha=alpha).verdict == Verdict.REPRODUCED
        for _ in range(SIMULATIONS)
    ]
    assert rate(outcomes) <= bound(alpha)
    inside = equivalence_claim(np.array([0.500, 0.501, 0.499, 0.5005, 0.4995]), 0.5, margin=margin, alpha=alpha)
    assert inside.verdict == Verdict.REPRODUCED
    outside = equivalence_claim(np.array([0.55, 0.551, 0.549, 0.552, 0.548]), 0.5, margin=margin, alpha=alpha)
    assert outside.verdict == Verdict.CONTRADICTED


def test_regression_false_alarm_rate_under_the_null():
    rng = np.random.default_rng(4)
    outcomes = [
        regression_check(rng.normal(0.6, 0.02, 5), rng.normal(0.6, 0.02, 5), margin=0.0, alpha=0.01).verdict
        == Verdict.REGRESSED
        for _ in range(SIMULATIONS)
    ]
    assert rate(outcomes) <= bound(0.01)


def test_regression_needs_a_drop_beyond_the_margin():
    baseline = np.array([0.60, 0.61, 0.59, 0.605, 0.595])
    assert regression_check(baseline - 0.01, baseline, margin=0.02).verdict == Verdict.NO_REGRESSION
    assert regression_check(baseline - 0.10, baseline, margin=0.02).verdict == Verdict.REGRESSED
    assert regression_check(baseline, baseline, margin=0.02).verdict == Verdict.NO_REGRESSION
    assert regression_check(baseline + 0.05, baseline, margin=0.02).verdict == Verdict.NO_REGRESSION


def test_best_claim_null_rate_and_contradiction():
    rng = np.random.default_rng(5)
    alpha = 0.05
    outcomes = []
    for _ in range(500):
        base = rng.uniform(0.3, 0.8, 20)
        arms = [base + rng.normal(0, 0.01, (5, 1)) for _ in range(4)]
        outcomes.append(best_claim(arms[0], {f"r{i}": a for i, a in enumerate(arms[1:])}, alpha=alpha, bootstrap=False).verdict)
    assert rate([v == Verdict.REPRODUCED for v in outcomes]) <= bound(alpha, 500)
    base = rng.uniform(0.3, 0.8, 20)
    winner = base + 0.05 + rng.normal(0, 0.005, (5, 1))
    loser = base + rng.normal(0, 0.005, (5, 1))
    assert best_claim(winner, {"loser": loser}, alpha=alpha).verdict == Verdict.REPRODUCED
    result = best_claim(loser, {"winner": winner, "twin": loser + 0.0}, alpha=alpha)
    assert result.verdict == Verdict.CONTRADICTED and "winner" in result.note


def test_holm_matches_a_hand_computation():
    # sorted p: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> monotone 0.06)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_seeds_for_power_grows_as_the_effect_shrinks():
    alpha = 0.05
    small, large = seeds_for_power(0.002, 0.006, alpha), seeds_for_power(0.01, 0.006, alpha)
    assert small > large >= 3
    assert seeds_for_power(0.0, 0.01, alpha) is None


@given(
    values=st.lists(st.floats(0, 1), min_size=2, max_size=12).filter(lambda v: np.ptp(v) > 1e-6),
    null=st.floats(0, 1),
    alternative=st.sampled_from(["less", "greater"]),
)
def test_one_sided_t_matches_scipy(values, null, alternative):
    expected = scipy_stats.ttest_1samp(values, null, alternative=alternative).pvalue
    assert _one_sided_t(np.array(values), null, alternative) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def _seeds_for_power_by_loop(effect, sd, alpha, power=0.8, max_seeds=1000):
    """Reference: try each seed count in turn with scipy's noncentral t."""
    for n in range(MIN_SEEDS, max_seeds + 1):
        critical = scipy_stats.t.ppf(1 - alpha, n - 1)
        if scipy_stats.nct.sf(critical, n - 1, abs(effect) / sd * math.sqrt(n)) >= power:
            return n
    return None


@pytest.mark.parametrize("effect", [0.002, 0.01, -0.05, 0.3])
@pytest.mark.parametrize("sd", [0.005, 0.03])
@pytest.mark.parametrize("alpha", [0.05, 0.001])
def test_seeds_for_power_matches_the_loop(effect, sd, alpha):
    assert seeds_for_power(effect, sd, alpha) == _seeds_for_power_by_loop(effect, sd, alpha)
