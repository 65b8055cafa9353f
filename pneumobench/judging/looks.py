"""Claims judged sequentially (``--pb-seeds auto``): seeds go only to the claims still open.

At each planned look (``sequential.planned_looks``: 5, 10, 20, 40 seeds) every open claim's
configurations get runs up to the look's seed count (``before_look`` trains them, several
at a time), then each open claim is judged on those seeds at the look's share of its
family's alpha (``sequential.design``). REPRODUCED or CONTRADICTED closes the claim, and so
does a degenerate configuration or a claim no test could judge (no recorded baseline): more
seeds do not repair them. A claim still open at the
cap is INCONCLUSIVE, "undecided at the cap". A claim's seeds are seeds 0 .. n-1 at a look of
n seeds, so the pytest session and ``pneumobench report --seeds auto`` judge the same runs.

Paired, best-of and Table 6 row claims are sequential. Regression checks compare with a
recorded baseline of fixed seeds and keep the profile's seeds; the parameter count has none.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pneumobench.core.results import RunResult
from pneumobench.experiment.config import config_name
from pneumobench.judging.baselines import RecordedBaseline
from pneumobench.judging.claims import FLAGS, Claim, claim_alpha, evaluate
from pneumobench.judging.spending import DEFAULT_MAX_SEEDS, SequentialDesign, design, planned_looks
from pneumobench.judging.stats import ClaimStats, Verdict, seeds_for_power

__all__ = ["SEQUENTIAL_KINDS", "SequentialPlan", "judge_sequentially"]

SEQUENTIAL_KINDS = ("paired", "best", "row")
Mods = tuple[str, ...]
RunsForSeeds = Callable[[Mods, tuple[int, ...]], list[RunResult]]
BeforeLook = Callable[[list[Mods], tuple[int, ...]], None]


@dataclass(frozen=True)
class SequentialPlan:
    """``--pb-seeds auto``: the seed cap and the spending function."""

    max_seeds: int = DEFAULT_MAX_SEEDS
    spending: str = "obrien-fleming"

    @property
    def looks(self) -> tuple[int, ...]:
        return planned_looks(self.max_seeds)

    def seeds(self, look: int) -> tuple[int, ...]:
        """The seeds judged at a look of ``look`` seeds: 0 .. look - 1."""
        return tuple(range(look))


def _reference_runs(claim: Claim, recorded: RecordedBaseline | None, use_paper_values: bool) -> int | None:
    """How many reference runs a row claim is compared with (None: a paired or best-of claim)."""
    if claim.kind != "row":
        return None
    if use_paper_values or recorded is None:
        return 1
    try:
        return max(1, len(recorded.values(config_name(claim.recorded_config), claim.metric)))
    except KeyError:
        return 1  # judged INCONCLUSIVE for the missing baseline: any design will do


def _missing(claim: Claim, runs_for: RunsForSeeds, seeds: tuple[int, ...]) -> str | None:
    """The first configuration of ``claim`` without a run for every seed of the look, or None."""
    for mods in claim.configs():
        have = {r.seed for r in runs_for(mods, seeds)}
        absent = [s for s in seeds if s not in have]
        if absent:
            return f"no runs of {config_name(mods)} with seeds {', '.join(map(str, absent[:5]))}" + (
                " ..." if len(absent) > 5 else ""
            )
    return None


def _at_look(stats: ClaimStats, plan: SequentialPlan, look: int, seq: SequentialDesign, family_alpha: float) -> dict:
    return {
        "look": look + 1,
        "looks": list(seq.looks),
        "seeds": seq.looks[look],
        "spending": plan.spending,
        "nominal_alpha": seq.nominal[look],
        "family_alpha": family_alpha,
        "decided": stats.verdict in (Verdict.REPRODUCED, Verdict.CONTRADICTED),
    }


def _closed(stats: ClaimStats) -> bool:
    """Whether more seeds cannot change the claim's verdict: decided, not run, resting on a
    degenerate or unstable configuration or on epochs selected on the validation half, or
    undecided without a test (no spread, no recorded baseline)."""
    decided = stats.verdict in (Verdict.REPRODUCED, Verdict.CONTRADICTED, Verdict.NOT_RUN)
    flagged = any(stats.extra.get(flag) for flag in FLAGS)
    return decided or flagged or math.isnan(stats.p_value)


def _at_cap(claim: Claim, stats: ClaimStats, family_alpha: float, cap: int) -> ClaimStats:
    """An open claim at the last look: INCONCLUSIVE at the cap, with the seeds a fixed design at
    the family's alpha would need at the measured spread."""
    sd = stats.extra.get("sd_per_seed")
    needed = stats.seeds_needed
    if sd and claim.paper is not None and claim.kind in ("paired", "best"):
        needed = seeds_for_power(claim.paper, sd, family_alpha)
    return replace(stats, seeds_needed=needed, note=f"undecided at the cap ({cap} seeds): {stats.note}".rstrip(": "))


@dataclass(frozen=True)
class _Judging:
    """What judging a claim at a look needs besides the claim, its seeds and its level."""

    runs_for: RunsForSeeds
    recorded: RecordedBaseline | None
    use_paper_values: bool
    profile: str

    def design(self, claim: Claim, plan: SequentialPlan) -> SequentialDesign:
        references = _reference_runs(claim, self.recorded, self.use_paper_values)
        return design(plan.looks, claim_alpha(claim), plan.spending, references)

    def judge(self, claim: Claim, seeds: tuple[int, ...], alpha: float) -> ClaimStats:
        """``claim`` on ``seeds`` at ``alpha``; NOT RUN when a configuration lacks some of them."""
        missing = _missing(claim, self.runs_for, seeds)
        if missing is not None:
            nan = float("nan")
            return ClaimStats(Verdict.NOT_RUN, 0, nan, nan, nan, nan, alpha, paper=claim.paper, note=missing)
        return evaluate(
            claim,
            lambda mods: self.runs_for(mods, seeds),
            recorded=self.recorded,
            use_paper_values=self.use_paper_values,
            profile=self.profile,
            alpha=alpha,
        )


def judge_sequentially(
    claims: Sequence[Claim],
    runs_for: RunsForSeeds,
    plan: SequentialPlan,
    *,
    recorded: RecordedBaseline | None = None,
    use_paper_values: bool = True,
    profile: str,
    before_look: BeforeLook | None = None,
) -> dict[str, ClaimStats]:
    """Each sequential claim's verdict (by claim id), judged look by look as the module says.

    ``runs_for(mods, seeds)``: the stored runs of a configuration with those seeds (missing
    seeds simply absent: such a claim is NOT RUN, naming them). ``before_look(configs, seeds)``:
    called before each look with the open claims' configurations, to train what is missing.
    """
    judging = _Judging(runs_for, recorded, use_paper_values, profile)
    open_claims = [claim for claim in claims if claim.kind in SEQUENTIAL_KINDS]
    designs = {claim.id: judging.design(claim, plan) for claim in open_claims}
    results: dict[str, ClaimStats] = {}
    for look, count in enumerate(plan.looks):
        if not open_claims:
            break
        seeds = plan.seeds(count)
        if before_look is not None:
            before_look(sorted({mods for claim in open_claims for mods in claim.configs()}), seeds)
        still_open = []
        for claim in open_claims:
            stats = judging.judge(claim, seeds, designs[claim.id].nominal[look])
            family_alpha = claim_alpha(claim)
            stats.extra["sequential"] = _at_look(stats, plan, look, designs[claim.id], family_alpha)
            if _closed(stats):
                results[claim.id] = stats
            elif look == len(plan.looks) - 1:
                results[claim.id] = _at_cap(claim, stats, family_alpha, count)
            else:
                still_open.append(claim)
        open_claims = still_open
    return results
