"""Every field of every rule's output against an independent reference written with scipy
(in the spirit of torchmetrics' reference tester): verdict, note, the deciding test and its p,
the interval, P(T>C), seeds needed and the extra numbers, on hand-picked and random inputs."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from pneumobench.judging.stats import (
    MIN_SEEDS,
    NO_SPREAD,
    best_claim,
    check_finite,
    equivalence_claim,
    paired_claim,
    paired_power,
    regression_check,
    seeds_for_power,
    undecided,
)


def same(actual, expected, path="result"):
    """Recursive equality: floats to 1e-7 relative (NaN equals NaN), everything else exact."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), f"{path}: keys {set(actual) ^ set(expected)}"
        for key in expected:
            same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, int | float), f"{path}: {actual!r} is not a number"
        if math.isnan(expected):
            assert math.isnan(actual), f"{path}: {actual} != nan"
        else:
            assert actual == pytest.approx(expected, rel=1e-7, abs=1e-12), f"{path}: {actual} != {expected}"
    else:
        assert actual == expected and type(actual) is type(expected), f"{path}: {actual!r} != {expected!r}"


def undecided_dict(note, *, seeds, estimate, alpha, paper):
    nan = float("nan")
    return {"verdict": "INCONCLUSIVE", "seeds": seeds, "estimate": estimate, "ci_low": nan, "ci_high": nan,
            "p_value": nan, "alpha": alpha, "paper": paper, "p_outperform": None, "seeds_needed": None, "note": note,
            "decided_by": "", "extra": {}, "ci_level": 1 - 2 * alpha}


def too_few(n):
    return f"{n} seeds: at least {MIN_SEEDS} are needed to decide"


def needed_by_loop(effect, sd, alpha):
    for n in range(MIN_SEEDS, 1001):
        if sps.nct.sf(sps.t.ppf(1 - alpha, n - 1), n - 1, abs(effect) / sd * math.sqrt(n)) >= 0.8:
            return n
    return None


def reference_paired(t, c, direction, alpha, paper):
    d = t.mean(axis=1) - c.mean(axis=1)
    n, mean = len(d), float(d.mean())
    if n < 3:
        return undecided_dict(too_few(n), seeds=n, estimate=mean, alpha=alpha, paper=paper)
    if np.ptp(d) == 0:
        return undecided_dict(NO_SPREAD, seeds=n, estimate=mean, alpha=alpha, paper=paper)
    greater = float(sps.ttest_1samp(d, 0, alternative="greater").pvalue)
    less = float(sps.ttest_1samp(d, 0, alternative="less").pvalue)
    claim, other = (greater, less) if direction > 0 else (less, greater)
    signs = ("T > C", "T < C") if direction > 0 else ("T < C", "T > C")
    if claim < alpha:
        verdict, note, test, p = "REPRODUCED", "", f"paired t, {signs[0]}", claim
    elif other < alpha:
        verdict, note, test, p = "CONTRADICTED", "significant in the opposite direction", f"paired t, {signs[1]}", other
    else:
        verdict, note, test, p = "INCONCLUSIVE", "not significant in either direction", f"paired t, {signs[0]}", claim
    sd = float(np.std(d, ddof=1))
    half = sps.t.ppf(1 - alpha, n - 1) * sd / math.sqrt(n)
    return {"verdict": verdict, "seeds": n, "estimate": mean, "ci_low": mean - half, "ci_high": mean + half,
            "p_value": p, "alpha": alpha, "paper": paper,
            "p_outperform": (np.sum(d > 0) + 0.5 * np.sum(d == 0)) / n,
            "seeds_needed": needed_by_loop(paper, sd, alpha) if paper is not None else None, "note": note,
            "decided_by": test, "extra": {"p_claimed_direction": claim, "p_other_direction": other, "sd_per_seed": sd},
            "ci_level": 1 - 2 * alpha}


def per_image(means, images=3):
    return np.repeat(np.asarray(means, float)[:, None], images, axis=1)


C4 = [0.5, 0.5, 0.5, 0.5]
PAIRED_CASES = [
    ([0.53, 0.52, 0.54, 0.535], C4, +1, 0.01, 0.02),      # REPRODUCED
    ([0.53, 0.52, 0.54, 0.535], C4, -1, 0.01, -0.02),     # CONTRADICTED
    ([0.47, 0.48, 0.46, 0.465], C4, -1, 0.01, None),      # REPRODUCED the other way
    ([0.51, 0.50, 0.49, 0.52], C4, +1, 0.05, 0.01),       # INCONCLUSIVE, a tie counts half
    ([0.47, 0.48, 0.46, 0.465], C4, +1, 0.01, 0.01),      # CONTRADICTED: T < C when T > C was claimed
    ([0.51, 0.52], [0.5, 0.5], +1, 0.05, 0.01),          # too few seeds
    ([0.6, 0.6, 0.6], [0.5, 0.5, 0.5], +1, 0.05, None),   # no spread
    ([0.6, 0.6, 0.6], [0.5, 0.5, 0.5], -1, 0.05, -0.01),  # no spread, with the paper's difference
]


@pytest.mark.parametrize("t, c, direction, alpha, paper", PAIRED_CASES)
def test_paired_claim_every_field(t, c, direction, alpha, paper):
    t, c = per_image(t), per_image(c)
    same(paired_claim(t, c, direction=direction, alpha=alpha, paper_diff=paper).to_dict(),
         reference_paired(t, c, direction, alpha, paper))


@settings(max_examples=40)
@given(diffs=st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=1, max_size=8),
       direction=st.sampled_from([1, -1]), alpha=st.sampled_from([0.05, 0.001]),
       paper=st.sampled_from([None, 0.01, -0.004]))
def test_paired_claim_every_field_on_random_inputs(diffs, direction, alpha, paper):
    d = np.round(np.array(diffs), 6)
    t, c = per_image(0.5 + d), per_image(np.full(len(d), 0.5))
    same(paired_claim(t, c, direction=direction, alpha=alpha, paper_diff=paper).to_dict(),
         reference_paired(t, c, direction, alpha, paper))


def holm_by_hand(p):
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def reference_best(best, rivals, alpha, paper):
    names = list(rivals)
    diffs = {name: best.mean(axis=1) - rivals[name].mean(axis=1) for name in names}
    n = len(best)
    flat = [name for name in names if np.ptp(diffs[name]) == 0]
    if n < 3 or flat:
        note = too_few(n) if n < 3 else f"{NO_SPREAD} (against {', '.join(flat)})"
        return undecided_dict(note, seeds=n, estimate=min(float(v.mean()) for v in diffs.values()), alpha=alpha,
                              paper=paper)
    p_claim = {name: float(sps.ttest_1samp(diffs[name], 0, alternative="greater").pvalue) for name in names}
    p_other = [float(sps.ttest_1samp(diffs[name], 0, alternative="less").pvalue) for name in names]
    adjusted = dict(zip(names, holm_by_hand(p_other)))
    closest = max(names, key=lambda name: p_claim[name])
    expected = reference_paired(best, rivals[closest], +1, alpha, paper)
    beaten = [name for name in names if adjusted[name] < alpha]
    if beaten:
        verdict, note = "CONTRADICTED", f"significantly beaten by {', '.join(beaten)}"
        test, p = f"Holm over {len(names)} rivals (smallest adjusted p)", min(adjusted.values())
    else:
        test, p = f"intersection-union over {len(names)} rivals (max p)", p_claim[closest]
        verdict, note = ("REPRODUCED", "") if p < alpha else ("INCONCLUSIVE", f"closest rival: {closest}")
    k = len(names)  # the interval of min_j (best - rival_j): lower at alpha, upper at alpha / k (Bonferroni)
    lows = [sps.t.interval(1 - 2 * alpha, n - 1, loc=diffs[m].mean(), scale=sps.sem(diffs[m]))[0] for m in names]
    highs = [sps.t.interval(1 - 2 * alpha / k, n - 1, loc=diffs[m].mean(), scale=sps.sem(diffs[m]))[1] for m in names]
    expected.update(verdict=verdict, note=note, decided_by=test, p_value=p, estimate=min(float(diffs[m].mean()) for m in names),
                    ci_low=min(lows), ci_high=min(highs), extra={"closest_rival": closest, "holm_adjusted": adjusted})
    return expected


BEST = [0.60, 0.61, 0.62, 0.605]
BEST_CASES = [
    (BEST, {"far": [0.40, 0.41, 0.39, 0.40], "near": [0.50, 0.51, 0.50, 0.52]}, 0.01, 0.01),   # REPRODUCED, closest 2nd
    (BEST, {"a": [0.70, 0.715, 0.72, 0.705], "b": [0.80, 0.81, 0.82, 0.806], "c": [0.3, 0.31, 0.3, 0.32]}, 0.01, None),
    (BEST, {"twin": [0.61, 0.60, 0.615, 0.61], "far": [0.40, 0.41, 0.39, 0.40]}, 0.05, 0.002),  # INCONCLUSIVE
    (BEST, {"same": BEST, "far": [0.40, 0.41, 0.39, 0.40]}, 0.05, None),                          # no spread
    (BEST[:3], {"a": BEST[:3], "b": [0.5, 0.51, 0.52], "c": BEST[:3]}, 0.05, 0.002),             # two flat, 3 seeds
    ([0.6, 0.61], {"r": [0.5, 0.52]}, 0.05, 0.001),                                              # too few seeds
]


@pytest.mark.parametrize("best, rivals, alpha, paper", BEST_CASES)
def test_best_claim_every_field(best, rivals, alpha, paper):
    best, rivals = per_image(best), {name: per_image(values) for name, values in rivals.items()}
    same(best_claim(best, rivals, alpha=alpha, paper=paper).to_dict(), reference_best(best, rivals, alpha, paper))


def test_best_claim_needs_rivals():
    with pytest.raises(ValueError, match="^a best-of claim needs at least one rival$"):
        best_claim(per_image(BEST), {}, alpha=0.05)


def reference_equivalence(values, reference, margin, alpha):
    values, reference = np.asarray(values, float), np.atleast_1d(np.asarray(reference, float))
    n, m, mean, target = len(values), len(reference), float(values.mean()), float(reference.mean())
    if n < 3:
        return undecided_dict(too_few(n), seeds=n, estimate=mean, alpha=alpha, paper=target)
    if m == 1:
        se, df = np.std(values, ddof=1) * math.sqrt(1 / n + 1), n - 1
    else:
        # Welch's standard error at the conservative min(n, m) - 1 degrees of freedom
        se, df = math.sqrt(np.var(values, ddof=1) / n + np.var(reference, ddof=1) / m), min(n, m) - 1
    if se == 0:
        return undecided_dict(NO_SPREAD, seeds=n, estimate=mean, alpha=alpha, paper=target)
    d = mean - target
    p_eq = max(sps.t.sf((d + margin) / se, df), sps.t.cdf((d - margin) / se, df))
    p_out = min(sps.t.cdf((d + margin) / se, df), sps.t.sf((d - margin) / se, df))
    if p_eq < alpha:
        verdict, note, test, p = "REPRODUCED", f"within +-{margin}", f"TOST, margin {margin}", p_eq
    elif p_out < alpha:
        verdict, note, test, p = "CONTRADICTED", f"outside +-{margin}", f"outside the margin {margin} (one-sided t)", p_out
    else:
        verdict, note, test, p = ("INCONCLUSIVE", f"neither shown within nor outside +-{margin}",
                                  f"TOST, margin {margin}", p_eq)
    half = sps.t.ppf(1 - alpha, df) * se
    return {"verdict": verdict, "seeds": n, "estimate": mean, "ci_low": mean - half, "ci_high": mean + half,
            "p_value": float(p), "alpha": alpha, "paper": target, "p_outperform": None, "seeds_needed": None,
            "note": note, "decided_by": test, "ci_level": 1 - 2 * alpha,
            "extra": {"margin": margin, "p_equivalent": float(p_eq), "p_outside": float(p_out), "se": float(se), "df": df}}


EQUIVALENCE_CASES = [
    ([0.600, 0.601, 0.599, 0.6005], 0.6, 0.01, 0.05),                   # REPRODUCED, the single run's variance included
    ([0.600, 0.601, 0.599, 0.6005], [0.6, 0.6005, 0.5995, 0.601], 0.01, 0.05),   # REPRODUCED against a baseline
    ([0.70, 0.701, 0.699, 0.7005], [0.6, 0.6005, 0.5995, 0.601], 0.01, 0.05),    # CONTRADICTED, above
    ([0.50, 0.501, 0.499, 0.5005], 0.6, 0.01, 0.05),                    # CONTRADICTED, below
    ([0.60, 0.62, 0.58, 0.61], 0.6, 0.01, 0.05),                         # INCONCLUSIVE
    ([0.60, 0.61], 0.6, 0.01, 0.05),                                     # too few seeds
    ([0.6, 0.6, 0.6], [0.6, 0.6, 0.6], 0.01, 0.05),                      # no spread
]


@pytest.mark.parametrize("values, reference, margin, alpha", EQUIVALENCE_CASES)
def test_equivalence_claim_every_field(values, reference, margin, alpha):
    same(equivalence_claim(np.array(values), reference, margin=margin, alpha=alpha).to_dict(),
         reference_equivalence(values, reference, margin, alpha))


def exact_regression(diff, n, today, recorded, margin, alpha, alike, decided_by):
    """The reference regression record without noise: the change itself against the margin."""
    verdict = "REGRESSED" if diff < -margin else "CHANGED" if diff > margin else "NO REGRESSION"
    note = {"REGRESSED": f"drop {-diff:.4f} > margin {margin}",
            "CHANGED": f"rise {diff:.4f} > margin {margin}: a leak, a metric bug, or an improvement to re-record",
            "NO REGRESSION": f"change {diff:+.4f} (margin {margin}; {alike})"}[verdict]
    return {"verdict": verdict, "seeds": n, "estimate": today, "ci_low": today, "ci_high": today,
            "p_value": 1.0 if verdict == "NO REGRESSION" else 0.0, "alpha": alpha, "paper": recorded,
            "p_outperform": None, "seeds_needed": None, "note": note, "decided_by": decided_by,
            "ci_level": 1 - 2 * alpha, "extra": {"margin": margin, "difference": diff, "detectable_change": margin}}


def decided_regression(p_drop, p_rise, interval, detectable, diff, n, today, recorded, margin, alpha, design):
    """The reference regression record from scipy's one-sided p-values and interval."""
    if p_drop < alpha:
        verdict, p, note, test = "REGRESSED", p_drop, f"drop {-diff:.4f} > margin {margin}", f"drop > {margin}"
    elif p_rise < alpha:
        verdict, p, test = "CHANGED", p_rise, f"rise > {margin}"
        note = f"rise {diff:.4f} > margin {margin}: a leak, a metric bug, or an improvement to re-record"
    else:
        verdict, p, test = "NO REGRESSION", min(p_drop, p_rise), f"change > {margin}"
        note = f"change {diff:+.4f} (margin {margin}; detects {detectable:.3f} either way)"
    return {"verdict": verdict, "seeds": n, "estimate": today, "ci_low": recorded + interval.low,
            "ci_high": recorded + interval.high, "p_value": float(p), "alpha": alpha, "paper": recorded,
            "p_outperform": None, "seeds_needed": None, "note": note, "decided_by": f"{design}, {test}",
            "ci_level": 1 - 2 * alpha, "extra": {"margin": margin, "difference": diff, "detectable_change": detectable}}


def reference_regression(current, baseline, margin, alpha):
    current, baseline = np.asarray(current, float), np.asarray(baseline, float)
    n, today, recorded = min(len(current), len(baseline)), float(current.mean()), float(baseline.mean())
    if n < 3:
        return undecided_dict(too_few(n), seeds=n, estimate=today, alpha=alpha, paper=recorded)
    diff = today - recorded
    if np.ptp(current) == 0 and np.ptp(baseline) == 0:  # exact: the change against the margin
        return exact_regression(diff, n, today, recorded, margin, alpha, "every seed identical",
                                "exact: no spread on either side")
    # scipy's Welch statistic, at the conservative min(n, m) - 1 degrees of freedom
    df = min(len(current), len(baseline)) - 1
    p_drop = sps.t.cdf(sps.ttest_ind(current, baseline - margin, equal_var=False).statistic, df)
    p_rise = sps.t.sf(sps.ttest_ind(current, baseline + margin, equal_var=False).statistic, df)
    se = float(np.sqrt(current.var(ddof=1) / len(current) + baseline.var(ddof=1) / len(baseline)))
    half = sps.t.ppf(1 - alpha, df) * se
    interval = SimpleNamespace(low=diff - half, high=diff + half)
    # the smallest change detected with 80% power: margin + (t(1-alpha) + t(0.8)) * se
    detectable = margin + (sps.t.ppf(1 - alpha, df) + sps.t.ppf(0.8, df)) * se
    return decided_regression(p_drop, p_rise, interval, detectable, diff, n, today, recorded, margin, alpha,
                             "Welch (min-n df)")


REGRESSION_CASES = [
    ([0.50, 0.51, 0.49, 0.505], [0.60, 0.61, 0.59, 0.605, 0.6], 0.02, 0.01),   # REGRESSED
    ([0.59, 0.60, 0.58, 0.595], [0.60, 0.61, 0.59, 0.605], 0.02, 0.01),         # NO REGRESSION (inside the margin)
    ([0.70, 0.72, 0.71], [0.60, 0.6, 0.6], 0.02, 0.01),                          # CHANGED (a rise); one side flat
    ([0.61, 0.62, 0.60, 0.615], [0.60, 0.61, 0.59, 0.605], 0.02, 0.01),         # a rise inside the margin
    ([0.5, 0.6], [0.6, 0.61, 0.62], 0.02, 0.01),                                 # too few seeds today
    ([0.5, 0.5, 0.5], [0.6, 0.6, 0.6], 0.02, 0.01),                              # no spread: exact, REGRESSED
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], 0.02, 0.01),                              # no spread: exact, NO REGRESSION
    ([0.7, 0.7, 0.7], [0.6, 0.6, 0.6], 0.02, 0.01),                              # no spread: exact, CHANGED
]


@pytest.mark.filterwarnings("ignore:Precision loss occurred")  # scipy, on the flat baseline
@pytest.mark.parametrize("current, baseline, margin, alpha", REGRESSION_CASES)
def test_regression_check_every_field(current, baseline, margin, alpha):
    same(regression_check(np.array(current), np.array(baseline), margin=margin, alpha=alpha).to_dict(),
         reference_regression(current, baseline, margin, alpha))


def reference_paired_regression(current, baseline, margin, alpha):
    """The paired check from scipy's ``ttest_rel`` on the same seeds (its exact case: every
    per-seed difference equal)."""
    current, baseline = np.asarray(current, float), np.asarray(baseline, float)
    n, today, recorded = len(current), float(current.mean()), float(baseline.mean())
    diff = today - recorded
    if np.ptp(current - baseline) == 0:
        return exact_regression(diff, n, today, recorded, margin, alpha, "every seed changed alike",
                                "exact: every seed changed alike")
    drop = sps.ttest_rel(current, baseline - margin, alternative="less")
    rise = sps.ttest_rel(current, baseline + margin, alternative="greater")
    interval = sps.ttest_rel(current, baseline).confidence_interval(1 - 2 * alpha)
    se = (current - baseline).std(ddof=1) / np.sqrt(n)
    detectable = margin + (sps.t.ppf(1 - alpha, n - 1) + sps.t.ppf(0.8, n - 1)) * se
    return decided_regression(drop.pvalue, rise.pvalue, interval, detectable, diff, n, today, recorded, margin, alpha,
                             "paired t")


PAIRED_CASES = [
    ([0.590, 0.601, 0.597, 0.600, 0.592], [0.600, 0.610, 0.605, 0.609, 0.601], 0.002, 0.01),  # REGRESSED: ~0.009 each
    ([0.598, 0.611, 0.603, 0.609, 0.600], [0.600, 0.610, 0.605, 0.609, 0.601], 0.002, 0.01),  # NO REGRESSION
    ([0.612, 0.623, 0.615, 0.622, 0.612], [0.600, 0.610, 0.605, 0.609, 0.601], 0.002, 0.01),  # CHANGED
    ([0.60, 0.61, 0.62], [0.60, 0.61, 0.62], 0.0, 0.01),                                      # the same runs: exact
    ([0.58, 0.59, 0.60], [0.60, 0.61, 0.62], 0.005, 0.01),                                    # alike drops: exact
    ([0.55, 0.65, 0.60], [0.60, 0.61, 0.62], 0.002, 0.01),                                    # noisy: undecided
]


@pytest.mark.parametrize("current, baseline, margin, alpha", PAIRED_CASES)
def test_paired_regression_check_every_field(current, baseline, margin, alpha):
    same(regression_check(np.array(current), np.array(baseline), margin=margin, alpha=alpha, paired=True).to_dict(),
         reference_paired_regression(current, baseline, margin, alpha))


def test_undecided_and_check_finite():
    same(undecided("why", seeds=2, estimate=0.3, alpha=0.01, paper=0.5).to_dict(),
         undecided_dict("why", seeds=2, estimate=0.3, alpha=0.01, paper=0.5))
    converted = check_finite([1, 0, 1], "ints")
    assert converted.dtype == np.float64 and converted.tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("effect, sd, alpha", [
    (0.01, 0.01, 0.05), (0.005, 0.004, 0.001), (0.02, 0.03, 0.00116), (0.03, 0.01, 0.05), (0.05, 0.01, 0.00116),
    (0.02, 0.01, 0.00116), (0.04, 0.01, 0.01),
])
def test_seeds_for_power_at_its_limit(effect, sd, alpha):
    exact = needed_by_loop(effect, sd, alpha)
    assert seeds_for_power(effect, sd, alpha, max_seeds=exact) == exact
    if exact > MIN_SEEDS:
        assert seeds_for_power(effect, sd, alpha, max_seeds=exact - 1) is None


@settings(max_examples=40)
@given(effect=st.floats(0.001, 0.05), sd=st.floats(0.002, 0.03), alpha=st.sampled_from([0.05, 0.00116]))
def test_seeds_for_power_matches_the_loop_everywhere(effect, sd, alpha):
    assert seeds_for_power(effect, sd, alpha) == needed_by_loop(effect, sd, alpha)


@pytest.mark.parametrize("n", [3, 4, 6, 10])
@pytest.mark.parametrize("effect, sd, alpha", [(0.01, 0.01, 0.05), (0.03, 0.01, 0.00116)])
def test_paired_power_is_the_noncentral_t_tail(n, effect, sd, alpha):
    expected = sps.nct.sf(sps.t.ppf(1 - alpha, n - 1), n - 1, effect / sd * math.sqrt(n))
    assert float(paired_power(effect, sd, n, alpha)) == pytest.approx(expected, rel=1e-12)
    assert float(paired_power(-effect, sd, n, alpha)) == pytest.approx(expected, rel=1e-12)


def test_paired_power_by_simulation():
    """Power 0.5-ish at 5 seeds, checked against 4,000 simulated paired t-tests."""
    rng = np.random.default_rng(7)
    d = rng.normal(0.01, 0.01, (4000, 5))
    p = sps.ttest_1samp(d, 0, axis=1, alternative="greater").pvalue
    assert np.mean(p < 0.05) == pytest.approx(float(paired_power(0.01, 0.01, 5, 0.05)), abs=0.025)


@pytest.mark.parametrize("direction", [0, 2, -2])
def test_direction_is_plus_or_minus_one(direction):
    with pytest.raises(ValueError, match=rf"^direction must be \+1 \(T > C\) or -1 \(T < C\), got {direction}$"):
        paired_claim(per_image([0.5] * 3), per_image([0.5] * 3), direction=direction, alpha=0.05)
