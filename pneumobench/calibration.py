"""Error rates of the verdict rules, by simulation at each rule's least favourable configuration.

Each ``simulate_*`` function draws per-image or per-seed scores from a known truth, runs the
real rule from ``pneumobench.stats`` on every draw and returns the rate of one kind of
wrong verdict. The least favourable configuration is where that error is most likely while
the truth still says the verdict is wrong: a true difference of exactly zero for a paired
claim, all rivals tied (or one tied and the others far behind) for a best-of claim, a true
distance of exactly the margin for an equivalence or regression test. ``tests/test_stats.py``
bounds these rates; ``python -m pneumobench.calibration`` prints them, with the power of each
paper claim at its published effect.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pneumobench.stats import (
    ClaimStats,
    Verdict,
    best_claim,
    equivalence_claim,
    paired_claim,
    paired_power,
    regression_check,
)

__all__ = [
    "ErrorRate",
    "error_rate_table",
    "simulate_best",
    "simulate_equivalence",
    "simulate_paired",
    "simulate_regression",
]

IMAGES = 20  # per-image scores per run in the simulations (the rules see per-seed means)
SEED_SD = 0.01  # between-seed SD of a configuration's mean score
COLLAPSE_DROP = 0.3  # a collapsed run's mean score falls this far
POWER_SDS = (0.005, 0.01)  # assumed SDs of a per-seed difference on the paper's data (not measured there)


@dataclass(frozen=True)
class ErrorRate:
    """One simulated error rate and the bound it must respect."""

    rule: str
    truth: str
    error: str
    seeds: int
    simulations: int
    rate: float
    bound: float  # alpha, or 2 alpha for the skewed null

    @property
    def standard_error(self) -> float:
        """The simulation's binomial standard error at the bound."""
        return math.sqrt(self.bound * (1 - self.bound) / self.simulations)

    @property
    def within_bound(self) -> bool:
        """At most the bound up to simulation error (3 standard errors): an exact test sits at it."""
        return self.rate <= self.bound + 3 * self.standard_error


def _runs(rng: np.random.Generator, base: np.ndarray, seeds: int, shift: float, collapse: float) -> np.ndarray:
    """(seeds, images) scores: a per-image base, per-seed noise, a shift, and collapsed runs."""
    seed_effect = rng.normal(0.0, SEED_SD, (seeds, 1)) - COLLAPSE_DROP * (rng.random((seeds, 1)) < collapse)
    return base + shift + seed_effect + rng.normal(0.0, 0.01, (seeds, base.size))


def _verdict_rates(
    simulations: int, rng_seed: int, judge: Callable[[np.random.Generator], ClaimStats]
) -> dict[Verdict, float]:
    """The share of each verdict over ``simulations`` draws; ``judge`` draws one data set and judges it."""
    rng = np.random.default_rng(rng_seed)
    counts = Counter(judge(rng).verdict for _ in range(simulations))
    return {verdict: counts[verdict] / simulations for verdict in Verdict}


def simulate_paired(
    seeds: int, alpha: float, simulations: int, *, effect: float = 0.0, collapse: float = 0.0, rng_seed: int = 0
) -> dict[Verdict, float]:
    """Verdict rates of "T > C" when T - C is truly ``effect``; ``collapse``: each run's chance of collapsing."""

    def judge(rng: np.random.Generator) -> ClaimStats:
        base = rng.uniform(0.3, 0.8, IMAGES)
        treatment = _runs(rng, base, seeds, effect, collapse)
        return paired_claim(treatment, _runs(rng, base, seeds, 0.0, collapse), direction=+1, alpha=alpha)

    return _verdict_rates(simulations, rng_seed, judge)


def simulate_best(
    seeds: int, alpha: float, simulations: int, *, rivals: int, tied: int, rival_shift: float = 0.0, rng_seed: int = 0
) -> dict[Verdict, float]:
    """Verdict rates of "best beats every rival": ``tied`` rivals are shifted by ``rival_shift``
    from the claimed best (0: tied), the other rivals are far behind (0.2 lower)."""

    def judge(rng: np.random.Generator) -> ClaimStats:
        base = rng.uniform(0.3, 0.8, IMAGES)
        best = _runs(rng, base, seeds, 0.0, 0.0)
        arms = {f"r{i}": _runs(rng, base, seeds, rival_shift if i < tied else -0.2, 0.0) for i in range(rivals)}
        return best_claim(best, arms, alpha=alpha)

    return _verdict_rates(simulations, rng_seed, judge)


def simulate_equivalence(
    seeds: int,
    alpha: float,
    simulations: int,
    *,
    distance: float,
    margin: float,
    reference_runs: int = 1,
    rng_seed: int = 0,
) -> dict[Verdict, float]:
    """Verdict rates of TOST when the true mean lies ``distance`` from the reference's true mean.

    The reference is itself ``reference_runs`` draws of the same run-to-run distribution (one:
    the paper's single published run; several: a recorded baseline's seeds).
    """

    def judge(rng: np.random.Generator) -> ClaimStats:
        values = 0.6 + distance + rng.normal(0.0, SEED_SD, seeds)
        reference = 0.6 + rng.normal(0.0, SEED_SD, reference_runs)
        return equivalence_claim(
            values, float(reference[0]) if reference_runs == 1 else reference, margin=margin, alpha=alpha
        )

    return _verdict_rates(simulations, rng_seed, judge)


def simulate_regression(
    seeds: int, alpha: float, simulations: int, *, drop: float, margin: float, rng_seed: int = 0
) -> dict[Verdict, float]:
    """Verdict rates of the regression check when today's runs truly lose ``drop`` (gain, if negative)."""

    def judge(rng: np.random.Generator) -> ClaimStats:
        current = rng.normal(0.6 - drop, SEED_SD, seeds)
        return regression_check(current, rng.normal(0.6, SEED_SD, seeds), margin=margin, alpha=alpha)

    return _verdict_rates(simulations, rng_seed, judge)


def error_rate_table(alpha: float = 0.05, simulations: int = 4000, seeds: tuple[int, ...] = (5, 10)) -> list[ErrorRate]:
    """Every rule's wrong-verdict rates at its least favourable configuration."""
    margin = 0.01
    rows = []
    for n in seeds:

        def add(
            rule: str,
            truth: str,
            rates: dict[Verdict, float],
            error: Verdict,
            bound: float = alpha,
            sims: int = simulations,
            n: int = n,
        ) -> None:
            rows.append(ErrorRate(rule, truth, f"false {error.value}", n, sims, rates[error], bound))

        null = simulate_paired(n, alpha, simulations)
        add("paired", "no effect", null, Verdict.REPRODUCED)
        add("paired", "no effect", null, Verdict.CONTRADICTED)
        skewed = simulate_paired(n, alpha, simulations, collapse=0.1)
        add("paired", "no effect, 10% of runs collapsed", skewed, Verdict.REPRODUCED, 2 * alpha)
        tied = simulate_best(n, alpha, simulations // 4, rivals=15, tied=15)
        add("best of 16", "all 16 tied", tied, Verdict.CONTRADICTED, sims=simulations // 4)
        one = simulate_best(n, alpha, simulations // 4, rivals=15, tied=1)
        add("best of 16", "one rival tied, the rest far behind", one, Verdict.REPRODUCED, sims=simulations // 4)
        for runs, name in ((1, "the paper's single run"), (n, f"a recorded baseline of {n} seeds")):
            edge = simulate_equivalence(n, alpha, simulations, distance=margin, margin=margin, reference_runs=runs)
            add(f"Table 6 row vs {name}", "exactly the margin away", edge, Verdict.REPRODUCED)
            add(f"Table 6 row vs {name}", "exactly the margin away", edge, Verdict.CONTRADICTED)
        regression = simulate_regression(n, alpha, simulations, drop=0.02, margin=0.02)
        add("regression", "a drop of exactly the margin", regression, Verdict.REGRESSED)
        rise = simulate_regression(n, alpha, simulations, drop=-0.02, margin=0.02)
        add("regression", "a rise of exactly the margin", rise, Verdict.CHANGED)
    return rows


def _main() -> None:
    from tabulate import tabulate

    from pneumobench.claims import PAPER_CLAIMS, claim_alpha

    alpha = 0.05
    rows = error_rate_table(alpha)
    print(f"Wrong-verdict rates at each rule's least favourable configuration (alpha {alpha}):")
    failed = [r for r in rows if not r.within_bound]
    print(
        tabulate(
            [
                [
                    r.rule,
                    r.truth,
                    r.error,
                    r.seeds,
                    r.simulations,
                    f"{r.rate:.4f}",
                    f"{r.bound:g}",
                    f"{r.standard_error:.4f}",
                    "yes" if r.within_bound else "NO",
                ]
                for r in rows
            ],
            headers=[
                "rule",
                "truth",
                "error",
                "seeds",
                "simulations",
                "rate",
                "bound",
                "simulation SE",
                "within bound + 3 SE",
            ],
            tablefmt="github",
        )
    )
    for sd in POWER_SDS:
        print(
            f"\nPower at each paper claim's published effect, SD of the per-seed difference {sd} "
            "(for a best-of claim: against its closest rival alone, an upper bound):"
        )
        table = []
        for claim in PAPER_CLAIMS:
            if claim.kind not in ("paired", "best") or claim.paper is None:
                continue
            test_alpha = claim_alpha(claim)
            table.append(
                [
                    claim.id,
                    f"{claim.paper:+.3f}",
                    *(f"{float(paired_power(claim.paper, sd, n, test_alpha)):.3f}" for n in (5, 10, 20, 40)),
                ]
            )
        print(
            tabulate(
                table,
                headers=["claim", "paper effect", "5 seeds", "10 seeds", "20 seeds", "40 seeds"],
                tablefmt="github",
            )
        )
    if failed:
        raise SystemExit(
            f"{len(failed)} rule(s) exceed their bound: " + "; ".join(f"{r.rule} ({r.error})" for r in failed)
        )


if __name__ == "__main__":
    _main()
