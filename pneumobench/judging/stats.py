"""Statistical rules that turn per-seed scores into verdicts.

Runs of two configurations are paired by seed (common random numbers: same data order and
flips); per-image scores line up within a seed, and per-seed means are the unit of
inference. Every rule reports the p-value of the test that took its decision and one
interval at the decision's level: a one-sided test at ``alpha`` is dual to the two-sided
``1 - 2 alpha`` t-interval, so REPRODUCED, CONTRADICTED and the interval always agree.

- ``paired_claim``: "T improves (or worsens) m over C": one-sided paired t-tests on the
  per-seed differences, one per direction.
- ``best_claim``: "T is the best of a set": REPRODUCED by an intersection-union test
  (T beats every rival at ``alpha``); CONTRADICTED when Holm's procedure over the rivals
  finds one significantly better.
- ``equivalence_claim``: "T reaches a reference value": TOST with a margin, the reference's
  own run-to-run variance included (it is one run, or the mean of a few).
- ``regression_check``: today's per-seed values against a recorded baseline: REGRESSED when
  the drop exceeds the practical margin significantly, CHANGED when a rise does (one-sided
  Welch each way).

Fewer than ``MIN_SEEDS`` seeds, or per-seed values with no spread at all (a degenerate
configuration), never give a pass or a fail: INCONCLUSIVE with the reason. Non-finite
scores are an error (``NonFiniteScoreError``), never silently a verdict.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as st

__all__ = [
    "MAX_SEEDS_FOR_POWER",
    "MIN_SEEDS",
    "ClaimStats",
    "NonFiniteScoreError",
    "Verdict",
    "accuracy_variance_floor",
    "best_claim",
    "check_finite",
    "detectable_change",
    "equivalence_claim",
    "holm",
    "one_sample_t_tests",
    "paired_claim",
    "paired_power",
    "regression_check",
    "seeds_for_power",
    "sized_margin",
    "two_sample_se",
    "undecided",
]

MIN_SEEDS = 3
MAX_SEEDS_FOR_POWER = 1000


class Verdict(str, enum.Enum):
    REPRODUCED = "REPRODUCED"
    CONTRADICTED = "CONTRADICTED"
    INCONCLUSIVE = "INCONCLUSIVE"
    REGRESSED = "REGRESSED"
    NO_REGRESSION = "NO REGRESSION"
    CHANGED = "CHANGED"  # a regression check's significant rise beyond the margin
    NOT_RUN = "NOT RUN"  # a report's claim whose runs are missing from the store


class NonFiniteScoreError(ValueError):
    """A score handed to a verdict rule is NaN or infinite."""


@dataclass
class ClaimStats:
    """The numbers behind one verdict.

    ``p_value`` is the p of the test that decided (for CONTRADICTED, the opposite-direction
    or outside-the-margin test), named in ``decided_by``; ``ci_low``/``ci_high`` are the
    ``1 - 2 alpha`` interval that test is dual to (NaN where none can be computed).
    """

    verdict: Verdict
    seeds: int
    estimate: float  # mean difference (T - C), or the mean value for an absolute claim
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    paper: float | None = None  # the paper's difference or value, or the reference value
    p_outperform: float | None = None
    seeds_needed: int | None = None
    note: str = ""
    decided_by: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ci_level(self) -> float:
        """The interval's two-sided coverage: 1 - 2 alpha."""
        return 1 - 2 * self.alpha

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["ci_level"] = self.ci_level
        return data


def check_finite(values: np.ndarray | Sequence[float], what: str) -> np.ndarray:
    """``values`` as floats, or ``NonFiniteScoreError`` naming ``what`` and the first bad entry."""
    values = np.asarray(values, float)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        position = tuple(int(i) for i in bad[0])
        raise NonFiniteScoreError(f"{what}: non-finite score {values[position]} at index {position}")
    return values


def undecided(reason: str, *, seeds: int, estimate: float, alpha: float, paper: float | None = None) -> ClaimStats:
    """An INCONCLUSIVE verdict that no test decided (too few seeds, no spread, a mismatched baseline)."""
    return ClaimStats(
        verdict=Verdict.INCONCLUSIVE,
        seeds=seeds,
        estimate=estimate,
        ci_low=math.nan,
        ci_high=math.nan,
        p_value=math.nan,
        alpha=alpha,
        paper=paper,
        note=reason,
    )


def _too_few(n: int) -> str:
    return f"{n} seeds: at least {MIN_SEEDS} are needed to decide"


def _no_spread(values: np.ndarray) -> bool:
    return bool(np.ptp(values) <= SPREAD_FLOOR)


SPREAD_FLOOR = 1e-12  # per-seed values closer than this are identical
NO_SPREAD = "identical values on every seed: a degenerate configuration, no spread to test against"


def _upper_tail(t: Any, df: float) -> Any:
    """P(T > t), T ~ Student(df)."""
    return special.stdtr(df, -t)


def _lower_tail(t: Any, df: float) -> Any:
    """P(T < t), T ~ Student(df)."""
    return special.stdtr(df, t)


def one_sample_t_tests(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row (samples along axis 1, each with spread): the one-sample t-test's p for
    mean > 0 and for mean < 0. The statistic and Student's tail directly: scipy's
    ttest_1samp gives the same p with ~50x the overhead, which the simulations feel."""
    n = rows.shape[1]
    t = rows.mean(axis=1) / (rows.std(axis=1, ddof=1) / math.sqrt(n))
    return _upper_tail(t, n - 1), _lower_tail(t, n - 1)


def _t_interval(mean: float, se: float, df: float, alpha: float) -> tuple[float, float]:
    """The two-sided ``1 - 2 alpha`` t-interval, dual to one-sided tests at ``alpha``."""
    half = float(special.stdtrit(df, 1 - alpha)) * se
    return mean - half, mean + half


def paired_power(effect: float, sd: float, seeds: Any, alpha: float) -> Any:
    """Exact power of the one-sided paired t-test at a true ``effect`` with per-seed SD ``sd``
    (noncentral t with noncentrality effect / sd * sqrt(n)); ``seeds`` may be an array."""
    seeds = np.asarray(seeds)
    return st.nct.sf(st.t.ppf(1 - alpha, seeds - 1), seeds - 1, abs(effect) / sd * np.sqrt(seeds))


def seeds_for_power(
    effect: float, sd: float, alpha: float, power: float = 0.8, max_seeds: int = MAX_SEEDS_FOR_POWER
) -> int | None:
    """Smallest n with a one-sided paired t-test of power >= ``power`` at ``effect``; None if > max."""
    if sd <= 0:
        return MIN_SEEDS
    n = np.arange(MIN_SEEDS, max_seeds + 1)
    reached = paired_power(effect, sd, n, alpha) >= power
    return int(n[np.argmax(reached)]) if reached.any() else None


def _paired_arrays(treatment: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Per-seed mean differences of two (seeds, images) arrays of per-image scores."""
    treatment = check_finite(np.atleast_2d(treatment), "treatment scores")
    control = check_finite(np.atleast_2d(control), "control scores")
    if treatment.shape != control.shape:
        raise ValueError(f"paired runs differ in shape: {treatment.shape} vs {control.shape}")
    return treatment.mean(axis=1) - control.mean(axis=1)


def paired_claim(
    treatment: np.ndarray,
    control: np.ndarray,
    *,
    direction: int,
    alpha: float,
    paper_diff: float | None = None,
) -> ClaimStats:
    """``treatment``/``control``: (seeds, images) per-image scores paired by seed and image.

    ``direction`` +1 claims T > C, -1 claims T < C. REPRODUCED when the one-sided paired
    t-test in the claimed direction is significant at ``alpha``; CONTRADICTED when the one
    in the other direction is; INCONCLUSIVE otherwise, with fewer than ``MIN_SEEDS`` seeds,
    or when the per-seed differences have no spread.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (T > C) or -1 (T < C), got {direction!r}")
    per_seed = _paired_arrays(treatment, control)
    n, mean = len(per_seed), float(per_seed.mean())
    if n < MIN_SEEDS:
        return undecided(_too_few(n), seeds=n, estimate=mean, alpha=alpha, paper=paper_diff)
    if _no_spread(per_seed):
        return undecided(NO_SPREAD, seeds=n, estimate=mean, alpha=alpha, paper=paper_diff)
    greater, less = one_sample_t_tests(per_seed[None, :])
    p_claim, p_other = (float(greater[0]), float(less[0])) if direction > 0 else (float(less[0]), float(greater[0]))
    sd = float(per_seed.std(ddof=1))
    claimed, opposite = ("T > C", "T < C") if direction > 0 else ("T < C", "T > C")
    decided_by, p_value = f"paired t, {claimed}", p_claim
    if p_claim < alpha:
        verdict, note = Verdict.REPRODUCED, ""
    elif p_other < alpha:
        verdict, note = Verdict.CONTRADICTED, "significant in the opposite direction"
        decided_by, p_value = f"paired t, {opposite}", p_other
    else:
        verdict, note = Verdict.INCONCLUSIVE, "not significant in either direction"
    ci = _t_interval(mean, sd / math.sqrt(n), n - 1, alpha)
    wins = float((per_seed > 0).sum() + 0.5 * (per_seed == 0).sum())
    return ClaimStats(
        verdict=verdict,
        seeds=n,
        estimate=mean,
        ci_low=ci[0],
        ci_high=ci[1],
        p_value=p_value,
        alpha=alpha,
        paper=paper_diff,
        p_outperform=wins / n,
        note=note,
        decided_by=decided_by,
        seeds_needed=seeds_for_power(paper_diff, sd, alpha) if paper_diff is not None else None,
        extra={"p_claimed_direction": p_claim, "p_other_direction": p_other, "sd_per_seed": sd},
    )


def best_claim(
    best: np.ndarray, rivals: dict[str, np.ndarray], *, alpha: float, paper: float | None = None
) -> ClaimStats:
    """ "``best`` beats every rival".

    REPRODUCED when every one-sided paired test "best > rival" is significant at ``alpha``
    (an intersection-union test: no correction is needed for an "all of them" claim).
    CONTRADICTED when Holm's procedure over the rivals, at family-wise ``alpha``, finds one
    significantly better than ``best`` (testing each at ``alpha`` would contradict a true
    claim up to k times too often). The estimate is the smallest mean lead over a rival; its
    interval is dual to both decisions: the lower bound the smallest rival's at ``alpha`` (above 0
    exactly when REPRODUCED), the upper bound the smallest at ``alpha / k`` (below 0 exactly when
    Holm's first step, hence Holm, rejects: CONTRADICTED). P(T>C) is against the closest rival.
    """
    if not rivals:
        raise ValueError("a best-of claim needs at least one rival")
    names = list(rivals)
    diffs = np.stack([_paired_arrays(best, rivals[name]) for name in names])  # (rivals, seeds)
    n = diffs.shape[1]
    flat = [name for name, row in zip(names, diffs) if _no_spread(row)]
    if n < MIN_SEEDS or flat:
        reason = _too_few(n) if n < MIN_SEEDS else f"{NO_SPREAD} (against {', '.join(flat)})"
        return undecided(reason, seeds=n, estimate=float(diffs.mean(axis=1).min()), alpha=alpha, paper=paper)
    p_claim, p_other = one_sample_t_tests(diffs)
    adjusted = holm(p_other.tolist())
    closest_name = names[int(np.argmax(p_claim))]
    closest = paired_claim(best, rivals[closest_name], direction=+1, alpha=alpha, paper_diff=paper)
    beaten_by = [name for name, p in zip(names, adjusted) if p < alpha]
    decided_by, p_value = f"intersection-union over {len(names)} rivals (max p)", closest.extra["p_claimed_direction"]
    if beaten_by:
        verdict, note = Verdict.CONTRADICTED, f"significantly beaten by {', '.join(beaten_by)}"
        decided_by, p_value = f"Holm over {len(names)} rivals (smallest adjusted p)", min(adjusted)
    elif p_value < alpha:
        verdict, note = Verdict.REPRODUCED, ""
    else:
        verdict, note = Verdict.INCONCLUSIVE, f"closest rival: {closest_name}"
    means, se = diffs.mean(axis=1), diffs.std(axis=1, ddof=1) / math.sqrt(n)
    lower = means - float(special.stdtrit(n - 1, 1 - alpha)) * se
    upper = means + float(special.stdtrit(n - 1, 1 - alpha / len(names))) * se
    return replace(
        closest,
        verdict=verdict,
        estimate=float(means.min()),
        ci_low=float(lower.min()),
        ci_high=float(upper.min()),
        p_value=p_value,
        note=note,
        decided_by=decided_by,
        extra={"closest_rival": closest_name, "holm_adjusted": dict(zip(names, adjusted))},
    )


def _reference_values(reference: float | Sequence[float] | np.ndarray) -> np.ndarray:
    return check_finite(np.atleast_1d(reference), "reference values")


def _equivalence_se(values: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(standard error of mean(values) - mean(reference), degrees of freedom), n >= 2.

    One reference number is one run from the same distribution as each seed: the
    difference's variance is sigma^2 (1/n + 1), sigma estimated from the n seeds (n - 1 df).
    Several reference values (a recorded baseline of m seeds): Welch's standard error, each
    side with its own variance (a record made elsewhere may have another spread), at the
    conservative ``min(n, m) - 1`` degrees of freedom (``two_sample_se``).
    """
    n, m = len(values), len(reference)
    if m == 1:
        return float(values.std(ddof=1)) * math.sqrt(1 / n + 1), n - 1
    return two_sample_se(values, reference)


def two_sample_se(first: np.ndarray, second: np.ndarray, variance_floor: float = 0.0) -> tuple[float, float]:
    """Welch's standard error of mean(first) - mean(second), each sample's variance at least
    ``variance_floor``, and ``min(n, m) - 1`` degrees of freedom.

    Welch-Satterthwaite's degrees of freedom are liberal at 3 to 5 seeds when the sizes or
    spreads differ (a nominal 0.01 test rejects 0.016-0.018 of the time at its least
    favourable case, ``calibration.misbehaving_error_rates``); the smaller sample's n - 1 makes
    the test conservative at every ratio of variances (Hsu's rule).
    """
    v1 = max(float(first.var(ddof=1)), variance_floor) / len(first)
    v2 = max(float(second.var(ddof=1)), variance_floor) / len(second)
    return math.sqrt(v1 + v2), min(len(first), len(second)) - 1


def equivalence_claim(
    values: np.ndarray, reference: float | Sequence[float] | np.ndarray, *, margin: float, alpha: float
) -> ClaimStats:
    """TOST: mean(per-seed ``values``) lies within the reference +- ``margin``.

    ``reference``: one number (a single published run, such as the paper's) or the per-seed
    values of a recorded baseline; its own run-to-run variance enters the test (see
    ``_equivalence_se``). With d = mean(values) - mean(reference) and its standard error se:
    REPRODUCED when both (d + margin) / se and (margin - d) / se exceed t(1 - alpha, df), i.e.
    the ``1 - 2 alpha`` interval lies inside the margin; CONTRADICTED when the interval lies
    wholly outside it; INCONCLUSIVE otherwise.
    """
    values = check_finite(np.atleast_1d(values), "per-seed values")
    reference_values = _reference_values(reference)
    n, mean, target = len(values), float(values.mean()), float(reference_values.mean())
    if n < MIN_SEEDS:
        return undecided(_too_few(n), seeds=n, estimate=mean, alpha=alpha, paper=target)
    se, df = _equivalence_se(values, reference_values)
    if se <= SPREAD_FLOOR:
        return undecided(NO_SPREAD, seeds=n, estimate=mean, alpha=alpha, paper=target)
    low, high = (mean - target + margin) / se, (mean - target - margin) / se
    p_equivalent = max(float(_upper_tail(low, df)), float(_lower_tail(high, df)))
    p_outside = min(float(_lower_tail(low, df)), float(_upper_tail(high, df)))
    decided_by, p_value = f"TOST, margin {margin}", p_equivalent
    if p_equivalent < alpha:
        verdict, note = Verdict.REPRODUCED, f"within +-{margin}"
    elif p_outside < alpha:
        verdict, note = Verdict.CONTRADICTED, f"outside +-{margin}"
        decided_by, p_value = f"outside the margin {margin} (one-sided t)", p_outside
    else:
        verdict, note = Verdict.INCONCLUSIVE, f"neither shown within nor outside +-{margin}"
    ci = _t_interval(mean, se, df, alpha)
    return ClaimStats(
        verdict=verdict,
        seeds=n,
        estimate=mean,
        ci_low=ci[0],
        ci_high=ci[1],
        p_value=p_value,
        alpha=alpha,
        paper=target,
        note=note,
        decided_by=decided_by,
        extra={"margin": margin, "p_equivalent": p_equivalent, "p_outside": p_outside, "se": se, "df": df},
    )


def regression_check(
    current: np.ndarray,
    baseline: np.ndarray,
    *,
    margin: float,
    alpha: float,
    paired: bool = False,
    images: int | None = None,
) -> ClaimStats:
    """Today's per-seed values against the recorded ones, in both directions.

    REGRESSED when mean(baseline) - mean(current) > ``margin`` significantly; CHANGED when
    mean(current) - mean(baseline) > ``margin`` significantly (a leak, a metric bug, or an
    improvement to re-record); each is a one-sided t-test at ``alpha`` against the shifted
    baseline, so noise and changes inside the margin never fail. ``paired``: ``current[i]`` and
    ``baseline[i]`` are runs of the same seed (same initialisation, same batches), so the test
    is on the per-seed differences, which carry only what changed between the two runs (none on
    the same code and machine, cross-machine noise on another); otherwise Welch, unpaired (other
    seeds, as the A/A control; at ``min(n, m) - 1`` degrees of freedom, which holds the level at
    3 to 5 seeds). Fewer than ``MIN_SEEDS`` seeds on either side is INCONCLUSIVE. ``images``
    (accuracy): the validation images per run; each side's per-seed variance (paired: the
    differences') is then at least ``accuracy_variance_floor``, since an accuracy saturated at
    1.000 on a few seeds says nothing of its noise. Otherwise, with no spread (Welch: on either
    side; paired: in the differences) there is no noise to test against and the comparison is
    exact: the change itself against the margin.
    ``estimate`` is today's mean and ``paper`` the baseline's; the interval is the ``1 - 2
    alpha`` interval of current - baseline added to the baseline's mean (REGRESSED exactly when
    it ends below baseline - margin, CHANGED exactly when it starts above baseline + margin).
    ``extra["detectable_change"]``: the smallest change either way that the check detects
    with 80% power at these seeds and SDs.
    """
    current = check_finite(np.atleast_1d(current), "current per-seed values")
    baseline = check_finite(np.atleast_1d(baseline), "baseline per-seed values")
    if paired and len(current) != len(baseline):
        raise ValueError(
            f"a paired regression check needs one recorded run per seed ({len(current)} vs {len(baseline)} values)"
        )
    n, today, recorded = min(len(current), len(baseline)), float(current.mean()), float(baseline.mean())
    if n < MIN_SEEDS:
        return undecided(_too_few(n), seeds=n, estimate=today, alpha=alpha, paper=recorded)
    diff = today - recorded
    floor = 0.0 if images is None else accuracy_variance_floor(float(np.r_[current, baseline].mean()), images)
    se, df, design = _paired_se(current - baseline, floor) if paired else _welch_se(current, baseline, floor)
    if se <= SPREAD_FLOOR:
        return _exact_change(diff, n, today, recorded, margin=margin, alpha=alpha, paired=paired)
    return _regression_verdict(diff, se, df, design, n, today, recorded, margin=margin, alpha=alpha)


def _regression_verdict(
    diff: float,
    se: float,
    df: float,
    design: str,
    n: int,
    today: float,
    recorded: float,
    *,
    margin: float,
    alpha: float,
) -> ClaimStats:
    """REGRESSED, CHANGED or NO REGRESSION from the change ``diff`` and its standard error."""
    p_drop = float(_lower_tail((diff + margin) / se, df))
    p_rise = float(_upper_tail((diff - margin) / se, df))
    detectable = detectable_change(se, df, margin=margin, alpha=alpha)
    extra = {"margin": margin, "difference": diff, "detectable_change": detectable}
    low, high = _t_interval(diff, se, df, alpha)
    interval: dict[str, Any] = {
        "ci_low": recorded + low,
        "ci_high": recorded + high,
        "alpha": alpha,
        "paper": recorded,
        "extra": extra,
    }
    if p_drop < alpha:
        return ClaimStats(
            Verdict.REGRESSED,
            n,
            today,
            p_value=p_drop,
            note=f"drop {-diff:.4f} > margin {margin}",
            decided_by=f"{design}, drop > {margin}",
            **interval,
        )
    if p_rise < alpha:
        return ClaimStats(
            Verdict.CHANGED,
            n,
            today,
            p_value=p_rise,
            note=f"rise {diff:.4f} > margin {margin}: a leak, a metric bug, or an improvement to re-record",
            decided_by=f"{design}, rise > {margin}",
            **interval,
        )
    return ClaimStats(
        Verdict.NO_REGRESSION,
        n,
        today,
        p_value=min(p_drop, p_rise),
        note=f"change {diff:+.4f} (margin {margin}; detects {detectable:.3f} either way)",
        decided_by=f"{design}, change > {margin}",
        **interval,
    )


def _paired_se(differences: np.ndarray, variance_floor: float = 0.0) -> tuple[float, float, str]:
    """The standard error (the differences' variance at least ``variance_floor``) and degrees of
    freedom of the mean per-seed difference."""
    variance = max(float(differences.var(ddof=1)), variance_floor)
    return math.sqrt(variance / len(differences)), float(len(differences) - 1), "paired t"


def _welch_se(current: np.ndarray, baseline: np.ndarray, variance_floor: float = 0.0) -> tuple[float, float, str]:
    """Welch's standard error of the difference of means, at the conservative degrees of freedom."""
    se, df = two_sample_se(current, baseline, variance_floor)
    return se, df, "Welch (min-n df)"


def accuracy_variance_floor(accuracy: float, images: int) -> float:
    """The binomial variance of an accuracy over ``images`` validation images, at the accuracy
    shrunk half an image toward 1/2: what a run's accuracy varies by at the least, so that a
    record saturated at 1.000 (no spread over its seeds) is not taken for a noiseless one."""
    q = (accuracy * images + 0.5) / (images + 1)
    return q * (1 - q) / images


def _exact_change(
    diff: float, n: int, today: float, recorded: float, *, margin: float, alpha: float, paired: bool
) -> ClaimStats:
    """The regression check without noise: every seed gave the same value on both sides, or
    (paired) every seed changed by the same amount."""
    alike = "every seed changed alike" if paired else "every seed identical"
    exact: dict[str, Any] = {
        "seeds": n,
        "estimate": today,
        "ci_low": today,
        "ci_high": today,
        "alpha": alpha,
        "paper": recorded,
        "decided_by": "exact: every seed changed alike" if paired else "exact: no spread on either side",
        "extra": {"margin": margin, "difference": diff, "detectable_change": margin},
    }
    if diff < -margin:
        return ClaimStats(Verdict.REGRESSED, p_value=0.0, note=f"drop {-diff:.4f} > margin {margin}", **exact)
    if diff > margin:
        return ClaimStats(
            Verdict.CHANGED,
            p_value=0.0,
            note=f"rise {diff:.4f} > margin {margin}: a leak, a metric bug, or an improvement to re-record",
            **exact,
        )
    return ClaimStats(
        Verdict.NO_REGRESSION,
        p_value=1.0,
        note=f"change {diff:+.4f} (margin {margin}; {alike})",
        **exact,
    )


def detectable_change(se: float, df: float, *, margin: float, alpha: float, power: float = 0.8) -> float:
    """The smallest true change (beyond zero) that a one-sided Welch test against ``margin``
    detects with probability ``power``: margin + (t(1 - alpha) + t(power)) * se."""
    return margin + float(st.t.ppf(1 - alpha, df) + st.t.ppf(power, df)) * se


def sized_margin(protected: float, sd: float, seeds: int, *, alpha: float, power: float = 0.8) -> float:
    """The largest margin with which the paired regression check over ``seeds`` finds a drop of
    ``protected`` with probability ``power`` when each run varies between seeds by ``sd`` and
    today's runs are decorrelated from the recorded ones (the differences' SD is sqrt(2) sd):
    ``protected`` less ``detectable_change`` at no margin. Negative: no margin is small enough."""
    se = math.sqrt(2) * sd / math.sqrt(seeds)
    return protected - detectable_change(se, seeds - 1, margin=0.0, alpha=alpha, power=power)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()
