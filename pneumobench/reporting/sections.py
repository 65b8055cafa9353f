"""The report's protocol sections: what epoch selection does to the stored runs, the paper's claims
judged under each selection rule, Table 6 under each registered protocol side by side, and the
authors' own runs.

Everything here reads stored results (the per-epoch, per-image scores every run keeps), so a
selection rule is judged without retraining, on the same images at the epoch the rule picks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats as st

from pneumobench.core.results import RunResult
from pneumobench.experiment.config import config_name
from pneumobench.judging.baselines import load_paper, paper_path
from pneumobench.judging.claims import COMPARED_KINDS
from pneumobench.papers.viel_orhan_2020.claims import PAPER_CLAIMS
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
from pneumobench.reporting.authors_runs import (
    AUTHORS_RULES,
    claim_signs,
    load_authors_runs,
    selection_effects,
    table6_by_rule,
)
from pneumobench.training.selection import reselect, select_epoch

__all__ = [
    "authors_section",
    "claims_by_rule",
    "format_measured",
    "mean_t_interval",
    "protocol_markdown",
    "protocol_table6",
    "selection_table",
]


def format_measured(entry: dict[str, Any]) -> str:
    """ "0.919 [0.906, 0.933]": a Table 6 entry's mean and 95% interval (the mean alone without one)."""
    if math.isfinite(entry["ci_low"]):
        return f"{entry['mean']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
    return f"{entry['mean']:.3f}"


def mean_t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (not clipped; NaN bounds with fewer than two values)."""
    data = np.asarray(values, float)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, float("nan"), float("nan")
    half = float(st.t.ppf(0.975, len(data) - 1) * data.std(ddof=1) / math.sqrt(len(data)))
    return mean, mean - half, mean + half


def _rules_of(runs: list[RunResult]) -> tuple[str, ...]:
    heldout = all(any(e.get("heldout_dice") is not None for e in r.curves) for r in runs)
    return ("last", "best-val", "best-heldout") if heldout else ("last", "best-val")


def selection_table(by_config: dict[str, list[RunResult]]) -> list[dict[str, Any]]:
    """Per configuration: each rule's mean reported Dice and accuracy over seeds, and the selection
    effect (best-validation epoch minus last epoch) per seed, paired image by image from the stored
    per-epoch scores, with its mean and 95% t-interval. Configurations stored without per-epoch
    scores are left out."""
    rows = []
    for name, runs in by_config.items():
        if any(r.per_epoch() is None for r in runs):
            continue
        row: dict[str, Any] = {"configuration": name, "seeds": [r.seed for r in runs]}
        for rule in _rules_of(runs):
            chosen = [reselect(r, rule) for r in runs]
            row[rule] = {
                "dice": float(np.mean([r.dice for r in chosen])),
                "accuracy": float(np.mean([r.accuracy for r in chosen])),
                "epochs": [r.reported_epoch for r in chosen],
            }
        for metric in ("dice", "accuracy"):
            mean, low, high = mean_t_interval([_paired_effect(r, metric) for r in runs])
            row[f"effect_{metric}"] = {"mean": mean, "ci_low": low, "ci_high": high}
        rows.append(row)
    return rows


def _paired_effect(run: RunResult, metric: str) -> float:
    """Mean over the same images of (best-val epoch minus last epoch) for one run."""
    scores = run.per_epoch()
    assert scores is not None
    values = scores.dice if metric == "dice" else scores.correct.astype(float)
    best, last = (scores.row(select_epoch(run.curves, rule)) for rule in ("best-val", "last"))
    return float(np.mean(values[best].astype(float) - values[last].astype(float)))


Judge = Callable[[list[RunResult]], list[dict[str, Any]]]
Table = Callable[[list[dict[str, Any]]], list[str]]


def claims_by_rule(runs: list[RunResult], judge: Judge) -> list[dict[str, Any]]:
    """The paired and best claims judged with every run re-read at the epoch each rule picks:
    ``judge(runs) -> records`` is the report's own judging (``report.judge_group`` on those runs)."""
    rules = _rules_of(runs)
    judged = {rule: {r["claim"]: r for r in judge([reselect(run, rule) for run in runs])} for rule in rules}
    rows = []
    for claim in (c for c in PAPER_CLAIMS if c.kind in COMPARED_KINDS):
        row: dict[str, Any] = {"claim": claim.id, "text": claim.text, "paper": claim.paper}
        for rule in rules:
            record = judged[rule][claim.id]
            row[rule] = {"verdict": record["verdict"], "estimate": record.get("estimate")}
        rows.append(row)
    return rows


def protocol_table6(
    judged: Sequence[tuple[str, dict[str, list[RunResult]], list[dict[str, Any]]]], baselines_dir: str | os.PathLike
) -> dict[str, Any] | None:
    """Table 6 and the compared claims under each protocol side by side: ``judged`` holds, per
    profile that made runs in the store, its name, its runs per configuration and its verdicts.
    None with fewer than two protocols."""
    if len(judged) < 2:
        return None
    paper = load_paper(paper_path(baselines_dir))
    table = []
    for mods in table6_rows():
        name = config_name(mods)
        row: dict[str, Any] = {"configuration": name, "paper": paper.table6(mods)}
        for profile, by_config, _records in judged:
            runs = by_config.get(name, [])
            row[profile] = (
                {
                    "dice": float(np.mean([r.dice for r in runs])),
                    "accuracy": float(np.mean([r.accuracy for r in runs])),
                    "seeds": len(runs),
                }
                if runs
                else None
            )
        table.append(row)
    claims = []
    for claim in (c for c in PAPER_CLAIMS if c.kind in COMPARED_KINDS):
        row = {"claim": claim.id, "paper": claim.paper}
        for profile, _by_config, records in judged:
            record = next((r for r in records if r["claim"] == claim.id), None)
            row[profile] = record["verdict"] if record else ""
        claims.append(row)
    return {"profiles": [profile for profile, _, _ in judged], "table6": table, "claims": claims}


def authors_section(baselines_dir: str | os.PathLike) -> dict[str, Any]:
    """The authors' 16 runs judged as one run each can be: exact numbers and signs."""
    runs = load_authors_runs()
    return {
        "table6": table6_by_rule(runs, load_paper(paper_path(baselines_dir))),
        "selection_effects": selection_effects(runs),
        "claim_signs": claim_signs(runs),
        "curves": {name: list(run.curves) for name, run in runs.items()},
    }


def _pair(entry: dict[str, Any]) -> str:
    """``Dice / accuracy`` of a table entry, three decimals each."""
    return f"{entry['dice']:.3f} / {entry['accuracy']:.3f}"


def _signed(value: float | None, digits: int = 3) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:+.{digits}f}"


def protocol_markdown(data: dict[str, Any]) -> list[str]:
    """The Markdown lines of the protocol sections present in the report's ``data``."""
    from tabulate import tabulate

    def table(rows: list[dict[str, Any]]) -> list[str]:
        return [tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True), ""]

    lines: list[str] = []
    if data.get("selection"):
        lines += ["## Epoch selection", "", SELECTION_TEXT, ""]
        lines += table([_selection_row(row) for row in data["selection"]])
    if data.get("claims_by_rule"):
        rules = [k for k in data["claims_by_rule"][0] if k not in ("claim", "text", "paper")]
        lines += ["### The paper's claims under each selection rule", "", CLAIMS_BY_RULE_TEXT, ""]
        lines += table(
            [
                {"claim": r["claim"], "paper": _signed(r["paper"], 4)}
                | {f"{rule}": f"{r[rule]['verdict']} ({_signed(r[rule]['estimate'], 4)})" for rule in rules}
                for r in data["claims_by_rule"]
            ]
        )
    if data.get("protocols"):
        lines += _protocols_markdown(data["protocols"], table)
    if data.get("authors_runs"):
        lines += _authors_markdown(data["authors_runs"], table)
    return lines


SELECTION_TEXT = (
    "Each run keeps every validated epoch's per-image scores, so each rule is applied to the same runs "
    "without retraining: last epoch; best-val, the epoch with the best validation Dice, chosen on the half "
    "that is reported (the authors' rule: optimistic); best-heldout, chosen on a held-out slice of the "
    "training half (where the runs scored one). Effect: best-val minus last, per seed on the same images, "
    "mean [95% t-interval over seeds]."
)
CLAIMS_BY_RULE_TEXT = (
    "Each claim judged as the suites judge it, with every run read at the epoch the rule picks: verdict "
    "(estimate). A claim that holds under best-val only rests on selecting the epoch on the validation half."
)


def _selection_row(row: dict[str, Any]) -> dict[str, str]:
    out = {"configuration": row["configuration"], "seeds": str(len(row["seeds"]))}
    for rule in ("last", "best-val", "best-heldout"):
        if rule in row:
            out[f"{rule} Dice / acc"] = _pair(row[rule])
    for metric in ("dice", "accuracy"):
        effect = row[f"effect_{metric}"]
        interval = f" [{effect['ci_low']:+.3f}, {effect['ci_high']:+.3f}]" if np.isfinite(effect["ci_low"]) else ""
        out[f"effect on {metric}"] = f"{effect['mean']:+.3f}{interval}"
    return out


def _protocols_markdown(protocols: dict[str, Any], table: Table) -> list[str]:
    names = protocols["profiles"]
    lines = [
        "## Table 6 under each protocol",
        "",
        f"Mean over seeds of the reported Dice / accuracy under each profile in this store ({', '.join(names)}); "
        "docs/protocol.md lists what each profile sets.",
        "",
    ]
    rows = []
    for row in protocols["table6"]:
        out = {
            "configuration": row["configuration"],
            "paper": _pair(row["paper"]),
        }
        for name in names:
            entry = row[name]
            out[name] = "" if entry is None else f"{_pair(entry)} ({entry['seeds']})"
        rows.append(out)
    lines += table(rows)
    lines += ["Verdicts of the compared claims under each protocol:", ""]
    lines += table(
        [{"claim": r["claim"], "paper": _signed(r["paper"], 4)} | {n: r[n] for n in names} for r in protocols["claims"]]
    )
    return lines


def _authors_markdown(section: dict[str, Any], table: Table) -> list[str]:
    lines = [
        "## The authors' own runs (real SIIM-ACR data, one run per configuration)",
        "",
        "The per-epoch lines the authors' notebook printed for Table 6 (baselines/authors-runs, provenance "
        "in its README): one run each (seed 2019), so exact numbers and signs, never significance. The "
        "held-out rule cannot be applied: no held-out slice was scored.",
        "",
        "Table 6 from the logs (Dice / accuracy @ epoch); as-published is best-val except the baseline, "
        "which the paper reports at its last epoch:",
        "",
    ]
    rows = []
    for row in section["table6"]:
        out = {
            "configuration": row["configuration"],
            "paper": _pair(row["paper"]),
        }
        for rule in (*AUTHORS_RULES, "as-published"):
            entry = row[rule]
            mark = " =" if entry["matches_paper"] else ""
            out[rule] = f"{_pair(entry)} @ {entry['epoch']}{mark}"
        rows.append(out)
    lines += table(rows)
    lines += ["(= : the pair printed in Table 6.) Selection effect, best-val minus last epoch:", ""]
    lines += table(
        [
            {
                "configuration": e["configuration"],
                "best epoch": str(e["best_epoch"]),
                "Dice": _signed(e["dice"]),
                "accuracy": _signed(e["accuracy"]),
            }
            for e in section["selection_effects"]
        ]
    )
    lines += ["Each paired claim's difference in the logs, at the epoch each rule picks (sign agrees: yes/no):", ""]
    lines += table(
        [
            {"claim": s["claim"], "paper": _signed(s["paper"])}
            | {
                rule: f"{_signed(s[rule])} ({'yes' if s[f'{rule}_agrees'] else 'no'})"
                for rule in (*AUTHORS_RULES, "as-published")
            }
            for s in section["claim_signs"]
        ]
    )
    return lines
