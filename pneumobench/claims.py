"""The paper's claims as data, and how each is judged from runs.

A claim names the configurations it needs (as tuples of modification names) and how to
compare them; ``evaluate`` turns runs into ``stats.ClaimStats``. A researcher's new claim
is one more ``Claim`` (see the README's "Adding a modification").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pneumobench.baselines import PaperNumbers, RecordedBaseline
from pneumobench.config import ExperimentConfig
from pneumobench.models import build_model, count_parameters
from pneumobench.modifications import table6_rows
from pneumobench.stats import ClaimStats, Verdict, best_claim, equivalence_claim, paired_claim
from pneumobench.training import RunResult

__all__ = ["Claim", "PAPER_CLAIMS", "table6_claims", "evaluate", "verdict_record", "per_image", "per_seed"]

Mods = tuple[str, ...]
RunsFor = Callable[[Mods], list[RunResult]]
EQUIVALENCE_MARGIN = 0.01


@dataclass(frozen=True)
class Claim:
    """One claim. ``kind``: ``paired`` (T vs C in ``direction``), ``best`` (T beats every
    Table 6 row), ``row`` (T's value), ``parameters`` (the ASPP size claim), ``regression``
    (T against its recorded baseline, judged by the regression suite)."""

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

    def configs(self) -> list[Mods]:
        """The configurations this claim trains (none for ``parameters``)."""
        if self.kind == "parameters":
            return []
        return list(dict.fromkeys([self.treatment, self.control, *self.rivals]))


def _paired(cid, source, text, treatment, metric, paper_t, paper_c, control=()) -> Claim:
    diff = round(paper_t - paper_c, 6)
    return Claim(cid, "paired", source, text, tuple(treatment), tuple(control), metric, 1 if diff > 0 else -1, diff)


PAPER_CLAIMS: list[Claim] = [
    _paired("lovasz-improves-dice", "Table 2", "Lovász loss improves Dice over BCE", ("lovasz",), "dice", 0.588, 0.583),
    _paired("lovasz-improves-accuracy", "Table 2", "Lovász loss improves accuracy over BCE", ("lovasz",), "accuracy", 0.832, 0.828),
    _paired("aspp-improves-dice", "Table 3", "ASPP improves Dice", ("aspp",), "dice", 0.592, 0.583),
    _paired("aspp-improves-accuracy", "Table 3", "ASPP improves accuracy", ("aspp",), "accuracy", 0.838, 0.828),
    _paired("hypercolumns-improve-dice", "Table 4", "hypercolumns improve Dice slightly", ("hypercolumns",), "dice", 0.585, 0.583),
    _paired("hypercolumns-improve-accuracy", "Table 4", "hypercolumns improve accuracy", ("hypercolumns",), "accuracy", 0.842, 0.828),
    _paired("scse-improves-accuracy", "Table 5", "scSE improves accuracy", ("scse",), "accuracy", 0.836, 0.828),
    _paired("scse-lowers-dice", "Table 5", "scSE lowers Dice", ("scse",), "dice", 0.578, 0.583),
    # ``paper`` of a "best" claim: its margin over the runner-up row of Table 6.
    Claim("best-accuracy-is-hypercolumns", "best", "Table 6", "the best accuracy is hypercolumns alone",
          ("hypercolumns",), metric="accuracy", paper=round(0.842 - 0.840, 6),
          rivals=tuple(r for r in table6_rows() if r != ("hypercolumns",))),
    Claim("best-dice-is-aspp-hypercolumns", "best", "Table 6", "the best Dice is ASPP + hypercolumns",
          ("aspp", "hypercolumns"), metric="dice", paper=round(0.593 - 0.592, 6),
          rivals=tuple(r for r in table6_rows() if r != ("aspp", "hypercolumns"))),
    _paired("all-four-worse-than-aspp", "Table 6", "combining all four modifications does worse (Dice) than ASPP alone",
            ("lovasz", "aspp", "hypercolumns", "scse"), "dice", 0.574, 0.592, control=("aspp",)),
    Claim("aspp-is-800k-parameters-lighter", "parameters", "Section 4.2",
          "the ASPP model has about 800,000 fewer parameters than the baseline", ("aspp",), paper=800_000),
]


def table6_claims(paper: PaperNumbers) -> list[Claim]:
    """One absolute claim per Table 6 row and metric (32)."""
    claims = []
    for mods in table6_rows():
        values = paper.table6(mods)
        for metric in ("dice", "accuracy"):
            name = "+".join(mods) or "baseline"
            claims.append(Claim(f"table6-{name}-{metric}", "row", "Table 6", f"{name} reaches the paper's {metric}",
                                mods, metric=metric, paper=values[metric]))
    return claims


def per_image(runs: list[RunResult], metric: str) -> np.ndarray:
    """(seeds, images) per-image scores, seeds in ascending order."""
    ordered = sorted(runs, key=lambda r: r.seed)
    field_name = "dice_per_image" if metric == "dice" else "correct"
    return np.array([np.asarray(getattr(r, field_name), float) for r in ordered])


def per_seed(runs: list[RunResult], metric: str) -> dict[int, float]:
    return {r.seed: getattr(r, metric) for r in runs}


def _check_paired(a: list[RunResult], b: list[RunResult]) -> None:
    if [r.seed for r in sorted(a, key=lambda r: r.seed)] != [r.seed for r in sorted(b, key=lambda r: r.seed)]:
        raise ValueError("paired claims need the same seeds for both configurations")
    if a and b and a[0].val_ids != b[0].val_ids:
        raise ValueError("paired runs must score the same validation images in the same order")


def evaluate(
    claim: Claim,
    runs_for: RunsFor,
    *,
    alpha: float,
    base: ExperimentConfig,
    recorded: RecordedBaseline | None = None,
    use_paper_values: bool = True,
) -> ClaimStats:
    """Judge ``claim`` from the runs ``runs_for(mods)`` returns.

    ``row`` claims are equivalence tests against the paper's value when
    ``use_paper_values`` (the paper profile on the real data), otherwise against the
    profile's recorded baseline (INCONCLUSIVE, with a note, when none is recorded).
    """
    if claim.kind == "parameters":  # architecture only: no weights are needed
        untrained = base.replace_model(encoder_weights=None)
        base_count = count_parameters(build_model(untrained))
        treated = count_parameters(build_model(untrained.with_modifications(*claim.treatment)))
        fewer = base_count - treated
        verdict = Verdict.REPRODUCED if 600_000 <= fewer <= 1_000_000 else Verdict.CONTRADICTED
        return ClaimStats(verdict=verdict, seeds=0, estimate=float(fewer), ci_low=float(fewer), ci_high=float(fewer),
                          p_value=0.0 if verdict == Verdict.REPRODUCED else 1.0, alpha=alpha, paper=claim.paper,
                          note=f"{base_count:,} vs {treated:,} parameters (accepted 600,000 to 1,000,000 fewer)")
    treatment = runs_for(claim.treatment)
    if claim.kind == "paired":
        control = runs_for(claim.control)
        _check_paired(treatment, control)
        return paired_claim(per_image(treatment, claim.metric), per_image(control, claim.metric),
                            direction=claim.direction, alpha=alpha, paper_diff=claim.paper)
    if claim.kind == "best":
        rivals = {}
        for mods in claim.rivals:
            runs = runs_for(mods)
            _check_paired(treatment, runs)
            rivals["+".join(mods) or "baseline"] = per_image(runs, claim.metric)
        return best_claim(per_image(treatment, claim.metric), rivals, alpha=alpha, paper=claim.paper)
    if claim.kind == "row":
        values = np.array(list(per_seed(treatment, claim.metric).values()))
        if use_paper_values:
            return equivalence_claim(values, claim.paper, margin=EQUIVALENCE_MARGIN, alpha=alpha)
        name = "+".join(claim.treatment) or "baseline"
        if recorded is None or name not in recorded.configs:
            mean = float(values.mean())
            return ClaimStats(verdict=Verdict.INCONCLUSIVE, seeds=len(values), estimate=mean, ci_low=mean, ci_high=mean,
                              p_value=1.0, alpha=alpha, paper=claim.paper,
                              note="no recorded baseline for this profile and device (record one with --pb-update-baselines)")
        target = float(np.mean(list(recorded.values(name, claim.metric).values())))
        result = equivalence_claim(values, target, margin=EQUIVALENCE_MARGIN, alpha=alpha)
        result.note = f"against the recorded baseline ({target:.4f}); paper {claim.paper}. {result.note}"
        return result
    raise ValueError(f"unknown claim kind {claim.kind!r}")


def verdict_record(claim: Claim, stats: ClaimStats, *, synthetic: bool, profile: str, test: str = "") -> dict[str, Any]:
    """One verdict as plain data: what the plugin reports and the report's claims table holds."""
    return {
        "test": test,
        "claim": claim.id,
        "kind": claim.kind,
        "source": claim.source,
        "text": claim.text,
        "metric": claim.metric,
        "treatment": "+".join(claim.treatment) or "baseline",
        "synthetic": synthetic,
        "profile": profile,
        **stats.to_dict(),
    }
