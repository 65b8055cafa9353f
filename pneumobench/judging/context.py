"""The one judging context: claims judged from runs, at fixed seeds or look by look.

A ``JudgingContext`` holds everything a verdict depends on besides the claim and its runs:
the profile, the recorded baseline of that profile and device type, whether the data are
synthetic (then a Table 6 row is judged against the recorded baseline, never the paper's
value) and the sequential plan. The pytest session and ``pneumobench report`` both build
one with ``JudgingContext.load`` and judge through it, so they cannot disagree on a verdict;
nothing else assembles this bundle.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pneumobench.core.results import RunResult
from pneumobench.experiment.config import config_name
from pneumobench.experiment.profiles import Profile
from pneumobench.judging.baselines import RecordedBaseline, RecordedChoice, choose_recorded
from pneumobench.judging.claims import Claim, Mods, RunsFor, evaluate, verdict_record
from pneumobench.judging.looks import SEQUENTIAL_KINDS, BeforeLook, RunsForSeeds, SequentialPlan, judge_sequentially
from pneumobench.judging.stats import ClaimStats, Verdict

__all__ = ["JudgingContext", "not_run_stats", "runs_by_config"]


def not_run_stats(claim: Claim, reason: str) -> ClaimStats:
    """The stats of a claim that could not be judged: NOT RUN, saying what is missing."""
    nan = float("nan")
    return ClaimStats(Verdict.NOT_RUN, 0, nan, nan, nan, nan, nan, paper=claim.paper, note=reason)


@dataclass(frozen=True)
class JudgingContext:
    """How this profile's claims are judged. ``runs_for(mods)``: the runs a fixed-seed claim is
    judged on; ``runs_for_seeds(mods, seeds)``: a sequential look's runs (missing seeds absent);
    ``before_look(configs, seeds)``: trains what a look needs (None: judge what is there)."""

    profile: Profile
    recorded: RecordedBaseline | None
    synthetic: bool
    runs_for: RunsFor
    runs_for_seeds: RunsForSeeds
    sequential: SequentialPlan | None = None
    before_look: BeforeLook | None = None
    baseline: RecordedChoice | None = None  # where ``recorded`` came from
    # The seeds of the baseline's regression check when they are not the other claims' (the
    # profile's ``regression_seeds``); None: ``runs_for``'s.
    regression_seeds: tuple[int, ...] | None = None

    @classmethod
    def load(
        cls,
        profile: Profile,
        *,
        baselines_dir: str | os.PathLike,
        device_type: str,
        synthetic: bool,
        runs_for: RunsFor,
        runs_for_seeds: RunsForSeeds,
        sequential: SequentialPlan | None = None,
        before_look: BeforeLook | None = None,
        judged_with: tuple[str, str | None] | None = None,
        explicit: bool = False,
        regression_seeds: tuple[int, ...] | None = None,
    ) -> JudgingContext:
        """The context with the recorded baseline of ``profile`` and ``device_type`` (``cpu``,
        ``cuda``) from ``baselines_dir``, when one is recorded, or the one a session judged the
        store with (``judged_with``, see ``baselines.choose_recorded``)."""
        choice = choose_recorded(
            Path(baselines_dir), profile.name, device_type, judged_with=judged_with, explicit=explicit
        )
        return cls(
            profile,
            choice.recorded,
            synthetic,
            runs_for,
            runs_for_seeds,
            sequential,
            before_look,
            choice,
            regression_seeds,
        )

    @property
    def use_paper_values(self) -> bool:
        """Table 6 rows against the paper's values: a paper-numbers profile on real data."""
        return self.profile.paper_numbers and not self.synthetic

    def is_sequential(self, claim: Claim) -> bool:
        """Whether ``claim`` is judged look by look here (``--pb-seeds auto`` and a sequential kind)."""
        return self.sequential is not None and claim.kind in SEQUENTIAL_KINDS

    def with_runs(self, runs_for: RunsFor) -> JudgingContext:
        """This context judging other runs (the sensitivity suite's planted-bug runs)."""
        return replace(self, runs_for=runs_for, regression_seeds=None)

    def claim_runs(self, claim: Claim) -> RunsFor:
        """Where ``claim``'s runs come from: ``runs_for``, except that the baseline's regression
        check takes its runs of ``regression_seeds``."""
        seeds = self.regression_seeds
        if claim.kind != "regression" or claim.treatment != () or seeds is None:
            return self.runs_for
        return lambda mods: self.runs_for_seeds(mods, seeds) if mods == () else self.runs_for(mods)

    def judge(self, claim: Claim) -> ClaimStats:
        """``claim`` at its family's alpha on its runs (``claim_runs``)."""
        return evaluate(
            claim,
            self.claim_runs(claim),
            recorded=self.recorded,
            use_paper_values=self.use_paper_values,
            profile=self.profile.name,
        )

    def judge_sequentially(self, claims: Sequence[Claim]) -> dict[str, ClaimStats]:
        """The sequential ones of ``claims``, judged together look by look (by claim id)."""
        if self.sequential is None:
            raise ValueError("judge_sequentially needs a sequential plan (--pb-seeds auto)")
        return judge_sequentially(
            claims,
            self.runs_for_seeds,
            self.sequential,
            recorded=self.recorded,
            use_paper_values=self.use_paper_values,
            profile=self.profile.name,
            before_look=self.before_look,
        )

    def record(self, claim: Claim, stats: ClaimStats, *, test: str = "") -> dict[str, Any]:
        """One verdict as plain data, as the plugin reports it and the report lists it."""
        return verdict_record(claim, stats, synthetic=self.synthetic, profile=self.profile.name, test=test)

    def missing(self, claim: Claim) -> str | None:
        """Why ``claim`` cannot be judged on the runs there are (a configuration without runs, or
        configurations run with different seeds), or None."""
        runs = {mods: self.claim_runs(claim)(mods) for mods in claim.configs()}
        absent: list[Mods] = [mods for mods, found in runs.items() if not found]
        if absent:
            return "no runs of " + ", ".join(config_name(m) for m in absent)
        if len({tuple(r.seed for r in found) for found in runs.values()}) > 1:
            return "its configurations were run with different seeds"
        return None

    def judge_available(self, claims: Sequence[Claim]) -> list[dict[str, Any]]:
        """Every claim judged on the runs there are (the report): sequentially where the plan
        says so, NOT RUN where runs are missing, otherwise at its family's alpha."""
        looked = self.judge_sequentially(claims) if self.sequential is not None else {}
        records = []
        for claim in claims:
            if claim.id in looked:
                stats = looked[claim.id]
            else:
                reason = self.missing(claim)
                stats = not_run_stats(claim, reason) if reason is not None else self.judge(claim)
            records.append(self.record(claim, stats))
        return records


def runs_by_config(runs: Sequence[RunResult], config_key: Callable[[Mods], str]) -> tuple[RunsFor, RunsForSeeds]:
    """``runs_for`` and ``runs_for_seeds`` over a fixed set of runs (a store group): every run
    of a configuration, seeds ascending, or those of the given seeds."""
    by_key: dict[str, list[RunResult]] = {}
    for run in runs:
        by_key.setdefault(run.config_key, []).append(run)

    def runs_for(mods: Mods) -> list[RunResult]:
        return sorted(by_key.get(config_key(mods), []), key=lambda r: r.seed)

    def runs_for_seeds(mods: Mods, seeds: tuple[int, ...]) -> list[RunResult]:
        return [r for r in runs_for(mods) if r.seed in seeds]

    return runs_for, runs_for_seeds
