"""Claims as data, and how each is judged from runs (the machinery; a paper's own claims live
in its package, ``pneumobench.papers.viel_orhan_2020.claims``).

A claim names the configurations it needs (as tuples of modification names), how to compare
them and the family whose alpha it spends (``pneumobench.judging.families``); ``evaluate`` turns runs
into ``stats.ClaimStats`` with the judge its kind names (``JUDGES``, a registry). Before any
test, the runs are checked: distinct seeds, paired seeds and images, finite scores, and no
degenerate configuration (a constant classifier, every mask empty or full, a metric identical
on every seed), no unstable one (a seed far from the others, ``stability``) and, for paired and
best-of claims, no arm whose epochs were selected on the validation half it reports: a claim
that rests on one is INCONCLUSIVE with that reason. A researcher's new
claim is one more ``Claim`` (see the docs' "Adding a modification").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pneumobench.core.registry import Registry
from pneumobench.core.results import RunResult
from pneumobench.experiment.config import config_name
from pneumobench.experiment.profiles import get_profile
from pneumobench.judging.baselines import RecordedBaseline, mismatch
from pneumobench.judging.families import EQUIVALENCE_MARGIN, member_alpha
from pneumobench.judging.stability import outliers
from pneumobench.judging.stats import (
    ClaimStats,
    Verdict,
    accuracy_variance_floor,
    best_claim,
    check_finite,
    equivalence_claim,
    paired_claim,
    regression_check,
    undecided,
)

__all__ = [
    "COMPARED_KINDS",
    "FLAGS",
    "JUDGES",
    "METRICS",
    "Claim",
    "JudgeInputs",
    "Mods",
    "RunsFor",
    "accuracy_images",
    "claim_alpha",
    "config_name",
    "degenerate_reasons",
    "evaluate",
    "per_image",
    "per_seed",
    "run_flags",
    "seedwise_regression",
    "selected_on_validation",
    "unstable_differences",
    "unstable_reasons",
    "verdict_record",
]

Mods = tuple[str, ...]
COMPARED_KINDS = ("paired", "best")  # claims comparing configurations: per-seed differences, selection flags
# Why runs cannot be evidence, as ``evaluate`` records them in a claim's ``extra`` (first raised, first said).
FLAGS = ("degenerate", "unstable", "selected_on_validation")
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


def unstable_reasons(runs: list[RunResult], metric: str, profile: str) -> list[str]:
    """The seeds of one configuration whose ``metric`` lies far from the other seeds'
    (``pneumobench.judging.stability``), each named with its value and robust z-score. The unit is
    at least the profile's ``seed_sd`` and, for an accuracy, its binomial SD over the images."""
    if not runs:
        return []
    values = per_seed(runs, metric)
    floor = get_profile(profile).seed_sd(metric)
    images = accuracy_images(runs, metric)
    if images:
        floor = max(floor, float(np.sqrt(accuracy_variance_floor(float(np.mean(list(values.values()))), images))))
    return [f"{runs[0].config_name} {outlier.describe(metric)}" for outlier in outliers(values, floor)]


def unstable_differences(claim: Claim, runs: dict[Mods, list[RunResult]], profile: str) -> list[str]:
    """The seeds at which a paired or best-of claim's per-seed difference (treatment minus each
    compared configuration) lies far from the other seeds' differences: one arm collapsed or
    lagged on that seed. Under common random numbers a difference varies far less than either
    arm, so a collapse too small to stand out in its arm's spread stands out here. The unit is
    at least the profile's ``seed_sd``, as for an arm."""
    if claim.kind not in COMPARED_KINDS:
        return []
    treatment = per_seed(runs[claim.treatment], claim.metric)
    floor = get_profile(profile).seed_sd(claim.metric)
    reasons = []
    for mods in claim.rivals if claim.kind == "best" else (claim.control,):
        other = per_seed(runs[mods], claim.metric)
        differences = {seed: treatment[seed] - other[seed] for seed in treatment if seed in other}
        label = f"{config_name(claim.treatment)} - {config_name(mods)}"
        reasons += [f"{label} {o.describe(claim.metric + ' difference')}" for o in outliers(differences, floor)]
    return reasons


SELECTING_ON_VALIDATION = "best-val"


def selected_on_validation(runs: list[RunResult]) -> bool:
    """Whether ``runs`` report an epoch chosen on the validation half they report (``best-val``,
    as trained or as ``selection.reselect`` re-read them)."""
    return any(run.config.get("epoch_selection") == SELECTING_ON_VALIDATION for run in runs)


def _check_paired(a: list[RunResult], b: list[RunResult]) -> None:
    if [r.seed for r in _ordered(a)] != [r.seed for r in _ordered(b)]:
        raise ValueError("paired claims need the same seeds for both configurations")
    if len({tuple(r.val_ids) for r in a + b}) > 1:
        raise ValueError("paired runs must score the same validation images in the same order")


@dataclass(frozen=True)
class JudgeInputs:
    """What a judge needs besides the claim: the runs, the recorded baseline, the profile and
    the level (``evaluate`` builds it; a registered judge receives it)."""

    runs_for: RunsFor
    recorded: RecordedBaseline | None
    use_paper_values: bool
    profile: str
    alpha: float | None  # a sequential look's share of the family's alpha; None: the family's

    def level(self, claim: Claim) -> float:
        """The alpha of ``claim``'s test here."""
        return claim_alpha(claim) if self.alpha is None else self.alpha


def _judge_paired(claim: Claim, ctx: JudgeInputs) -> ClaimStats:
    treatment, control = ctx.runs_for(claim.treatment), ctx.runs_for(claim.control)
    _check_paired(treatment, control)
    return paired_claim(
        per_image(treatment, claim.metric),
        per_image(control, claim.metric),
        direction=claim.direction,
        alpha=ctx.level(claim),
        paper_diff=claim.paper,
    )


def _judge_best(claim: Claim, ctx: JudgeInputs) -> ClaimStats:
    treatment = ctx.runs_for(claim.treatment)
    rivals = {}
    for mods in claim.rivals:
        runs = ctx.runs_for(mods)
        _check_paired(treatment, runs)
        rivals[config_name(mods)] = per_image(runs, claim.metric)
    return best_claim(per_image(treatment, claim.metric), rivals, alpha=ctx.level(claim), paper=claim.paper)


def _recorded_values(claim: Claim, ctx: JudgeInputs, runs: list[RunResult]) -> dict[int, float] | str:
    """The recorded baseline's per-seed values of the claim's configuration and metric, or why
    that baseline cannot judge these runs (none recorded, or a field differs)."""
    if ctx.recorded is None:
        return "no recorded baseline for this profile and device (record one with --pb-update-baselines)"
    name = config_name(claim.recorded_config)
    same_config = claim.recorded_config == claim.treatment  # a changed configuration is compared on purpose
    return mismatch(ctx.recorded, runs, name, profile=ctx.profile, check_config=same_config) or ctx.recorded.values(
        name, claim.metric
    )


def _judge_row(claim: Claim, ctx: JudgeInputs) -> ClaimStats:
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
    return replace(result, extra={**result.extra, "reference": _recorded_reference(recorded, runs)})


def _recorded_reference(recorded: dict[int, float], runs: list[RunResult]) -> str:
    """Which recorded runs a claim is judged against: today's seeds, others, or a set holding
    today's and more (a baseline's power-sized regression seeds, against a row's 3)."""
    today = {run.seed for run in runs}
    if set(recorded) == today:
        return "recorded baseline, same seeds"
    shared = len(today & set(recorded))
    if shared:
        return f"recorded baseline, {len(recorded)} seeds ({shared} of them today's)"
    return f"recorded baseline, {len(recorded)} other seeds"


def _judge_regression(claim: Claim, ctx: JudgeInputs) -> ClaimStats:
    """Today's per-seed values against the recorded ones, at the profile's margin: paired by
    seed when today's seeds are the recorded seeds (the same seed on the same code is the same
    run), otherwise Welch, unpaired (an A/A control with other seeds)."""
    runs = ctx.runs_for(claim.treatment)
    today = per_seed(runs, claim.metric)
    alpha = ctx.level(claim)
    recorded = _recorded_values(claim, ctx, runs)
    if isinstance(recorded, str):
        return undecided(recorded, seeds=len(today), estimate=float(np.mean(list(today.values()))), alpha=alpha)
    margin = get_profile(ctx.profile).regression_margin(claim.metric, claim.recorded_config)
    result = seedwise_regression(
        today, recorded, margin=margin, alpha=alpha, images=accuracy_images(runs, claim.metric)
    )
    return replace(result, extra={**result.extra, "reference": _recorded_reference(recorded, runs)})


def seedwise_regression(
    today: dict[int, float], recorded: dict[int, float], *, margin: float, alpha: float, images: int | None = None
) -> ClaimStats:
    """``regression_check`` of per-seed values: paired by seed when both have the same seeds
    (the same seed on the same code is the same run), otherwise Welch, unpaired. ``images``: an
    accuracy's validation images per run (``accuracy_images``), for its binomial variance floor."""
    paired = set(recorded) == set(today)
    baseline = np.array([recorded[seed] for seed in (today if paired else sorted(recorded))])
    current = np.array(list(today.values()))
    return regression_check(current, baseline, margin=margin, alpha=alpha, paired=paired, images=images)


def accuracy_images(runs: list[RunResult], metric: str) -> int | None:
    """The validation images per run when ``metric`` is the accuracy (whose per-seed variance has
    a binomial floor in the regression check), else None."""
    return len(runs[0].correct) if metric == "accuracy" and runs else None


Judge = Callable[[Claim, JudgeInputs], ClaimStats]
JUDGES: Registry[Judge] = Registry("claim kind")  # a claim's ``kind`` names its judge
for _kind, _judge in {
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
    ``alpha``: a sequential look's level, ``pneumobench.judging.looks``).

    ``row`` claims are equivalence tests against the paper's value when
    ``use_paper_values`` (the paper profile on the real data), otherwise against the
    ``recorded`` baseline of ``profile`` (INCONCLUSIVE, naming the field, when none is
    recorded or it does not match the runs). A claim that rests on a degenerate
    configuration, on an unstable one (a seed far from the others) or, for a paired or best-of
    claim, on epochs selected on the validation half is INCONCLUSIVE with the reason, whatever
    its test said; except a regression check, where a run that degenerated since the baseline
    was recorded is what the check must catch: its test decides, and the reasons are recorded
    beside the verdict.
    """
    judge = JUDGES.get(claim.kind)
    runs = {mods: runs_for(mods) for mods in claim.configs()}  # fetched once: judged and checked below
    result = judge(claim, JudgeInputs(runs.__getitem__, recorded, use_paper_values, profile, alpha))
    return _flagged(claim, result, runs, profile)


def _flagged(claim: Claim, result: ClaimStats, runs: dict[Mods, list[RunResult]], profile: str) -> ClaimStats:
    """``result`` with the flags of the runs it rests on: ``degenerate`` configurations, ``unstable``
    seeds, and arms ``selected_on_validation`` (paired and best-of claims). A flagged claim is
    INCONCLUSIVE with the first reason (more seeds cannot decide it); a regression check keeps its
    verdict, since a run that degenerated or collapsed since the record is what it must catch."""
    flags = {
        "degenerate": [reason for found in runs.values() for reason in degenerate_reasons(found, claim.metric)],
        "unstable": [reason for found in runs.values() for reason in unstable_reasons(found, claim.metric, profile)]
        + unstable_differences(claim, runs, profile),
        "selected_on_validation": [
            config_name(mods)
            for mods, found in runs.items()
            if claim.kind in COMPARED_KINDS and selected_on_validation(found)
        ],
    }
    raised = {flag: reasons for flag, reasons in flags.items() if reasons}
    if not raised:
        return result
    extra = {**result.extra, **raised}
    flag, reasons = next(iter(raised.items()))
    if claim.kind == "regression":
        return replace(result, note=f"{result.note}; {flag}: {reasons[0]}", extra=extra)
    return replace(
        result,
        verdict=Verdict.INCONCLUSIVE,
        note=_FLAG_NOTES[flag](reasons),
        seeds_needed=None,  # more seeds of a degenerate or unstable configuration, or of selected epochs, cannot decide
        extra=extra,
    )


_FLAG_NOTES: dict[str, Callable[[list[str]], str]] = {
    "degenerate": lambda reasons: f"rests on a degenerate configuration: {reasons[0]}",
    "unstable": lambda reasons: f"rests on an unstable configuration: {reasons[0]}",
    "selected_on_validation": lambda names: (
        f"selected-on-validation: {', '.join(names)} report the epoch chosen on the validation half they "
        "report; this reproduces the authors' procedure, not evidence about the effect"
    ),
}


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
        **{flag: stats.extra.get(flag, []) for flag in FLAGS},
        **stats.to_dict(),
        "paper_value": claim.paper,  # the paper's number; ``paper`` is the target the claim was judged against
        "reference": stats.extra.get("reference", "paper"),  # where the target comes from
    }
