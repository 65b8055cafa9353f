"""The verdict rules' simulated error rates and power, printed (``python -m pneumobench.tools.calibrate``).

CI runs it: it exits non-zero when any rule's simulated error rate exceeds its bound. The
simulations are ``pneumobench.judging.calibration``; the power table uses this paper's claims.
"""

from __future__ import annotations

from tabulate import tabulate

from pneumobench.judging.calibration import (
    PAPER_EFFECTS,
    POWER_SDS,
    ErrorRate,
    error_rate_table,
    misbehaving_error_rates,
    sequential_error_rates,
    sequential_power,
)
from pneumobench.judging.claims import claim_alpha
from pneumobench.judging.stats import paired_power
from pneumobench.papers.viel_orhan_2020.claims import PAPER_CLAIMS

__all__ = ["main"]


def _print_rates(rows: list[ErrorRate]) -> None:
    table = [
        [
            r.rule,
            r.truth,
            r.error,
            r.seeds,
            r.simulations,
            f"{r.rate:.4g}",
            f"{r.bound:.3g}",
            f"{r.standard_error:.2g}",
            "yes" if r.within_bound else "NO",
        ]
        for r in rows
    ]
    headers = ["rule", "truth", "error", "seeds", "simulations", "rate", "bound", "simulation SE", "within 3 SE"]
    print(tabulate(table, headers=headers, tablefmt="github"))


def _print_power(family_alpha: float) -> None:
    for sd in POWER_SDS:
        print(
            f"\nPower at each paper claim's published effect, SD of the per-seed difference {sd} "
            "(for a best-of claim: against its closest rival alone, an upper bound):"
        )
        table = [
            [
                claim.id,
                f"{claim.paper:+.3f}",
                *(f"{float(paired_power(claim.paper, sd, n, claim_alpha(claim))):.3f}" for n in (5, 10, 20, 40)),
            ]
            for claim in PAPER_CLAIMS
            if claim.kind in ("paired", "best") and claim.paper is not None
        ]
        headers = ["claim", "paper effect", "5 seeds", "10 seeds", "20 seeds", "40 seeds"]
        print(tabulate(table, headers=headers, tablefmt="github"))
    print(
        f"\nSequential (--pb-seeds auto) against a fixed 40 seeds, paired claims at the paper's effects "
        f"(alpha {family_alpha:.3g}): power, mean seeds per claim and the share of seeds saved"
    )
    table = [
        [
            f"{p.effect:.3f}",
            f"{p.sd:g}",
            f"{p.power:.3f}",
            f"{p.fixed_power:.3f}",
            f"{p.mean_seeds:.1f}",
            f"{p.saving:.0%}",
        ]
        for sd in POWER_SDS
        for p in (sequential_power(effect, sd, family_alpha) for effect in PAPER_EFFECTS)
    ]
    headers = ["effect", "SD", "sequential power", "fixed-40 power", "mean seeds", "saved"]
    print(tabulate(table, headers=headers, tablefmt="github"))


def main() -> None:
    """Print every table; exit non-zero when a rule's simulated error rate exceeds its bound."""
    alpha = 0.05
    family_alpha = claim_alpha(PAPER_CLAIMS[0])
    rows = error_rate_table(alpha)
    print(f"Wrong-verdict rates at each rule's least favourable configuration (alpha {alpha}):")
    _print_rates(rows)
    sequential = [*sequential_error_rates(alpha), *sequential_error_rates(family_alpha, 400_000)]
    print(
        "\nSequential rules (--pb-seeds auto: looks at 5, 10, 20, 40 seeds, O'Brien-Fleming spending), wrong "
        f"verdicts over all looks, at alpha {alpha} and at the paper family's per-test alpha {family_alpha:.3g}:"
    )
    _print_rates(sequential)
    misbehaving = misbehaving_error_rates(0.01, 10_000)
    print(
        "\nWhere runs misbehave: records with another spread or size, and an accuracy saturated at 1.000 "
        "(the regression alpha 0.01):"
    )
    _print_rates(misbehaving)
    _print_power(family_alpha)
    failed = [r for r in rows + sequential + misbehaving if not r.within_bound]
    if failed:
        raise SystemExit(
            f"{len(failed)} rule(s) exceed their bound: " + "; ".join(f"{r.rule} ({r.error})" for r in failed)
        )


if __name__ == "__main__":
    main()
