"""What a verdict means for a test run, and its one-line summary, shared by pytest and reports.

``outcome`` maps a verdict to pass, fail or xfail: REPRODUCED and NO REGRESSION pass;
REGRESSED and CHANGED fail (a significant rise beyond the margin is a leak, a metric bug, or
an improvement that must be re-recorded); CONTRADICTED fails when the data are evidence about the paper (real data,
or the ``paper`` profile) and is an xfail on synthetic data; INCONCLUSIVE is an xfail that
says how many seeds would decide, or a failure with ``strict``.
"""

from __future__ import annotations

import enum
import math
from typing import Any

from pneumobench.judging.stats import Verdict

__all__ = ["SYNTHETIC_NOTE", "Outcome", "outcome", "outcome_message", "verdict_line"]

SYNTHETIC_NOTE = "synthetic data: exercises the pipeline, not evidence about the paper"


class Outcome(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    XFAIL = "xfail"


def outcome(verdict: Verdict, *, evidence: bool, strict: bool) -> Outcome:
    """The test outcome of ``verdict``; ``evidence``: the runs can confirm or refute the paper."""
    if verdict in (Verdict.REPRODUCED, Verdict.NO_REGRESSION):
        return Outcome.PASS
    if verdict in (Verdict.REGRESSED, Verdict.CHANGED) or (verdict == Verdict.CONTRADICTED and evidence):
        return Outcome.FAIL
    return Outcome.FAIL if strict else Outcome.XFAIL


FAILS_WITHOUT_STRICT = (Verdict.CONTRADICTED, Verdict.REGRESSED, Verdict.CHANGED)


def outcome_message(record: dict[str, Any], verdict: Verdict, *, strict: bool) -> str:
    """The text a test ends with: the verdict line, and ``(--pb-strict)`` when only strictness
    turned the verdict into a failure. The synthetic-data note is said once, in the summary."""
    line = verdict_line(record)
    if strict and verdict not in FAILS_WITHOUT_STRICT and outcome(verdict, evidence=True, strict=True) == Outcome.FAIL:
        line += " (--pb-strict)"
    return line


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _target(record: dict[str, Any]) -> str:
    """ " (target +0.9198 from the recorded baseline, same seeds; paper +0.5860)": the value the
    estimate is judged against, where it comes from when not the paper, and then the paper's."""
    target, reference = record.get("paper"), record.get("reference", "paper")
    if target is None:
        return ""
    if reference == "paper":
        return f" (target {target:+.4f})"
    paper = record.get("paper_value")
    return f" (target {target:+.4f} from the {reference}" + ("" if paper is None else f"; paper {paper:+.4f}") + ")"


def verdict_line(record: dict[str, Any]) -> str:
    """One line: verdict, claim, measured vs target, the deciding p and its test, seeds, why."""
    text = f"{record['verdict']}: {record['text'] or record['claim']}: measured {record['estimate']:+.4f}"
    text += _target(record)
    if _number(record.get("p_value")):
        text += f", p={record['p_value']:.3g}"
        if record.get("decided_by"):
            text += f" ({record['decided_by']})"
        text += f" at alpha={record['alpha']:.3g}"
    text += f", {record['seeds']} seeds"
    needed = record.get("seeds_needed")
    if record["verdict"] == Verdict.INCONCLUSIVE.value and needed:
        text += f"; about {needed} seeds would decide at the paper's effect size"
    if record.get("note"):
        text += f"; {record['note']}"
    return text
