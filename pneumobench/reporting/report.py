"""The reproduction report: Table 6 side by side, the claims table, figures, environment.

``write_report`` reads the finished runs of a results store, picks one group of comparable
runs (same dataset, result-determining code and device kind; the newest by default),
judges every claim it can from them (or takes the verdicts a pytest session recorded) and
writes ``report.md``, ``report.json`` and ``figures/*.png``. Runs of other groups are listed,
never silently merged. The same store gives the same Markdown.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pneumobench.core.atomic import write_text_atomic
from pneumobench.core.registry import Registry
from pneumobench.core.results import RunResult
from pneumobench.data.prepared import DatasetError, load
from pneumobench.experiment.config import config_name
from pneumobench.experiment.profiles import PROFILES, Profile, get_profile
from pneumobench.judging.baselines import default_baselines_dir, load_paper, paper_path
from pneumobench.judging.claims import degenerate_reasons, unstable_reasons
from pneumobench.judging.context import JudgingContext, runs_by_config
from pneumobench.judging.looks import SequentialPlan
from pneumobench.judging.stats import Verdict
from pneumobench.judging.verdicts import SYNTHETIC_NOTE
from pneumobench.papers.viel_orhan_2020.claims import all_claims
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
from pneumobench.reporting import sections as protocol_sections
from pneumobench.reporting.sections import format_measured, mean_t_interval, protocol_markdown
from pneumobench.reporting.summary import count_line, next_step, verdict_table
from pneumobench.runs.store import ResultStore, StoredRun

__all__ = [
    "SECTIONS",
    "BaselineSource",
    "Report",
    "ReportError",
    "ReportSection",
    "RunGroup",
    "judge_group",
    "load_group",
    "write_authors_report",
    "write_report",
]

REPORT_SCHEMA = "pneumobench.report/1"
FIGURES_LIST = ".pneumobench-figures.json"  # in figures/: the files the last report wrote there
NOT_RUN = Verdict.NOT_RUN.value


class ReportError(RuntimeError):
    """No report can be made: a missing or empty store, or an unknown dataset or profile."""


@dataclass
class RunGroup:
    """Finished runs that are comparable: one dataset, one code version, one device kind."""

    dataset_fingerprint: str
    source_fingerprint: str
    device_kind: str
    runs: list[RunResult]

    @property
    def synthetic(self) -> bool:
        return any(r.synthetic_data for r in self.runs)

    def by_config(self) -> dict[str, list[RunResult]]:
        """Runs per configuration, seeds ascending. Two configurations that share a name (other
        settings differ) are told apart by a key suffix, never merged."""
        grouped: dict[str, dict[int, RunResult]] = defaultdict(dict)
        names: dict[str, set[str]] = defaultdict(set)
        for run in self.runs:
            grouped[run.config_key][run.seed] = run
            names[run.config_name].add(run.config_key)
        result = {}
        for key, seeds in grouped.items():
            name = seeds[min(seeds)].config_name
            label = name if len(names[name]) == 1 else f"{name}#{key[:6]}"
            result[label] = [seeds[s] for s in sorted(seeds)]
        return result


@dataclass
class Report:
    """What ``write_report`` wrote and the data behind it."""

    directory: Path
    markdown: str
    data: dict[str, Any]
    figures: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class BaselineSource:
    """Where a report finds recorded baselines: the ones the session judged ``store`` with (kept
    in it), else ``directory``'s files; ``explicit``: the user named ``directory``, so a file there
    that differs from the session's is refused. ``notes``: what the report's first lines say."""

    directory: Path
    store: Path | None = None
    explicit: bool = True
    notes: list[str] = field(default_factory=list)

    def judged_with(self, profile: str, device_type: str) -> tuple[str, str | None] | None:
        if self.store is None or not self.store.is_file():
            return None
        return ResultStore(self.store).judged_with(profile, device_type)

    def note(self, text: str | None) -> None:
        if text is not None and text not in self.notes:
            self.notes.append(text)


def _baseline_source(baselines: BaselineSource | str | os.PathLike) -> BaselineSource:
    return baselines if isinstance(baselines, BaselineSource) else BaselineSource(Path(baselines))


def load_group(
    store_path: str | os.PathLike, *, dataset_fingerprint: str | None = None
) -> tuple[RunGroup, list[dict[str, Any]]]:
    """The newest group of comparable runs in the store (or the one of ``dataset_fingerprint``),
    and a summary of every other group."""
    path = Path(store_path)
    groups = _finished_groups(path)
    candidates = [key for key in groups if dataset_fingerprint in (None, key[0])]
    if not candidates:
        known = sorted({key[0] for key in groups})
        raise ReportError(
            f"results store {path} has no runs on dataset {dataset_fingerprint}; it has {', '.join(known)}"
        )
    chosen = max(candidates, key=lambda key: (max(s.finished_at for s in groups[key]), key))
    others = [
        {"dataset_fingerprint": key[0], "source_fingerprint": key[1], "device_kind": key[2], "runs": len(runs)}
        for key, runs in sorted(groups.items())
        if key != chosen
    ]
    group = RunGroup(*chosen, runs=[s.result for s in groups[chosen]])
    return group, others


def _finished_groups(path: Path) -> dict[tuple[str, str, str], list[StoredRun]]:
    """The store's finished runs by (dataset, code, device kind)."""
    if not path.is_file():
        raise ReportError(
            f"no results store at {path}: run the suites first (pytest suites -m paper) or pass --store PATH"
        )
    store = ResultStore(path)
    finished = store.finished()
    if not finished:
        counts = store.counts()
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no runs at all"
        raise ReportError(f"results store {path} holds no finished runs ({detail}): nothing to report")
    groups: dict[tuple[str, str, str], list[StoredRun]] = defaultdict(list)
    for stored in finished:
        groups[(stored.result.dataset_fingerprint, stored.source_fingerprint, stored.device_kind)].append(stored)
    return groups


def _judged_protocols(
    store: Path, chosen: RunGroup, matched: Any, records: list[dict[str, Any]], baselines: BaselineSource
) -> list[tuple[str, dict[str, list[RunResult]], list[dict[str, Any]]]]:
    """Per registered profile with runs in the store (its newest group; the report's own group for
    its profile): the profile's name, runs per configuration and verdicts, in registration order."""

    newest: dict[str, tuple[float, RunGroup]] = {}
    for key, stored in _finished_groups(store).items():
        group = RunGroup(*key, runs=[s.result for s in stored])
        profile = match_profile(group)
        finished_at = max(s.finished_at for s in stored)
        if profile is None:
            continue
        if profile.name not in newest or finished_at > newest[profile.name][0]:
            newest[profile.name] = (finished_at, group)
    judged = []
    for name in PROFILES.names():
        if matched is not None and name == matched.name:
            judged.append((name, chosen.by_config(), records))
        elif name in newest:
            group = newest[name][1]
            judged.append((name, group.by_config(), judge_group(group, PROFILES.get(name), baselines)))
    return judged


def match_profile(group: RunGroup, name: str | None = None):
    """The registered profile whose Table 6 configurations the group's runs are (or ``name``'s)."""

    if name is not None:
        return get_profile(name)
    keys = {r.config_key for r in group.runs}
    best, best_hits = None, 0
    for profile_name in PROFILES.names():
        profile = get_profile(profile_name)
        hits = sum(profile.config(*mods).key() in keys for mods in table6_rows())
        if hits > best_hits:
            best, best_hits = profile, hits
    return best


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _without_regression_only(runs: list[RunResult], baseline_key: str) -> list[RunResult]:
    """``runs`` less the baseline's runs at seeds no other configuration has: the extra seeds of
    its power-sized regression check (``Profile.baseline_regression``), which the report's
    claims do not judge (they judge the seeds every configuration shares, as the session does)."""
    others = {r.seed for r in runs if r.config_key != baseline_key}
    if not others:
        return runs
    return [r for r in runs if r.config_key != baseline_key or r.seed in others]


def judge_group(
    group: RunGroup,
    profile: Profile,
    baselines: BaselineSource | str | os.PathLike,
    sequential: SequentialPlan | None = None,
) -> list[dict[str, Any]]:
    """Every paper claim and Table 6 row judged from the group's runs, as the suites judge them
    (through the same ``JudgingContext``), with the recorded baseline ``baselines`` gives.

    A claim whose configurations (or seeds) are missing from the group is a ``NOT RUN``
    record naming what is missing. Each claim's alpha is its family's, as in the suites, so
    the report and the pytest session agree verdict for verdict. ``sequential`` (a
    ``SequentialPlan``, ``--seeds auto``): the claims are judged look by look on seeds 0 .. n-1,
    as a ``--pb-seeds auto`` session judged them.
    """
    source = _baseline_source(baselines)
    device_type = group.device_kind.split(":")[0]

    def key(mods: tuple[str, ...]) -> str:
        return profile.config(*mods).key()

    runs_for, runs_for_seeds = runs_by_config(_without_regression_only(group.runs, key(())), key)
    context = JudgingContext.load(
        profile,
        baselines_dir=source.directory,
        device_type=device_type,
        synthetic=group.synthetic,
        runs_for=runs_for,
        runs_for_seeds=runs_for_seeds,
        sequential=sequential,
        judged_with=source.judged_with(profile.name, device_type),
        explicit=source.explicit,
    )
    if context.baseline is not None:
        source.note(context.baseline.note)
    return context.judge_available(all_claims(load_paper(paper_path(source.directory))))


def _mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds, clipped to the metric's range [0, 1] (NaN bounds with fewer than two)."""

    mean, low, high = mean_t_interval(values)
    return mean, max(low, 0.0), min(high, 1.0)


def table6_comparison(
    group: RunGroup,
    records: Sequence[dict[str, Any]],
    baselines_dir: str | os.PathLike,
    profile: Profile | None = None,
) -> list[dict[str, Any]]:
    """Per configuration (Table 6 order, then any other): paper vs measured Dice and accuracy, and
    its flagged runs: degenerate ones, and seeds unstable under ``profile``'s seed SDs."""

    paper = load_paper(paper_path(baselines_dir))
    paper_names = {config_name(mods): mods for mods in table6_rows()}
    by_config = group.by_config()
    order = [n for n in paper_names if n in by_config] + sorted(n for n in by_config if n not in paper_names)
    verdicts = {r["claim"]: r["verdict"] for r in records}
    rows = []
    for name in order:
        runs = by_config[name]
        flags = list(
            dict.fromkeys(reason for metric in ("dice", "accuracy") for reason in degenerate_reasons(runs, metric))
        )
        unstable = (
            []
            if profile is None
            else [u for m in ("dice", "accuracy") for u in unstable_reasons(runs, m, profile.name)]
        )
        row: dict[str, Any] = {
            "configuration": name,
            "seeds": [r.seed for r in runs],
            "degenerate": flags,
            "unstable": unstable,
        }
        for metric in ("dice", "accuracy"):
            mean, low, high = _mean_ci([getattr(r, metric) for r in runs])
            row[metric] = {
                "paper": paper.table6(paper_names[name])[metric] if name in paper_names else None,
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "verdict": verdicts.get(f"table6-{name}-{metric}", ""),
            }
        rows.append(row)
    return rows


def _table6_markdown(rows: list[dict[str, Any]]) -> str:
    from tabulate import tabulate

    table = [
        {
            "configuration": row["configuration"],
            "paper Dice": "" if row["dice"]["paper"] is None else f"{row['dice']['paper']:.3f}",
            "Dice, mean [95% CI]": format_measured(row["dice"]),
            "Dice verdict": row["dice"]["verdict"],
            "paper accuracy": "" if row["accuracy"]["paper"] is None else f"{row['accuracy']['paper']:.3f}",
            "accuracy, mean [95% CI]": format_measured(row["accuracy"]),
            "accuracy verdict": row["accuracy"]["verdict"],
            "seeds": len(row["seeds"]),
            "degenerate": "; ".join(flag.removeprefix(f"{row['configuration']} ") for flag in row["degenerate"]),
            "unstable": "; ".join(flag.removeprefix(f"{row['configuration']} ") for flag in row.get("unstable", [])),
        }
        for row in rows
    ]
    return tabulate(table, headers="keys", tablefmt="github", disable_numparse=True)


def _environment(group: RunGroup) -> dict[str, str]:
    """Each environment field with every value the group's runs recorded (sorted, joined)."""
    values: dict[str, set[str]] = defaultdict(set)
    for run in group.runs:
        for key, value in run.environment.items():
            values[key].add(json.dumps(value) if isinstance(value, dict | list) else str(value))
    return {key: "; ".join(sorted(found)) for key, found in sorted(values.items())}


def _load_dataset(group: RunGroup, data: str | os.PathLike | None) -> tuple[Any, str | None]:
    """The group's dataset for the overlays, or None and the reason it is unavailable."""

    candidates = [Path(data)] if data else sorted({Path(r.dataset_path) for r in group.runs if r.dataset_path})
    if not candidates:
        return None, "the runs do not record where their dataset was: pass --data DIR"
    reasons = []
    for path in candidates:
        try:
            dataset = load(path)
        except DatasetError as error:
            reasons.append(str(error))
            continue
        if dataset.fingerprint == group.dataset_fingerprint:
            return dataset, None
        reasons.append(f"{path} is dataset {dataset.fingerprint}, the runs used {group.dataset_fingerprint}")
    return None, "; ".join(reasons) + " (pass --data DIR with the dataset the runs used)"


def write_report(
    store: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    baselines_dir: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    profile: str | None = None,
    dataset_fingerprint: str | None = None,
    records: Sequence[dict[str, Any]] | None = None,
    sequential: Any = None,
) -> Report:
    """Write ``report.md``, ``report.json`` and ``figures/`` for the store's runs into ``out_dir``.

    ``records``: verdicts a pytest session recorded (``--pb-report``); by default every
    claim is judged again from the store, exactly as the suites judge it (``sequential``: a
    ``SequentialPlan``, as a ``--pb-seeds auto`` session judged them).
    """
    try:
        group, others = load_group(store, dataset_fingerprint=dataset_fingerprint)
    except ReportError as error:
        if records is None:
            raise
        group, others, notes = None, [], [f"no Table 6 or figures of runs: {error}"]
    else:
        notes = []
    matched = match_profile(group, profile) if group is not None else None
    explicit = baselines_dir is not None
    directory = Path(baselines_dir) if baselines_dir is not None else default_baselines_dir(store) or Path("baselines")
    baselines = BaselineSource(directory, Path(store), explicit=explicit)
    records = _records(group, matched, baselines, records, notes, sequential)
    rows = table6_comparison(group, records, directory, matched) if group is not None else []
    sections = _protocol_sections(Path(store), group, rows, matched, records, baselines, notes)
    notes[:0] = baselines.notes  # which recorded baselines judged the claims: the report's first lines
    out = Path(out_dir)
    written = _draw_figures(
        lambda folder: _draw_into(group, rows, records, data, folder, notes, sections), out / "figures"
    )
    if others:
        notes.append(
            f"the store also holds {sum(o['runs'] for o in others)} runs of {len(others)} other dataset, code "
            "or device group(s), not shown: choose one with --dataset FINGERPRINT"
        )

    data_out = {
        "schema": REPORT_SCHEMA,
        "store": str(store),
        "profile": matched.name if matched else profile,
        "synthetic": group.synthetic if group is not None else any(r.get("synthetic") for r in records),
        "dataset_fingerprint": group.dataset_fingerprint if group is not None else None,
        "source_fingerprint": group.source_fingerprint if group is not None else None,
        "device_kind": group.device_kind if group is not None else None,
        "runs": len(group.runs) if group is not None else 0,
        "configurations": [row["configuration"] for row in rows],
        "table6": rows,
        "claims": records,
        "claims_table": verdict_table(records),
        "environment": _environment(group) if group is not None else {},
        "figures": {
            name: {"path": str(item.path.relative_to(out)), "pixels": list(item.pixels), "caption": item.caption}
            for name, item in written.items()
        },
        "other_groups": others,
        "notes": notes,
        **{name: section for name, section in sections.items() if name != "authors_runs"},
        "authors_runs": {k: v for k, v in sections["authors_runs"].items() if k != "curves"},
    }
    markdown = _markdown(data_out)
    write_text_atomic(out / "report.json", json.dumps(_json_safe(data_out), indent=2, sort_keys=True) + "\n")
    write_text_atomic(out / "report.md", markdown)
    return Report(out, markdown, data_out, {name: item.path for name, item in written.items()})


def write_authors_report(out_dir: str | os.PathLike, *, baselines_dir: str | os.PathLike = "baselines") -> Report:
    """Write ``authors-runs.md``, ``authors-runs.json`` and ``figures/authors-runs.png``: the authors'
    own runs alone (``pneumobench report --authors-runs``; no results store needed)."""
    from pneumobench.reporting import figures

    out = Path(out_dir)
    section = protocol_sections.authors_section(baselines_dir)
    by_config = {name: [curves] for name, curves in section["curves"].items()}
    written = _draw_figures(
        lambda folder: {
            "authors_runs": figures.epoch_selection(
                by_config, folder / "authors-runs.png", "The authors' own 16 runs (seed 2019, real SIIM-ACR data)"
            )
        },
        out / "figures",
    )
    item = written["authors_runs"]
    figure_path = str(item.path.relative_to(out))
    data: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "authors_runs": {k: v for k, v in section.items() if k != "curves"},
        "figures": {"authors_runs": {"path": figure_path, "caption": item.caption}},
    }
    lines = ["# pneumobench: the authors' own runs", "", *protocol_sections.protocol_markdown(data)]
    lines += ["## Figure", "", item.caption, "", f"![authors runs]({figure_path})", ""]
    markdown = "\n".join(lines)
    write_text_atomic(out / "authors-runs.json", json.dumps(_json_safe(data), indent=2, sort_keys=True) + "\n")
    write_text_atomic(out / "authors-runs.md", markdown)
    return Report(out, markdown, data, {"authors_runs": item.path})


def _protocol_sections(
    store: Path,
    group: RunGroup | None,
    rows: list[dict[str, Any]],
    matched: Any,
    records: list[dict[str, Any]],
    baselines: BaselineSource,
    notes: list[str],
) -> dict[str, Any]:
    """Epoch selection, the claims under each rule, Table 6 under each protocol, the authors' runs."""

    sections: dict[str, Any] = {"authors_runs": protocol_sections.authors_section(baselines.directory)}
    if group is None:
        return sections
    by_config = group.by_config()
    sections["selection"] = protocol_sections.selection_table(
        {row["configuration"]: by_config[row["configuration"]] for row in rows}
    )
    if len(sections["selection"]) < len(by_config):
        notes.append(
            "epoch selection left out configurations stored without per-epoch scores (by an older pneumobench)"
        )
    elif matched is not None:
        sections["claims_by_rule"] = protocol_sections.claims_by_rule(
            group.runs, lambda runs: judge_group(dataclasses.replace(group, runs=runs), matched, baselines)
        )
    sections["protocols"] = protocol_sections.protocol_table6(
        _judged_protocols(store, group, matched, records, baselines), baselines.directory
    )
    return sections


def _records(
    group: RunGroup | None,
    matched: Any,
    baselines: BaselineSource,
    recorded: Sequence[dict[str, Any]] | None,
    notes: list[str],
    sequential: Any = None,
) -> list[dict[str, Any]]:
    """The verdicts a session recorded, else every claim judged again from the runs (none, with a
    note, when no registered profile made them)."""
    if recorded is not None:
        return [dict(r) for r in recorded]
    if group is None or matched is None:
        notes.append("no registered profile made these runs, so no claim was judged: pass --profile NAME")
        return []
    return judge_group(group, matched, baselines, sequential)


def _draw_figures(draw: Callable[[Path], dict[str, Any]], directory: Path) -> dict[str, Any]:
    """The figures ``draw(folder)`` writes, drawn into a scratch folder and then moved into ``directory``.
    Figures an earlier report wrote there (listed in ``FIGURES_LIST``) and this one does not are
    removed, so none goes stale; any other file in ``directory`` is the user's and stays."""
    import shutil
    import tempfile

    directory.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".figures.tmp-", dir=directory.parent))
    try:
        written = draw(scratch)
        names = {item.path.name for item in written.values()}
        for stale in _report_figures(directory) - names:
            (directory / stale).unlink(missing_ok=True)
        for item in written.values():
            os.replace(item.path, directory / item.path.name)
        write_text_atomic(directory / FIGURES_LIST, json.dumps(sorted(names)) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {name: dataclasses.replace(item, path=directory / item.path.name) for name, item in written.items()}


def _report_figures(directory: Path) -> set[str]:
    """The figure files an earlier report wrote into ``directory`` (by its list; none without one)."""
    try:
        names = json.loads((directory / FIGURES_LIST).read_text())
    except (OSError, ValueError):
        return set()
    return {name for name in names if isinstance(name, str) and "/" not in name} if isinstance(names, list) else set()


def _draw_into(
    group: RunGroup | None,
    rows: list[dict[str, Any]],
    records: list[dict[str, Any]],
    data: str | os.PathLike | None,
    directory: Path,
    notes: list[str],
    sections: dict[str, Any],
) -> dict[str, Any]:
    from pneumobench.reporting import figures

    written = {
        "effects": figures.effects(records, directory / "effects.png"),
        "authors_runs": figures.epoch_selection(
            {name: [curves] for name, curves in sections["authors_runs"]["curves"].items()},
            directory / "authors-runs.png",
            "The authors' own 16 runs (seed 2019, real SIIM-ACR data)",
        ),
    }
    if group is None:
        return written
    by_config = group.by_config()
    by_config = {row["configuration"]: by_config[row["configuration"]] for row in rows}  # Table 6 order
    written["seed_spread"] = figures.seed_spread(by_config, rows, directory / "seed-spread.png")
    written["learning_curves"] = figures.learning_curves(by_config, directory / "learning-curves.png")
    written["epoch_selection"] = figures.epoch_selection(
        {name: [run.curves for run in runs] for name, runs in by_config.items()},
        directory / "epoch-selection.png",
        "Epoch selection in these runs",
    )
    dataset, unavailable = _load_dataset(group, data)
    if dataset is None:
        notes.append(f"qualitative overlays not drawn: {unavailable}")
        return written
    drawn = figures.overlays(by_config, dataset, directory)
    if not drawn:
        notes.append(
            "qualitative overlays not drawn: the runs kept no predicted masks (stored by an older "
            "pneumobench; train them again)"
        )
    return written | drawn


ReportSection = Callable[[dict[str, Any]], list[str]]
# The Markdown report is its sections in registration order; each maps the report's data
# (``report.json``) to its lines. A new section is one more registered function.
SECTIONS: Registry[ReportSection] = Registry("report section")


@SECTIONS.register("summary")
def _summary_section(data: dict[str, Any]) -> list[str]:
    lines = ["# pneumobench report", ""]
    if data["synthetic"]:
        lines += [f"> {SYNTHETIC_NOTE}", ""]
    lines += [
        f"{data['runs']} runs of {len(data['configurations'])} configurations from `{data['store']}`: "
        f"profile `{data['profile']}`, device `{data['device_kind']}`, dataset `{data['dataset_fingerprint']}`, "
        f"code `{data['source_fingerprint']}`.",
        "",
    ]
    if data["claims"]:
        lines += [f"{count_line(data['claims'])}.", ""]
        step = next_step(data["claims"])
        lines += [f"Next: {step}.", ""] if step else []
    lines += [f"- Note: {note}" for note in data["notes"]]
    return lines + ([""] if data["notes"] else [])


@SECTIONS.register("table6")
def _table6_section(data: dict[str, Any]) -> list[str]:
    if not data["table6"]:
        return ["## Table 6, re-created", "", "No runs to tabulate.", ""]
    return [
        "## Table 6, re-created",
        "",
        "Measured: mean over seeds of each run's validation Dice and accuracy, with a 95% t-interval over "
        "seeds (clipped to [0, 1]), a description of the runs (the row verdicts have their own test, see Claims). "
        "degenerate: runs whose classifier answers one class for every image or whose masks are all empty "
        "or all full, or a metric identical on every seed; unstable: a seed whose Dice or accuracy lies more than "
        "5 robust SDs from the other seeds' median (docs/judging.md); no claim rests on either.",
        "",
        _table6_markdown(data["table6"]),
        "",
    ]


@SECTIONS.register("claims")
def _claims_section(data: dict[str, Any]) -> list[str]:
    from tabulate import tabulate

    if not data["claims_table"]:
        return ["## Claims", "", "No claim was judged.", ""]
    return [
        "## Claims",
        "",
        "Target: the paper's difference or value; for a Table 6 row judged off the paper profile, the "
        "recorded baseline's mean; for a regression check, the baseline's mean. p: the p-value of the test "
        "that took the decision; alpha: the claim's share of its family's alpha (paper family: 0.05, "
        "Bonferroni over its members, both directions; table6 family: 0.05 over its 32 rows); CI: the 1 - 2 "
        "alpha interval, dual to that decision. Flags: degenerate or unstable, the claim rests on such a "
        "configuration; selected-on-validation, an arm reports epochs chosen on the half it reports (the "
        "authors' procedure, not evidence). A flagged claim cannot be decided.",
        "",
        tabulate(data["claims_table"], headers="keys", tablefmt="github", disable_numparse=True),
        "",
    ]


SECTIONS.register("protocol")(protocol_markdown)


@SECTIONS.register("figures")
def _figures_section(data: dict[str, Any]) -> list[str]:
    lines = ["## Figures", ""]
    for name, item in data["figures"].items():
        lines += [f"### {name.replace('_', ' ')}", "", item["caption"], "", f"![{name}]({item['path']})", ""]
    return lines


@SECTIONS.register("environment")
def _environment_section(data: dict[str, Any]) -> list[str]:
    from tabulate import tabulate

    rows = sorted(data["environment"].items())
    return [
        "## Environment",
        "",
        tabulate(rows, headers=["field", "value(s)"], tablefmt="github", disable_numparse=True),
        "",
    ]


def _markdown(data: dict[str, Any]) -> str:
    """The report's Markdown: every registered section in order."""
    return "\n".join(line for _, section in SECTIONS.in_order() for line in section(data))
