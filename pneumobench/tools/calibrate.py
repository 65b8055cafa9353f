"""The verdict rules' simulated error rates and power, printed (``python -m pneumobench.tools.calibrate``).

CI runs it: it exits non-zero when any rule's simulated error rate exceeds its bound. The
simulations are ``pneumobench.judging.calibration``; the power table uses this paper's claims.
"""

from __future__ import annotations

from tabulate import tabulate

from pneumobench.judging.calibration import (
    PAPER_EFFECTS,
    POWER_SDS,
    CollapseRate,
    ErrorRate,
    error_rate_table,
    family_error_rates,
    misbehaving_error_rates,
    one_arm_collapse_rates,
    selection_null_rates,
    sequential_error_rates,
    sequential_power,
    unstable_flag_rates,
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


def _print_collapse(rows: list[CollapseRate]) -> None:
    table = [
        [
            r.design,
            f"{r.p:g}",
            f"{r.drop:g}",
            r.simulations,
            f"{r.without_flag:.4f}",
            f"{r.with_flag:.4f}",
            f"{r.no_collapse_share:.3f}",
            f"{r.without_flag_given_collapse:.4f}",
            f"{r.with_flag_given_collapse:.4f}",
            f"{2 * r.alpha:.4f}",
            "yes" if r.within_bound else "NO",
        ]
        for r in rows
    ]
    headers = [
        "design",
        "p",
        "D",
        "simulations",
        "false REPRODUCED, t alone",
        "with the unstable flag",
        "draws without a collapse",
        "t alone, given a collapse",
        "flag, given a collapse",
        "bound (2 alpha)",
        "within 3 SE",
    ]
    print(tabulate(table, headers=headers, tablefmt="github"))


def _print_flag_cost(alpha: float) -> None:
    table = [
        [n, f"{effect:.3f}", f"{flagged:.4f}", f"{power:.3f}", f"{flagged_power:.3f}"]
        for n, effect, flagged, power, flagged_power in unstable_flag_rates(alpha, 5000)
    ]
    headers = ["seeds", "effect", "claims flagged", "power, t alone", "power with the flag"]
    print(tabulate(table, headers=headers, tablefmt="github"))


def _print_families() -> list[str]:
    """Print the chance of any wrong verdict per family at its global null; the families over 0.05."""
    rates = family_error_rates()
    bound = 0.05 + 3 * (0.05 * 0.95 / 40_000) ** 0.5
    table = [[name, f"{rate:.4f}", "yes" if rate <= bound else "NO"] for name, rate in rates.items()]
    print(tabulate(table, headers=["family", "any wrong verdict", "within 0.05 + 3 SE"], tablefmt="github"))
    return [name for name, rate in rates.items() if rate > bound and not name.startswith("one family of 43 before")]


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
    collapse = one_arm_collapse_rates(family_alpha, 10_000)
    print(
        "\nOne arm collapses (T drops by D on a seed with chance p and gains pD/(1-p) elsewhere: no effect on "
        f"average), paired claims at the paper family's {family_alpha:.3g}, sequential looks at 5, 10, 20, 40:"
    )
    _print_collapse(collapse)
    print(
        "\nEpochs selected on the reported split, identical configurations, at the paper family's "
        f"{family_alpha:.3g} (false REPRODUCED of 'T improves'; of 'T lowers', false CONTRADICTED at the same rate):"
    )
    table = [[case, n, f"{old:.4f}", f"{new:.4f}"] for case, n, old, new in selection_null_rates(family_alpha, 5000)]
    print(tabulate(table, headers=["case", "seeds", "paired t alone", "evidence now"], tablefmt="github"))
    print("\nWhat the unstable flag costs where every seed behaves (paired claims, arm SD 0.01, difference SD 0.005):")
    _print_flag_cost(family_alpha)
    print("\nAny wrong verdict in a family at its global null (members independent, 40,000 simulations):")
    families_over = _print_families()
    _print_power(family_alpha)
    failed = [f"{r.rule} ({r.error})" for r in rows + sequential + misbehaving if not r.within_bound]
    failed += [f"one-arm collapse, {r.design}, p {r.p}" for r in collapse if not r.within_bound]
    failed += [f"family {name}" for name in families_over]
    if failed:
        raise SystemExit(f"{len(failed)} rule(s) exceed their bound: " + "; ".join(failed))


if __name__ == "__main__":
    main()
