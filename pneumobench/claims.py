"""The paper's claims as data, and how each is judged from runs.

A claim names the configurations it needs (as tuples of modification names), how to compare
them and the family whose alpha it spends (``pneumobench.families``); ``evaluate`` turns runs
into ``stats.ClaimStats`` with one judge per claim kind. Before any test, the runs are
checked: distinct seeds, paired seeds and images, finite scores, and no degenerate
configuration (a constant classifier, every mask empty or full, a metric identical on every
seed): a claim that rests on one is INCONCLUSIVE with that reason. A researcher's new claim
is one more ``Claim`` (see the README's "Adding a modification").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pneumobench.baselines import PaperNumbers, RecordedBaseline, mismatch
from pneumobench.config import ExperimentConfig, config_name
from pneumobench.families import (
    EQUIVALENCE_MARGIN,
    PAPER_FAMILY_ALPHA,
    REGRESSION_ALPHA,
    REGRESSION_MARGIN,
    Family,
    member_alpha,
    register_family,
)
from pneumobench.models import build_model, count_parameters
from pneumobench.modifications import table6_rows
from pneumobench.registry import Registry
from pneumobench.results import RunResult
from pneumobench.stats import (
    ClaimStats,
    Verdict,
    best_claim,
    check_finite,
    equivalence_claim,
    paired_claim,
    regression_check,
    undecided,
)

__all__ = [
    "PAPER_CLAIMS",
    "Claim",
    "claim_alpha",
    "config_name",
    "degenerate_reasons",
    "evaluate",
    "per_image",
    "per_seed",
    "regression_claims",
    "run_flags",
    "table6_claims",
    "verdict_record",
]

Mods = tuple[str, ...]
RunsFor = Callable[[Mods], list[RunResult]]
METRICS = ("dice", "accuracy")


@dataclass(frozen=True)
class Claim:
    """One claim. ``kind``: ``paired`` (T vs C in ``direction``), ``best`` (T beats every
    Table 6 row), ``row`` (T reaches a value), ``parameters`` (the ASPP size claim, exact),
    ``regression`` (T against the recorded baseline of ``reference``, by default T itself).
    ``family``: whose alpha it spends."""

    id: str
    kind: str
    source: str  # where the paper says it
    text: str
    treatment: Mods = ()
    control: Mods = ()
    metric: str = "dice"
    direction: int = +1
    paper: float | None = None  # the paper's difference (paired), value (best, row)
    rivals: tuple[Mods, ...] = field(default=(), repr=False)
    family: str = "paper"
    reference: Mods | None = None  # regression: the recorded configuration to compare with (None: treatment)

    @property
    def recorded_config(self) -> Mods:
        """The configuration whose recorded baseline a row or regression claim compares with."""
        return self.treatment if self.reference is None else self.reference

    def configs(self) -> list[Mods]:
        """The configurations this claim trains (none for ``parameters``)."""
        if self.kind == "parameters":
            return []
        if self.kind in ("row", "regression"):
            return [self.treatment]
        return list(dict.fromkeys([self.treatment, self.control, *self.rivals]))


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


# The paper's statistical claims and Table 6 rows share one family-wise alpha; the size claim
# is an exact count and spends none. The regression checks are separate decisions.
register_family(
    Family(
        "paper",
        PAPER_FAMILY_ALPHA,
        tuple(
            [c.id for c in PAPER_CLAIMS if c.kind != "parameters"]
            + [_table6_id(m, x) for m in table6_rows() for x in METRICS]
        ),
    )
)
register_family(Family("regression", REGRESSION_ALPHA, tuple(c.id for c in regression_claims()), "per-test"))


def claim_alpha(claim: Claim) -> float:
    """The alpha of ``claim``'s test, fixed by its family."""
    return member_alpha(claim.family, claim.id)


def _ordered(runs: list[RunResult]) -> list[RunResult]:
    """``runs`` by seed; a repeated seed is an error (it would count one run twice)."""
    ordered = sorted(runs, key=lambda r: r.seed)
    seeds = [r.seed for r in ordered]
    if len(set(seeds)) != len(seeds):
        names = ", ".join(sorted({r.config_name for r in ordered}))
        raise ValueError(f"runs of {names} repeat a seed ({seeds}): seeds must be distinct to count as independent")
    return ordered


def per_image(runs: list[RunResult], metric: str) -> np.ndarray:
    """(seeds, images) per-image scores, seeds in ascending order; non-finite scores name their run."""
    field_name = "dice_per_image" if metric == "dice" else "correct"
    return np.array(
        [check_finite(getattr(r, field_name), f"{r.config_name} seed {r.seed} {metric}") for r in _ordered(runs)]
    )


def per_seed(runs: list[RunResult], metric: str) -> dict[int, float]:
    """Per-seed value of ``metric``, seeds ascending; non-finite values name their run."""
    return {
        r.seed: float(check_finite(getattr(r, metric), f"{r.config_name} seed {r.seed} {metric}"))
        for r in _ordered(runs)
    }


def run_flags(run: RunResult) -> list[str]:
    """Why one run is degenerate: its classifier answers one class for every validation image,
    or every predicted mask is empty or full. Empty when the run is usable."""
    flags = []
    predicted = np.asarray(run.cls_prob) > 0.5
    if predicted.size and (predicted.all() or not predicted.any()):
        flags.append(f"constant classifier (every image {'positive' if predicted.all() else 'negative'})")
    fraction = np.asarray(run.mask_fraction)
    if fraction.size and (fraction == 0).all():
        flags.append("every predicted mask empty")
    elif fraction.size and (fraction == 1).all():
        flags.append("every predicted mask full")
    return flags


def degenerate_reasons(runs: list[RunResult], metric: str) -> list[str]:
    """Why a configuration's runs cannot be evidence: flagged runs, or ``metric`` identical on every seed."""
    reasons = [f"{r.config_name} seed {r.seed}: {flag}" for r in _ordered(runs) for flag in run_flags(r)]
    values = [getattr(r, metric) for r in runs]
    if len(values) > 1 and np.ptp(values) == 0:
        names = ", ".join(sorted({r.config_name for r in runs}))
        reasons.append(f"{names}: {metric} {float(np.mean(values)):.4f} on every seed")
    return reasons


def _check_paired(a: list[RunResult], b: list[RunResult]) -> None:
    if [r.seed for r in _ordered(a)] != [r.seed for r in _ordered(b)]:
        raise ValueError("paired claims need the same seeds for both configurations")
    if len({tuple(r.val_ids) for r in a + b}) > 1:
        raise ValueError("paired runs must score the same validation images in the same order")


@dataclass(frozen=True)
class _Context:
    """What a judge needs besides the claim: the runs and the recorded baseline."""

    runs_for: RunsFor
    recorded: RecordedBaseline | None
    use_paper_values: bool
    profile: str
    alpha: float | None  # a sequential look's share of the family's alpha; None: the family's

    def level(self, claim: Claim) -> float:
        """The alpha of ``claim``'s test here."""
        return claim_alpha(claim) if self.alpha is None else self.alpha


def _judge_parameters(claim: Claim, ctx: _Context) -> ClaimStats:
    """The paper's architecture, whatever the profile trains (the smoke profile narrows the
    center block for speed): no weights are needed, and the count is exact (no test, no alpha)."""
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


def _judge_paired(claim: Claim, ctx: _Context) -> ClaimStats:
    treatment, control = ctx.runs_for(claim.treatment), ctx.runs_for(claim.control)
    _check_paired(treatment, control)
    return paired_claim(
        per_image(treatment, claim.metric),
        per_image(control, claim.metric),
        direction=claim.direction,
        alpha=ctx.level(claim),
        paper_diff=claim.paper,
    )


def _judge_best(claim: Claim, ctx: _Context) -> ClaimStats:
    treatment = ctx.runs_for(claim.treatment)
    rivals = {}
    for mods in claim.rivals:
        runs = ctx.runs_for(mods)
        _check_paired(treatment, runs)
        rivals[config_name(mods)] = per_image(runs, claim.metric)
    return best_claim(per_image(treatment, claim.metric), rivals, alpha=ctx.level(claim), paper=claim.paper)


def _recorded_values(claim: Claim, ctx: _Context, runs: list[RunResult]) -> dict[int, float] | str:
    """The recorded baseline's per-seed values of the claim's configuration and metric, or why
    that baseline cannot judge these runs (none recorded, or a field differs)."""
    if ctx.recorded is None:
        return "no recorded baseline for this profile and device (record one with --pb-update-baselines)"
    name = config_name(claim.recorded_config)
    same_config = claim.recorded_config == claim.treatment  # a changed configuration is compared on purpose
    return mismatch(ctx.recorded, runs, name, profile=ctx.profile, check_config=same_config) or ctx.recorded.values(
        name, claim.metric
    )


def _judge_row(claim: Claim, ctx: _Context) -> ClaimStats:
    """Equivalence with the paper's single run (paper profile, real data) or the recorded baseline."""
    runs = ctx.runs_for(claim.treatment)
    values = np.array(list(per_seed(runs, claim.metric).values()))
    alpha = ctx.level(claim)
    if ctx.use_paper_values:
        if claim.paper is None:
            raise ValueError(f"row claim {claim.id} has no paper value to compare with")
        return equivalence_claim(values, claim.paper, margin=EQUIVALENCE_MARGIN, alpha=alpha)
    recorded = _recorded_values(claim, ctx, runs)
    if isinstance(recorded, str):
        return undecided(recorded, seeds=len(values), estimate=float(values.mean()), alpha=alpha, paper=claim.paper)
    reference = np.array(list(recorded.values()))
    result = equivalence_claim(values, reference, margin=EQUIVALENCE_MARGIN, alpha=alpha)
    result.note = f"against the recorded baseline ({reference.mean():.4f}); paper {claim.paper}. {result.note}"
    return result


def _judge_regression(claim: Claim, ctx: _Context) -> ClaimStats:
    """Today's per-seed values against every recorded seed (Welch is unpaired: an A/A control
    with other seeds is compared too)."""
    runs = ctx.runs_for(claim.treatment)
    current = np.array(list(per_seed(runs, claim.metric).values()))
    alpha = ctx.level(claim)
    recorded = _recorded_values(claim, ctx, runs)
    if isinstance(recorded, str):
        return undecided(recorded, seeds=len(current), estimate=float(current.mean()), alpha=alpha)
    return regression_check(current, np.array(list(recorded.values())), margin=REGRESSION_MARGIN, alpha=alpha)


Judge = Callable[[Claim, _Context], ClaimStats]
JUDGES: Registry[Judge] = Registry("claim kind")  # a claim's ``kind`` names its judge
for _kind, _judge in {
    "parameters": _judge_parameters,
    "paired": _judge_paired,
    "best": _judge_best,
    "row": _judge_row,
    "regression": _judge_regression,
}.items():
    JUDGES.register(_kind)(_judge)


def evaluate(
    claim: Claim,
    runs_for: RunsFor,
    *,
    recorded: RecordedBaseline | None = None,
    use_paper_values: bool = True,
    profile: str,
    alpha: float | None = None,
) -> ClaimStats:
    """Judge ``claim`` from the runs ``runs_for(mods)`` returns, at its family's alpha (or at
    ``alpha``: a sequential look's level, ``pneumobench.sequential_claims``).

    ``row`` claims are equivalence tests against the paper's value when
    ``use_paper_values`` (the paper profile on the real data), otherwise against the
    ``recorded`` baseline of ``profile`` (INCONCLUSIVE, naming the field, when none is
    recorded or it does not match the runs). A claim that rests on a degenerate
    configuration is INCONCLUSIVE with the reason, whatever its test said; except a regression
    check, where a run that degenerated since the baseline was recorded is what the check must
    catch: its test decides, and the reasons are recorded beside the verdict.
    """
    judge = JUDGES.get(claim.kind)
    runs = {mods: runs_for(mods) for mods in claim.configs()}  # fetched once: judged and checked below
    result = judge(claim, _Context(runs.__getitem__, recorded, use_paper_values, profile, alpha))
    degenerate = [reason for mods, found in runs.items() for reason in degenerate_reasons(found, claim.metric)]
    if not degenerate:
        return result
    if claim.kind == "regression":
        return replace(
            result, note=f"{result.note}; degenerate: {degenerate[0]}", extra={**result.extra, "degenerate": degenerate}
        )
    return replace(
        result,
        verdict=Verdict.INCONCLUSIVE,
        note=f"rests on a degenerate configuration: {degenerate[0]}",
        extra={**result.extra, "degenerate": degenerate},
    )


def verdict_record(claim: Claim, stats: ClaimStats, *, synthetic: bool, profile: str, test: str = "") -> dict[str, Any]:
    """One verdict as plain data: what the plugin reports and the report's claims table holds."""
    return {
        "test": test,
        "claim": claim.id,
        "kind": claim.kind,
        "family": claim.family,
        "source": claim.source,
        "text": claim.text,
        "metric": claim.metric,
        "treatment": config_name(claim.treatment),
        "synthetic": synthetic,
        "profile": profile,
        "degenerate": stats.extra.get("degenerate", []),
        **stats.to_dict(),
    }
