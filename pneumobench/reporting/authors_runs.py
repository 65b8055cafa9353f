"""The authors' own 16 runs (one per Table 6 row, seed 2019), as their notebook printed them.

``baselines/authors-runs/epochs.csv`` holds every per-epoch line (loss, validation Dice and
accuracy, 3 decimals) with its provenance in the folder's README. It is the one result on the
real SIIM-ACR data pneumobench can show without the data, and what one run per configuration
can show is exact numbers, never significance: Table 6 re-created under each epoch-selection
rule (``pneumobench.training.selection``), the selection effect per configuration (best epoch minus last
epoch), and the sign of each of the paper's paired claims at the epoch each rule picks.

The held-out rule cannot be applied: the authors scored no held-out slice.
"""

from __future__ import annotations

import csv
import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pneumobench.experiment.config import config_name
from pneumobench.judging.baselines import PaperNumbers
from pneumobench.papers.viel_orhan_2020.claims import PAPER_CLAIMS
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
from pneumobench.training.selection import select_epoch

__all__ = [
    "AUTHORS_RULES",
    "AuthorsRunsError",
    "claim_signs",
    "default_path",
    "load_authors_runs",
    "published_rule",
    "selection_effects",
    "table6_by_rule",
]

AUTHORS_RULES = ("last", "best-val")  # the rules the logs can answer (no held-out scores were printed)
COLUMNS = (
    "configuration",
    "stage",
    "epoch_in_stage",
    "epoch",
    "lr",
    "train_loss",
    "val_loss",
    "val_dice",
    "val_accuracy",
)
EPOCHS = 43  # 3 frozen + 40 full, every run


class AuthorsRunsError(ValueError):
    """The logs file is missing, or a row of it is malformed; the message names the file and row."""


@dataclass(frozen=True)
class AuthorsRun:
    """One configuration's printed epochs, as ``curves`` the selection rules read."""

    configuration: str
    curves: tuple[dict[str, Any], ...]

    def at(self, epoch: int) -> dict[str, Any]:
        return self.curves[epoch - 1]


def default_path() -> Path:
    """The shipped logs (``baselines/authors-runs/epochs.csv``, also inside the installed package)."""
    return Path(str(importlib.resources.files("pneumobench.papers.viel_orhan_2020") / "authors-runs" / "epochs.csv"))


def load_authors_runs(path: str | os.PathLike | None = None) -> dict[str, AuthorsRun]:
    """The 16 runs in Table 6's order, each with its 43 epochs, checked row by row."""
    source = Path(path) if path is not None else default_path()
    try:
        with open(source, newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise AuthorsRunsError(f"{source}: columns {reader.fieldnames}, expected {', '.join(COLUMNS)}")
            curves: dict[str, list[dict[str, Any]]] = {}
            for line, row in enumerate(reader, start=2):
                entry = _parse_row(row, f"{source}, line {line}")
                runs = curves.setdefault(row["configuration"], [])
                if entry["epoch"] != len(runs) + 1:
                    name = row["configuration"]
                    raise AuthorsRunsError(
                        f"{source}, line {line}: {name} epoch {entry['epoch']} follows epoch {len(runs)}"
                    )
                runs.append(entry)
    except OSError as error:
        raise AuthorsRunsError(f"{source}: cannot be read ({error.strerror or error})") from None
    return _complete_runs(curves, source)


def _parse_row(row: dict[str, str], where: str) -> dict[str, Any]:
    try:
        entry: dict[str, Any] = {name: int(row[name]) for name in ("stage", "epoch_in_stage", "epoch")}
        entry |= {name: float(row[name]) for name in ("lr", "train_loss", "val_loss", "val_dice", "val_accuracy")}
    except (TypeError, ValueError):
        raise AuthorsRunsError(f"{where}: a field is not a number: {dict(row)}") from None
    if not (0 <= entry["val_dice"] <= 1 and 0 <= entry["val_accuracy"] <= 1):
        raise AuthorsRunsError(f"{where}: val_dice and val_accuracy must lie in [0, 1]: {dict(row)}")
    return entry


def _complete_runs(curves: dict[str, list[dict[str, Any]]], source: Path) -> dict[str, AuthorsRun]:
    expected = [config_name(mods) for mods in table6_rows()]
    if sorted(curves) != sorted(expected):
        missing, extra = sorted(set(expected) - set(curves)), sorted(set(curves) - set(expected))
        raise AuthorsRunsError(f"{source}: configurations missing {missing}, unexpected {extra}")
    short = {name: len(epochs) for name, epochs in curves.items() if len(epochs) != EPOCHS}
    if short:
        raise AuthorsRunsError(f"{source}: every run has {EPOCHS} epochs; these do not: {short}")
    return {name: AuthorsRun(name, tuple(curves[name])) for name in expected}


def published_rule(configuration: str) -> str:
    """The rule behind the published Table 6: the best validation epoch, but the last for the baseline
    (what the logs show, and what profile ``authors`` runs)."""
    return "last" if configuration == "baseline" else "best-val"


def table6_by_rule(runs: dict[str, AuthorsRun], paper: PaperNumbers) -> list[dict[str, Any]]:
    """Per configuration: the paper's Table 6 pair, and the pair and epoch each rule reports from the
    logs (``last``, ``best-val``, and ``as-published``, the authors' mix of the two)."""
    rows = []
    for mods in table6_rows():
        run = runs[config_name(mods)]
        row: dict[str, Any] = {"configuration": run.configuration, "paper": paper.table6(mods)}
        for rule in (*AUTHORS_RULES, "as-published"):
            entry = _at_rule(run, rule)
            row[rule] = {"epoch": entry["epoch"], "dice": entry["val_dice"], "accuracy": entry["val_accuracy"]}
            row[rule]["matches_paper"] = (entry["val_dice"], entry["val_accuracy"]) == (
                row["paper"]["dice"],
                row["paper"]["accuracy"],
            )
        rows.append(row)
    return rows


def selection_effects(runs: dict[str, AuthorsRun]) -> list[dict[str, Any]]:
    """Per configuration: best-validation-epoch minus last-epoch Dice and accuracy (one run: exact, no CI)."""
    effects = []
    for name, run in runs.items():
        best, last = _at_rule(run, "best-val"), _at_rule(run, "last")
        effects.append(
            {
                "configuration": name,
                "best_epoch": best["epoch"],
                "dice": round(best["val_dice"] - last["val_dice"], 6),
                "accuracy": round(best["val_accuracy"] - last["val_accuracy"], 6),
            }
        )
    return effects


def _at_rule(run: AuthorsRun, rule: str) -> dict[str, Any]:
    return run.at(select_epoch(run.curves, published_rule(run.configuration) if rule == "as-published" else rule))


def claim_signs(runs: dict[str, AuthorsRun]) -> list[dict[str, Any]]:
    """The sign of each paired paper claim's difference in the logs, at the epoch each rule picks
    (each configuration's own pick; ``as-published`` gives back the paper's difference), beside the
    paper's. One run each: a sign, not a test."""
    rows = []
    for claim in (c for c in PAPER_CLAIMS if c.kind == "paired"):
        treatment, control = runs[config_name(claim.treatment)], runs[config_name(claim.control)]
        row: dict[str, Any] = {"claim": claim.id, "metric": claim.metric, "paper": claim.paper}
        for rule in (*AUTHORS_RULES, "as-published"):
            key = f"val_{claim.metric}"
            difference = _at_rule(treatment, rule)[key] - _at_rule(control, rule)[key]
            row[rule] = round(difference, 6)
            row[f"{rule}_agrees"] = difference * claim.direction > 0
        rows.append(row)
    return rows
