"""The claims of Viel & Orhan (2020): the paper's statistical claims, its Table 6 rows and the
regression checks, the two families whose alpha they spend, and the exact parameter-count judge.

Importing this module registers the families (``paper``, ``regression``) and the
``parameters`` judge; the parameter count builds the paper's models, so it imports them
only when that claim is judged.
"""

from __future__ import annotations

import math

from pneumobench.experiment.config import ExperimentConfig, config_name
from pneumobench.judging.baselines import PaperNumbers
from pneumobench.judging.claims import JUDGES, METRICS, Claim, JudgeInputs, Mods
from pneumobench.judging.families import PAPER_FAMILY_ALPHA, REGRESSION_ALPHA, Family, register_family
from pneumobench.judging.stats import ClaimStats, Verdict
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows

__all__ = ["PAPER_CLAIMS", "all_claims", "regression_claims", "table6_claims"]


def _paired(cid, source, text, treatment, metric, paper_t, paper_c, control=()) -> Claim:  # pragma: no mutate block
    """A paired claim from the two Table values it compares. Runs only at import, before mutmut
    can switch a mutant on; ``test_the_paper_claims_as_data`` checks every field it builds."""
    diff = round(paper_t - paper_c, 6)
    return Claim(cid, "paired", source, text, tuple(treatment), tuple(control), metric, 1 if diff > 0 else -1, diff)


PAPER_CLAIMS: list[Claim] = [
    _paired("lovasz-improves-dice", "Table 2", "Lovász loss improves Dice over BCE", ("lovasz",), "dice", 0.588, 0.583),
    _paired(
        "lovasz-improves-accuracy",
        "Table 2",
        "Lovász loss improves accuracy over BCE",
        ("lovasz",),
        "accuracy",
        0.832,
        0.828,
    ),
    _paired("aspp-improves-dice", "Table 3", "ASPP improves Dice", ("aspp",), "dice", 0.592, 0.583),
    _paired("aspp-improves-accuracy", "Table 3", "ASPP improves accuracy", ("aspp",), "accuracy", 0.838, 0.828),
    _paired(
        "hypercolumns-improve-dice",
        "Table 4",
        "hypercolumns improve Dice slightly",
        ("hypercolumns",),
        "dice",
        0.585,
        0.583,
    ),
    _paired(
        "hypercolumns-improve-accuracy",
        "Table 4",
        "hypercolumns improve accuracy",
        ("hypercolumns",),
        "accuracy",
        0.842,
        0.828,
    ),
    _paired("scse-improves-accuracy", "Table 5", "scSE improves accuracy", ("scse",), "accuracy", 0.836, 0.828),
    _paired("scse-lowers-dice", "Table 5", "scSE lowers Dice", ("scse",), "dice", 0.578, 0.583),
    # ``paper`` of a "best" claim: its margin over the runner-up row of Table 6.
    Claim(
        "best-accuracy-is-hypercolumns",
        "best",
        "Table 6",
        "the best accuracy is hypercolumns alone",
        ("hypercolumns",),
        metric="accuracy",
        paper=round(0.842 - 0.840, 6),
        rivals=tuple(r for r in table6_rows() if r != ("hypercolumns",)),
    ),
    Claim(
        "best-dice-is-aspp-hypercolumns",
        "best",
        "Table 6",
        "the best Dice is ASPP + hypercolumns",
        ("aspp", "hypercolumns"),
        metric="dice",
        paper=round(0.593 - 0.592, 6),
        rivals=tuple(r for r in table6_rows() if r != ("aspp", "hypercolumns")),
    ),
    _paired(
        "all-four-worse-than-aspp",
        "Table 6",
        "combining all four modifications does worse (Dice) than ASPP alone",
        ("lovasz", "aspp", "hypercolumns", "scse"),
        "dice",
        0.574,
        0.592,
        control=("aspp",),
    ),
    Claim(
        "aspp-is-800k-parameters-lighter",
        "parameters",
        "Section 4.2",
        "the ASPP model has about 800,000 fewer parameters than the baseline",
        ("aspp",),
        paper=800_000,
    ),
]


def _table6_id(mods: Mods, metric: str) -> str:
    return f"table6-{config_name(mods)}-{metric}"


def table6_claims(paper: PaperNumbers) -> list[Claim]:
    """One absolute claim per Table 6 row and metric (32)."""
    claims = []
    for mods in table6_rows():
        values = paper.table6(mods)
        for metric in METRICS:
            name = config_name(mods)
            claims.append(
                Claim(
                    _table6_id(mods, metric),
                    "row",
                    "Table 6",
                    f"{name} reaches the paper's {metric}",
                    mods,
                    metric=metric,
                    paper=values[metric],
                    family="table6",
                )
            )
    return claims


def regression_claims() -> list[Claim]:
    """One regression check per Table 6 row and metric (32), against the recorded baseline."""
    return [
        Claim(
            f"regression-{config_name(mods)}-{metric}",
            "regression",
            "recorded baseline",
            f"{config_name(mods)} keeps its {metric}",
            mods,
            metric=metric,
            family="regression",
        )
        for mods in table6_rows()
        for metric in METRICS
    ]


# Two families, each at 0.05: the paper's statistical claims (a paired claim at no effect can
# err either way, so their alpha is split over both directions) and the Table 6 rows (32
# equivalence tests, each erring one way at any truth). The size claim is an exact count and
# spends none. The regression checks are separate decisions.
register_family(
    Family("paper", PAPER_FAMILY_ALPHA, tuple(c.id for c in PAPER_CLAIMS if c.kind != "parameters"), both_ways=True)
)
register_family(Family("table6", PAPER_FAMILY_ALPHA, tuple(_table6_id(m, x) for m in table6_rows() for x in METRICS)))
register_family(Family("regression", REGRESSION_ALPHA, tuple(c.id for c in regression_claims()), "per-test"))


@JUDGES.register("parameters")
def _judge_parameters(claim: Claim, ctx: JudgeInputs) -> ClaimStats:
    """The paper's architecture, whatever the profile trains (the smoke profile narrows the
    center block for speed): no weights are needed, and the count is exact (no test, no alpha)."""
    from pneumobench.models import build_model, count_parameters

    untrained = ExperimentConfig.paper_baseline().replace_model(encoder_weights=None)
    base_count = count_parameters(build_model(untrained))
    treated = count_parameters(build_model(untrained.with_modifications(*claim.treatment)))
    fewer = base_count - treated
    verdict = Verdict.REPRODUCED if 600_000 <= fewer <= 1_000_000 else Verdict.CONTRADICTED
    return ClaimStats(
        verdict=verdict,
        seeds=0,
        estimate=float(fewer),
        ci_low=float(fewer),
        ci_high=float(fewer),
        p_value=math.nan,
        alpha=math.nan,
        paper=claim.paper,
        decided_by="exact parameter count",
        note=f"{base_count:,} vs {treated:,} parameters (accepted 600,000 to 1,000,000 fewer)",
    )


def all_claims(paper: PaperNumbers) -> list[Claim]:
    """The paper's claims and its Table 6 rows, in the order the report lists them."""
    return PAPER_CLAIMS + table6_claims(paper)
