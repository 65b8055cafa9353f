"""Statistical rules that turn runs into verdicts.

Runs of two configurations are paired by seed (common random numbers: same data order and
flips). Per-image scores line up within a seed, per-seed means are the unit of inference.

- ``paired_claim``: "T improves (or worsens) m over C": one-sided paired t-test on the
  per-seed differences, a bootstrap CI (seeds, then images within seeds), P(T>C) across
  seeds, and the seeds needed for 80% power at the paper's effect size.
- ``best_claim``: "T is the best of a set": T against every rival (intersection-union).
- ``equivalence_claim``: "T reaches a value": TOST with a stated margin.
- ``regression_check``: today's per-seed values against a recorded baseline: REGRESSED only
  when the drop exceeds the practical margin significantly (one-sided Welch at alpha).

Fewer than ``MIN_SEEDS`` seeds never give a pass or a fail: INCONCLUSIVE.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as st

__all__ = [
    "Verdict",
    "ClaimStats",
    "MIN_SEEDS",
    "paired_claim",
    "best_claim",
    "equivalence_claim",
    "regression_check",
    "seeds_for_power",
    "holm",
]

MIN_SEEDS = 3
BOOTSTRAP_SAMPLES = 2000


class Verdict(str, enum.Enum):
    REPRODUCED = "REPRODUCED"
    CONTRADICTED = "CONTRADICTED"
    INCONCLUSIVE = "INCONCLUSIVE"
    REGRESSED = "REGRESSED"
    NO_REGRESSION = "NO REGRESSION"
    NOT_RUN = "NOT RUN"  # a report's claim whose runs are missing from the store


@dataclass
class ClaimStats:
    """The numbers behind one verdict (means and CI over seeds; p one-sided)."""

    verdict: Verdict
    seeds: int
    estimate: float  # mean difference (T - C), or the mean value for an absolute claim
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    paper: float | None = None  # the paper's difference or value
    p_outperform: float | None = None
    seeds_needed: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        return data


def _too_few(n: int) -> str:
    return f"{n} seeds: at least {MIN_SEEDS} are needed to decide"


def _one_sided_t(values: np.ndarray, null: float, alternative: str) -> float:
    """p of a one-sample t-test of mean(values) vs ``null``; exact ties handled (sd = 0)."""
    values = np.asarray(values, float)
    if np.allclose(values, values[0], rtol=0, atol=1e-12):
        mean = float(values[0])
        if alternative == "greater":
            return 0.0 if mean > null else 1.0
        return 0.0 if mean < null else 1.0
    # The t statistic and Student's t tail directly: scipy's ttest_1samp gives the same p-value
    # with ~50x the overhead, which the simulations of the rule's error rates feel.
    n = len(values)
    t = (values.mean() - null) / (values.std(ddof=1) / math.sqrt(n))
    return float(special.stdtr(n - 1, -t if alternative == "greater" else t))


def _bootstrap_diff_ci(treatment: np.ndarray, control: np.ndarray, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean difference: resample seeds, then images (paired) within seeds."""
    n_seeds, n_images = treatment.shape
    diffs = treatment - control  # (seeds, images), paired image by image
    means = []
    for start in range(0, BOOTSTRAP_SAMPLES, 100):  # chunks bound the memory of the index arrays
        chunk = min(100, BOOTSTRAP_SAMPLES - start)
        seed_idx = rng.integers(0, n_seeds, size=(chunk, n_seeds))
        image_idx = rng.integers(0, n_images, size=(chunk, n_seeds, n_images))
        means.append(diffs[seed_idx[..., None], image_idx].mean(axis=(1, 2)))
    samples = np.concatenate(means)
    tail = (1 - level) / 2
    return float(np.quantile(samples, tail)), float(np.quantile(samples, 1 - tail))


MAX_SEEDS_FOR_POWER = 1000


def seeds_for_power(effect: float, sd: float, alpha: float, power: float = 0.8, max_seeds: int = MAX_SEEDS_FOR_POWER) -> int | None:
    """Smallest n with a one-sided paired t-test of power >= ``power`` at ``effect``; None if > max."""
    if effect == 0:
        return None
    if sd <= 0:
        return MIN_SEEDS
    n = np.arange(MIN_SEEDS, max_seeds + 1)
    reached = st.nct.sf(st.t.ppf(1 - alpha, n - 1), n - 1, abs(effect) / sd * np.sqrt(n)) >= power
    return int(n[np.argmax(reached)]) if reached.any() else None


def paired_claim(
    treatment: np.ndarray,
    control: np.ndarray,
    *,
    direction: int,
    alpha: float,
    paper_diff: float | None = None,
    seed: int = 0,
    bootstrap: bool = True,
) -> ClaimStats:
    """``treatment``/``control``: (seeds, images) per-image scores paired by seed and image.

    ``direction`` +1 claims T > C, -1 claims T < C. REPRODUCED when the one-sided paired
    t-test in the claimed direction is significant at ``alpha``; CONTRADICTED when the one
    in the other direction is; INCONCLUSIVE otherwise or with fewer than ``MIN_SEEDS`` seeds.
    ``bootstrap=False`` skips the CI (simulations of the rule's error rates).
    """
    treatment, control = np.atleast_2d(np.asarray(treatment, float)), np.atleast_2d(np.asarray(control, float))
    if treatment.shape != control.shape:
        raise ValueError(f"paired runs differ in shape: {treatment.shape} vs {control.shape}")
    per_seed = treatment.mean(axis=1) - control.mean(axis=1)
    n = len(per_seed)
    claimed, other = ("greater", "less") if direction > 0 else ("less", "greater")
    sd = float(per_seed.std(ddof=1)) if n > 1 else 0.0
    p_claim = _one_sided_t(per_seed, 0.0, claimed) if n >= 2 else 1.0
    p_other = _one_sided_t(per_seed, 0.0, other) if n >= 2 else 1.0
    nan = float("nan")
    ci = _bootstrap_diff_ci(treatment, control, np.random.default_rng(seed)) if bootstrap else (nan, nan)
    if n < MIN_SEEDS:
        verdict, note = Verdict.INCONCLUSIVE, _too_few(n)
    elif p_claim < alpha:
        verdict, note = Verdict.REPRODUCED, ""
    elif p_other < alpha:
        verdict, note = Verdict.CONTRADICTED, ""
    else:
        verdict, note = Verdict.INCONCLUSIVE, "not significant in either direction"
    wins = (per_seed > 0).sum() + 0.5 * (per_seed == 0).sum()
    needed = seeds_for_power(paper_diff, sd, alpha) if paper_diff is not None else None
    return ClaimStats(
        verdict=verdict, seeds=n, estimate=float(per_seed.mean()), ci_low=ci[0], ci_high=ci[1],
        p_value=p_claim, alpha=alpha, paper=paper_diff, p_outperform=float(wins / n), seeds_needed=needed,
        note=note, extra={"p_other_direction": p_other, "sd_per_seed": sd},
    )


def best_claim(
    best: np.ndarray, rivals: dict[str, np.ndarray], *, alpha: float, paper: float | None = None, seed: int = 0,
    bootstrap: bool = True,
) -> ClaimStats:
    """"``best`` beats every rival": REPRODUCED when every paired test is significant (IUT,
    no correction needed); CONTRADICTED when some rival is significantly better."""
    results = {name: paired_claim(best, rival, direction=+1, alpha=alpha, seed=seed, bootstrap=False)
               for name, rival in rivals.items()}
    weakest_name, weakest = max(results.items(), key=lambda item: item[1].p_value)
    if bootstrap:
        weakest = paired_claim(best, rivals[weakest_name], direction=+1, alpha=alpha, seed=seed)
    n = weakest.seeds
    beaten_by = [name for name, r in results.items() if r.verdict == Verdict.CONTRADICTED]
    if n < MIN_SEEDS:
        verdict, note = Verdict.INCONCLUSIVE, _too_few(n)
    elif beaten_by:
        verdict, note = Verdict.CONTRADICTED, f"significantly beaten by {', '.join(beaten_by)}"
    elif all(r.verdict == Verdict.REPRODUCED for r in results.values()):
        verdict, note = Verdict.REPRODUCED, ""
    else:
        verdict, note = Verdict.INCONCLUSIVE, f"closest rival: {weakest_name}"
    needed = seeds_for_power(paper, weakest.extra["sd_per_seed"], alpha) if paper is not None else None
    return ClaimStats(
        verdict=verdict, seeds=n, estimate=weakest.estimate, ci_low=weakest.ci_low, ci_high=weakest.ci_high,
        p_value=weakest.p_value, alpha=alpha, paper=paper, p_outperform=weakest.p_outperform, seeds_needed=needed,
        note=note, extra={"closest_rival": weakest_name},
    )


def equivalence_claim(values: np.ndarray, target: float, *, margin: float, alpha: float) -> ClaimStats:
    """TOST: the mean of per-seed ``values`` lies within ``target`` +- ``margin``.

    REPRODUCED when both one-sided tests reject (equivalent); CONTRADICTED when the mean is
    significantly outside the margin; INCONCLUSIVE otherwise.
    """
    values = np.asarray(values, float)
    n = len(values)
    p_lower = _one_sided_t(values, target - margin, "greater") if n >= 2 else 1.0
    p_upper = _one_sided_t(values, target + margin, "less") if n >= 2 else 1.0
    p_equivalent = max(p_lower, p_upper)
    p_outside = min(
        _one_sided_t(values, target - margin, "less") if n >= 2 else 1.0,
        _one_sided_t(values, target + margin, "greater") if n >= 2 else 1.0,
    )
    mean = float(values.mean())
    if n > 1 and values.std(ddof=1) > 0:
        half = st.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)
    else:
        half = 0.0
    if n < MIN_SEEDS:
        verdict, note = Verdict.INCONCLUSIVE, _too_few(n)
    elif p_equivalent < alpha:
        verdict, note = Verdict.REPRODUCED, f"within +-{margin}"
    elif p_outside < alpha:
        verdict, note = Verdict.CONTRADICTED, f"outside +-{margin}"
    else:
        verdict, note = Verdict.INCONCLUSIVE, f"neither shown within nor outside +-{margin}"
    return ClaimStats(
        verdict=verdict, seeds=n, estimate=mean, ci_low=float(mean - half), ci_high=float(mean + half),
        p_value=p_equivalent, alpha=alpha, paper=target, note=note, extra={"margin": margin, "p_outside": p_outside},
    )


def regression_check(current: np.ndarray, baseline: np.ndarray, *, margin: float, alpha: float = 0.01) -> ClaimStats:
    """REGRESSED when mean(baseline) - mean(current) > ``margin`` significantly (one-sided Welch).

    The test shifts the baseline down by the margin, so noise and drops inside the margin
    never fail; fewer than ``MIN_SEEDS`` seeds on either side is INCONCLUSIVE.
    """
    current, baseline = np.asarray(current, float), np.asarray(baseline, float)
    drop = float(baseline.mean() - current.mean())
    n = min(len(current), len(baseline))
    if n < 2:
        p = 1.0
    elif np.ptp(current) == 0 and np.ptp(baseline) == 0:
        p = 0.0 if drop > margin else 1.0
    else:
        p = float(st.ttest_ind(current, baseline - margin, equal_var=False, alternative="less").pvalue)
    if n < MIN_SEEDS:
        verdict, note = Verdict.INCONCLUSIVE, _too_few(n)
    elif p < alpha:
        verdict, note = Verdict.REGRESSED, f"drop {drop:.4f} > margin {margin}"
    else:
        verdict, note = Verdict.NO_REGRESSION, f"drop {drop:+.4f} (margin {margin})"
    return ClaimStats(
        verdict=verdict, seeds=n, estimate=-drop, ci_low=float("nan"), ci_high=float("nan"), p_value=p,
        alpha=alpha, paper=float(baseline.mean()), note=note, extra={"margin": margin},
    )


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()
