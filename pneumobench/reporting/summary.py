"""The verdict table and the summary a session ends with: one row per claim (the paper's value,
the reference it was judged against, the estimate, interval, p and alpha, the seeds), a count
of the verdicts, and one line on what would teach more. ``pneumobench report`` writes the same
table into its Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pneumobench.judging import families as family_registry
from pneumobench.judging.claims import FLAGS
from pneumobench.judging.spending import DEFAULT_MAX_SEEDS
from pneumobench.judging.stats import MAX_SEEDS_FOR_POWER, Verdict
from pneumobench.judging.verdicts import SYNTHETIC_NOTE

__all__ = ["count_line", "next_step", "summary_lines", "verdict_table"]

NOT_RUN = Verdict.NOT_RUN.value


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _signed(value: Any) -> str:
    """A table's value: "+0.0090", or "+800,000" for a count; "" when there is none."""
    if not _finite(value):
        return ""
    return f"{value:+,.0f}" if abs(value) >= 1000 else f"{value:+.4f}"


def summary_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """The verdict summary pytest prints at the end: the profile and families, the synthetic-data
    note where it applies, and the verdict table."""
    from tabulate import tabulate

    registered = family_registry.FAMILIES  # looked up now: families register as claims are defined
    families = sorted({r["family"] for r in records if r.get("family") in registered})
    lines = [f"profile {records[0]['profile']}; " + "; ".join(registered[name].describe() for name in families)]
    plans = {_plan_line(r["extra"]["sequential"]) for r in records if "sequential" in r.get("extra", {})}
    lines.extend(sorted(plans))
    if any(r["synthetic"] for r in records):
        lines.append(f"NOTE: {SYNTHETIC_NOTE}")
    lines.append(tabulate(verdict_table(records), headers="keys", disable_numparse=True))
    lines.append(count_line(records))
    step = next_step(records)
    if step:
        lines.append(f"next: {step}")
    return lines


COUNTED = {
    "claim": (Verdict.REPRODUCED, Verdict.INCONCLUSIVE, Verdict.CONTRADICTED),
    "regression check": (Verdict.NO_REGRESSION, Verdict.REGRESSED, Verdict.CHANGED, Verdict.INCONCLUSIVE),
}


def count_line(records: Sequence[dict[str, Any]]) -> str:
    """ "44 claims: 2 REPRODUCED, 42 INCONCLUSIVE, 0 CONTRADICTED; 32 regression checks: ...":
    the verdicts alone (pytest's own count mixes in the protocol tests)."""
    parts = []
    for what, verdicts in COUNTED.items():
        group = [r for r in records if (r.get("kind") == "regression") == (what == "regression check")]
        if not group:
            continue
        counts = {v.value: sum(r["verdict"] == v.value for r in group) for v in (*verdicts, Verdict.NOT_RUN)}
        shown = [f"{n} {name}" for name, n in counts.items() if n or name != Verdict.NOT_RUN.value]
        parts.append(f"{len(group)} {what}{'' if len(group) == 1 else 's'}: {', '.join(shown)}")
    return "; ".join(parts)


def next_step(records: Sequence[dict[str, Any]]) -> str:
    """One line on what would teach more: the real data when these are synthetic, the seeds that
    would decide the open claims, a baseline to record when none could judge."""
    steps = []
    if any(r["synthetic"] for r in records):
        steps.append(
            "judge the paper on its data: pneumobench data prepare SIIM_DIR DIR, then "
            "pytest suites -m paper --pb-profile paper --pb-data DIR"
        )
    open_claims = [r for r in records if r["verdict"] == Verdict.INCONCLUSIVE.value]
    needed = [r["seeds_needed"] for r in open_claims if r.get("seeds_needed")]
    if needed:
        within = sum(n <= DEFAULT_MAX_SEEDS for n in needed)
        steps.append(
            f"{within} of {len(needed)} open claims would decide within {DEFAULT_MAX_SEEDS} seeds at the paper's "
            "effect sizes: --pb-seeds auto trains only the seeds each needs"
        )
    if any("--pb-update-baselines" in r.get("note", "") for r in records):
        steps.append('record a baseline: pytest suites -m "paper or regression" --pb-update-baselines')
    return "; or ".join(steps)


def _plan_line(look: dict[str, Any]) -> str:
    return (
        f"sequential (--pb-seeds auto): looks at {', '.join(map(str, look['looks']))} seeds, {look['spending']} "
        "alpha spending; each claim stops at the look that decides it, INCONCLUSIVE means undecided at the cap"
    )


FLAG_NAMES = tuple((flag, flag.replace("_", "-")) for flag in FLAGS)  # record key, the name the table prints


def verdict_table(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdict table: one row per claim, with the p of the test that decided, its alpha and
    the interval at the decision's level (1 - 2 alpha); the flags name a claim resting on a
    degenerate or unstable configuration or on epochs selected on the validation half.
    Regression checks add the smallest change either way that each detects with 80% power at
    its seeds and SDs."""
    rows = []
    detects = any("detectable_change" in r.get("extra", {}) for r in records)
    sequential = any("sequential" in r.get("extra", {}) for r in records)
    for r in records:
        judged = r["verdict"] != NOT_RUN
        ci = f"[{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]" if _finite(r["ci_low"]) else ""
        rows.append(
            {
                "claim": r["claim"],
                "source": r["source"],
                "paper": _signed(r.get("paper_value")),
                "reference": r.get("reference", "paper"),
                "target": _signed(r.get("paper")),
                "measured": _signed(r["estimate"]) if judged else "",
                "CI (1-2 alpha)": ci,
                "p": f"{r['p_value']:.3g}" if _finite(r["p_value"]) else "",
                "alpha": f"{r['alpha']:.3g}" if _finite(r["alpha"]) else "",
                "P(T>C)": "" if r.get("p_outperform") is None else f"{r['p_outperform']:.2f}",
                "seeds": r["seeds"],
                "seeds needed": _seeds_needed(r, judged),
                "flags": ", ".join(name for flag, name in FLAG_NAMES if r.get(flag)),
                "verdict": r["verdict"],
            }
        )
        if sequential:
            rows[-1]["look"] = _look(r)
        if detects:
            change = r.get("extra", {}).get("detectable_change")
            rows[-1]["detects"] = "" if change is None else f"{change:.3f}"
    return rows


def _look(record: dict[str, Any]) -> str:
    """A sequential claim's look: "2/4 decided", or "4/4 at cap" for one still open at the cap."""
    look = record.get("extra", {}).get("sequential")
    if not look:
        return ""
    state = "decided" if look["decided"] else ("at cap" if look["look"] == len(look["looks"]) else "stopped")
    return f"{look['look']}/{len(look['looks'])} {state}"


def _seeds_needed(record: dict[str, Any], judged: bool) -> str:
    """The power analysis' seed count; "> 1000" where a test ran and the analysis found none up
    to its limit; "none can decide" for a claim resting on a degenerate configuration; for a
    claim not run, what is missing."""
    if not judged:
        return record.get("note", "")
    raised = [name for flag, name in FLAG_NAMES if record.get(flag)]
    if raised and record.get("kind") != "regression":
        return f"none can decide ({raised[0]})"
    if record.get("seeds_needed"):
        return str(record["seeds_needed"])
    tested = isinstance(record.get("p_value"), float) and math.isfinite(record["p_value"])
    if tested and record.get("kind") in ("paired", "best") and record.get("paper"):
        return f"> {MAX_SEEDS_FOR_POWER}"
    return ""
