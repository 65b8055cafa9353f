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
- ``regression_check``: today's per-seed values against a recorded baseline: REGRESSED only
  when the drop exceeds the practical margin significantly (one-sided Welch).

Fewer than ``MIN_SEEDS`` seeds, or per-seed values with no spread at all (a degenerate
configuration), never give a pass or a fail: INCONCLUSIVE with the reason. Non-finite
scores are an error (``NonFiniteScoreError``), never silently a verdict.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as st

__all__ = [
    "Verdict",
    "ClaimStats",
    "NonFiniteScoreError",
    "MIN_SEEDS",
    "MAX_SEEDS_FOR_POWER",
    "check_finite",
    "undecided",
    "paired_claim",
    "best_claim",
    "equivalence_claim",
    "regression_check",
    "seeds_for_power",
    "holm",
]

MIN_SEEDS = 3
MAX_SEEDS_FOR_POWER = 1000


class Verdict(str, enum.Enum):
    REPRODUCED = "REPRODUCED"
    CONTRADICTED = "CONTRADICTED"
    INCONCLUSIVE = "INCONCLUSIVE"
    REGRESSED = "REGRESSED"
    NO_REGRESSION = "NO REGRESSION"
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


def check_finite(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as floats, or ``NonFiniteScoreError`` naming ``what`` and the first bad entry."""
    values = np.asarray(values, float)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        position = tuple(int(i) for i in bad[0])
        raise NonFiniteScoreError(f"{what}: non-finite score {values[position]} at index {position}")
    return values


def undecided(reason: str, *, seeds: int, estimate: float, alpha: float, paper: float | None = None) -> ClaimStats:
    """An INCONCLUSIVE verdict that no test decided (missing runs, a mismatched baseline)."""
    nan = float("nan")
    return ClaimStats(verdict=Verdict.INCONCLUSIVE, seeds=seeds, estimate=estimate, ci_low=nan, ci_high=nan,
                      p_value=nan, alpha=alpha, paper=paper, note=reason)


def _too_few(n: int) -> str:
    return f"{n} seeds: at least {MIN_SEEDS} are needed to decide"


def _no_spread(values: np.ndarray) -> bool:
    return bool(np.ptp(values) <= 1e-12)


NO_SPREAD = "identical values on every seed: a degenerate configuration, no spread to test against"


def _t_tail(t: float, df: float, alternative: str) -> float:
    """P(T > t) for ``greater``, P(T < t) for ``less``, T ~ Student(df)."""
    return float(special.stdtr(df, -t if alternative == "greater" else t))


def _one_sided_t(values: np.ndarray, null: float, alternative: str) -> float:
    """p of a one-sample t-test of mean(values) against ``null``; 1.0 without spread (no evidence)."""
    values = np.asarray(values, float)
    if len(values) < 2 or _no_spread(values):
        return 1.0
    # The t statistic and Student's t tail directly: scipy's ttest_1samp gives the same p-value
    # with ~50x the overhead, which the simulations of the rules' error rates feel.
    n = len(values)
    t = (values.mean() - null) / (values.std(ddof=1) / math.sqrt(n))
    return _t_tail(t, n - 1, alternative)


def _one_sided_t_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``rows`` (samples along axis 1): the one-sample t-test's p for mean > 0 and
    for mean < 0 (``_one_sided_t`` for many samples at once); 1.0 each way without spread."""
    n = rows.shape[1]
    if n < 2:
        ones = np.ones(len(rows))
        return ones, ones.copy()
    sd = rows.std(axis=1, ddof=1)
    flat = np.ptp(rows, axis=1) <= 1e-12
    t = rows.mean(axis=1) / np.where(flat, 1.0, sd / math.sqrt(n))
    greater, less = special.stdtr(n - 1, -t), special.stdtr(n - 1, t)
    return np.where(flat, 1.0, greater), np.where(flat, 1.0, less)


def _t_interval(mean: float, se: float, df: float, alpha: float) -> tuple[float, float]:
    """The two-sided ``1 - 2 alpha`` t-interval, dual to one-sided tests at ``alpha``."""
    if not (df > 0 and se > 0):
        return float("nan"), float("nan")
    half = float(special.stdtrit(df, 1 - alpha)) * se
    return mean - half, mean + half


def seeds_for_power(effect: float, sd: float, alpha: float, power: float = 0.8, max_seeds: int = MAX_SEEDS_FOR_POWER) -> int | None:
    """Smallest n with a one-sided paired t-test of power >= ``power`` at ``effect``; None if > max."""
    if effect == 0:
        return None
    if sd <= 0:
        return MIN_SEEDS
    n = np.arange(MIN_SEEDS, max_seeds + 1)
    reached = st.nct.sf(st.t.ppf(1 - alpha, n - 1), n - 1, abs(effect) / sd * np.sqrt(n)) >= power
    return int(n[np.argmax(reached)]) if reached.any() else None


def _paired_arrays(treatment: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Per-seed mean differences of two (seeds, images) arrays of per-image scores."""
    treatment = check_finite(np.atleast_2d(treatment), "treatment scores")
    control = check_finite(np.atleast_2d(control), "control scores")
    if treatment.shape != control.shape:
        raise ValueError(f"paired runs differ in shape: {treatment.shape} vs {control.shape}")
    return treatment.mean(axis=1) - control.mean(axis=1)


def paired_claim(
    treatment: np.ndarray, control: np.ndarray, *, direction: int, alpha: float, paper_diff: float | None = None,
) -> ClaimStats:
    """``treatment``/``control``: (seeds, images) per-image scores paired by seed and image.

    ``direction`` +1 claims T > C, -1 claims T < C. REPRODUCED when the one-sided paired
    t-test in the claimed direction is significant at ``alpha``; CONTRADICTED when the one
    in the other direction is; INCONCLUSIVE otherwise, with fewer than ``MIN_SEEDS`` seeds,
    or when the per-seed differences have no spread.
    """
    per_seed = _paired_arrays(treatment, control)
    n = len(per_seed)
    claimed, other = ("greater", "less") if direction > 0 else ("less", "greater")
    sd = float(per_seed.std(ddof=1)) if n > 1 else 0.0
    p_claim, p_other = _one_sided_t(per_seed, 0.0, claimed), _one_sided_t(per_seed, 0.0, other)
    mean = float(per_seed.mean())
    ci = _t_interval(mean, sd / math.sqrt(n), n - 1, alpha)
    sign = ">" if direction > 0 else "<"
    decided_by, p_value = f"paired t, T {sign} C", p_claim
    if n < MIN_SEEDS:
        verdict, note = Verdict.INCONCLUSIVE, _too_few(n)
    elif sd <= 1e-12:
        verdict, note = Verdict.INCONCLUSIVE, NO_SPREAD
    elif p_claim < alpha:
        verdict, note = Verdict.REPRODUCED, ""
    elif p_other < alpha:
        verdict, note = Verdict.CONTRADICTED, "significant in the opposite direction"
        decided_by, p_value = f"paired t, T {'<' if direction > 0 else '>'} C", p_other
    else:
        verdict, note = Verdict.INCONCLUSIVE, "not significant in either direction"
    wins = float((per_seed > 0).sum() + 0.5 * (per_seed == 0).sum())
    needed = seeds_for_power(paper_diff, sd, alpha) if paper_diff is not None and n > 1 else None
    return ClaimStats(
        verdict=verdict, seeds=n, estimate=mean, ci_low=ci[0], ci_high=ci[1], p_value=p_value, alpha=alpha,
        paper=paper_diff, p_outperform=wins / n, seeds_needed=needed, note=note, decided_by=decided_by,
        extra={"p_claimed_direction": p_claim, "p_other_direction": p_other, "sd_per_seed": sd},
    )


def best_claim(best: np.ndarray, rivals: dict[str, np.ndarray], *, alpha: float, paper: float | None = None) -> ClaimStats:
    """"``best`` beats every rival".

    REPRODUCED when every one-sided paired test "best > rival" is significant at ``alpha``
    (an intersection-union test: no correction is needed for an "all of them" claim).
    CONTRADICTED when Holm's procedure over the rivals, at family-wise ``alpha``, finds one
    significantly better than ``best`` (testing each at ``alpha`` would contradict a true
    claim up to k times too often). The interval and P(T>C) are those against the closest rival.
    """
    if not rivals:
        raise ValueError("a best-of claim needs at least one rival")
    names = list(rivals)
    diffs = np.stack([_paired_arrays(best, rivals[name]) for name in names])  # (rivals, seeds)
    n = diffs.shape[1]
    p_claim, p_other = _one_sided_t_rows(diffs)
    adjusted = holm(p_other.tolist())
    closest_name = names[int(np.argmax(p_claim))]
    closest = paired_claim(best, rivals[closest_name], direction=+1, alpha=alpha)
    beaten_by = [name for name, p in zip(names, adjusted) if p < alpha]
    flat = [name for name, row in zip(names, diffs) if n > 1 and _no_spread(row)]
    decided_by, p_value = f"intersection-union over {len(names)} rivals (max p)", float(p_claim.max())
    if n < MIN_SEEDS:
        verdict, note = Verdict.INCONCLUSIVE, _too_few(n)
    elif flat:
        verdict, note = Verdict.INCONCLUSIVE, f"{NO_SPREAD} (against {', '.join(flat)})"
    elif beaten_by:
        verdict, note = Verdict.CONTRADICTED, f"significantly beaten by {', '.join(beaten_by)}"
        decided_by, p_value = f"Holm over {len(names)} rivals (smallest adjusted p)", min(adjusted)
    elif p_value < alpha:
        verdict, note = Verdict.REPRODUCED, ""
    else:
        verdict, note = Verdict.INCONCLUSIVE, f"closest rival: {closest_name}"
    needed = seeds_for_power(paper, closest.extra["sd_per_seed"], alpha) if paper is not None and n > 1 else None
    return ClaimStats(
        verdict=verdict, seeds=n, estimate=closest.estimate, ci_low=closest.ci_low, ci_high=closest.ci_high,
        p_value=p_value, alpha=alpha, paper=paper, p_outperform=closest.p_outperform, seeds_needed=needed,
        note=note, decided_by=decided_by, extra={"closest_rival": closest_name, "holm_adjusted": dict(zip(names, adjusted))},
    )


def _equivalence_spread(values: np.ndarray, reference: float | Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """(reference mean, standard error of mean(values) - reference, degrees of freedom).

    One reference number is one run from the same distribution as each seed: the
    difference's variance is sigma^2 (1/n + 1), sigma estimated from the n seeds (n - 1 df).
    Several reference values (a recorded baseline of m seeds): pooled two-sample variance,
    sigma^2 (1/n + 1/m) with n + m - 2 df.
    """
    n = len(values)
    reference_values = check_finite(np.atleast_1d(reference), "reference values")
    m = len(reference_values)
    if m == 1:
        sd = float(values.std(ddof=1)) if n > 1 else 0.0
        return float(reference_values[0]), sd * math.sqrt(1 / n + 1), n - 1
    pooled = ((n - 1) * values.var(ddof=1) + (m - 1) * reference_values.var(ddof=1)) / (n + m - 2) if n > 1 else 0.0
    return float(reference_values.mean()), math.sqrt(pooled * (1 / n + 1 / m)), n + m - 2


def equivalence_claim(
    values: np.ndarray, reference: float | Sequence[float] | np.ndarray, *, margin: float, alpha: float
) -> ClaimStats:
    """TOST: mean(per-seed ``values``) lies within the reference +- ``margin``.

    ``reference``: one number (a single published run, such as the paper's) or the per-seed
    values of a recorded baseline; its own run-to-run variance enters the test (see
    ``_equivalence_spread``). With d = mean(values) - reference and its standard error se:
    REPRODUCED when both (d + margin) / se and (margin - d) / se exceed t(1 - alpha, df), i.e.
    the ``1 - 2 alpha`` interval lies inside the margin; CONTRADICTED when the interval lies
    wholly outside it; INCONCLUSIVE otherwise.
    """
    values = check_finite(np.atleast_1d(values), "per-seed values")
    n = len(values)
    target, se, df = _equivalence_spread(values, reference)
    mean = float(values.mean())
    d = mean - target
    spread = n > 1 and se > 1e-12
    if spread:
        p_lower, p_upper = _t_tail((d + margin) / se, df, "greater"), _t_tail((d - margin) / se, df, "less")
        p_below, p_above = _t_tail((d + margin) / se, df, "less"), _t_tail((d - margin) / se, df, "greater")
    else:
        p_lower = p_upper = p_below = p_above = 1.0
    p_equivalent, p_outside = max(p_lower, p_upper), min(p_below, p_above)
    ci = _t_interval(mean, se, df, alpha)
    decided_by, p_value = f"TOST, margin {margin}", p_equivalent
    if n < MIN_SEEDS:
        verdict, note = Verdict.INCONCLUSIVE, _too_few(n)
    elif not spread:
        verdict, note = Verdict.INCONCLUSIVE, NO_SPREAD
    elif p_equivalent < alpha:
        verdict, note = Verdict.REPRODUCED, f"within +-{margin}"
    elif p_outside < alpha:
        verdict, note = Verdict.CONTRADICTED, f"outside +-{margin}"
        decided_by, p_value = f"outside the margin {margin} (one-sided t)", p_outside
    else:
        verdict, note = Verdict.INCONCLUSIVE, f"neither shown within nor outside +-{margin}"
    return ClaimStats(
        verdict=verdict, seeds=n, estimate=mean, ci_low=ci[0], ci_high=ci[1], p_value=p_value, alpha=alpha,
        paper=target, note=note, decided_by=decided_by,
        extra={"margin": margin, "p_equivalent": p_equivalent, "p_outside": p_outside, "se": se, "df": df},
    )


def regression_check(current: np.ndarray, baseline: np.ndarray, *, margin: float, alpha: float) -> ClaimStats:
    """REGRESSED when mean(baseline) - mean(current) > ``margin`` significantly (one-sided Welch).

    The test shifts the baseline down by the margin, so noise and drops inside the margin
    never fail; fewer than ``MIN_SEEDS`` seeds on either side, or no spread on both sides,
    is INCONCLUSIVE. ``estimate`` is today's mean and ``paper`` the baseline's; the interval
    is the Welch ``1 - 2 alpha`` interval of current - baseline, added to the baseline's mean
    (REGRESSED exactly when it ends below baseline - margin).
    """
    current = check_finite(np.atleast_1d(current), "current per-seed values")
    baseline = check_finite(np.atleast_1d(baseline), "baseline per-seed values")
    diff = float(current.mean() - baseline.mean())
    n = min(len(current), len(baseline))
    v1 = current.var(ddof=1) / len(current) if len(current) > 1 else 0.0
    v2 = baseline.var(ddof=1) / len(baseline) if len(baseline) > 1 else 0.0
    se = math.sqrt(v1 + v2)
    spread = n > 1 and se > 1e-12
    if spread:
        df = (v1 + v2) ** 2 / (v1**2 / (len(current) - 1) + v2**2 / (len(baseline) - 1))
        p = _t_tail((diff + margin) / se, df, "less")
        low, high = _t_interval(diff, se, df, alpha)
        ci = (float(baseline.mean()) + low, float(baseline.mean()) + high)
    else:
        p, ci = 1.0, (float("nan"), float("nan"))
    if n < MIN_SEEDS:
        verdict, note = Verdict.INCONCLUSIVE, _too_few(n)
    elif not spread:
        verdict, note = Verdict.INCONCLUSIVE, NO_SPREAD
    elif p < alpha:
        verdict, note = Verdict.REGRESSED, f"drop {-diff:.4f} > margin {margin}"
    else:
        verdict, note = Verdict.NO_REGRESSION, f"drop {-diff:+.4f} (margin {margin})"
    return ClaimStats(
        verdict=verdict, seeds=n, estimate=float(current.mean()), ci_low=ci[0], ci_high=ci[1], p_value=p, alpha=alpha,
        paper=float(baseline.mean()), note=note, decided_by=f"Welch, drop > {margin}",
        extra={"margin": margin, "difference": diff},
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()
