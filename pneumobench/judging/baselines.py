"""Baseline files: the paper's numbers (``paper.json``) and recorded per-seed baselines.

Both are versioned JSON validated strictly: an unknown, missing or mistyped field raises
``BaselineError`` naming the file and the field path. Recorded baselines live in
``baselines/<profile>-<device>.json`` and are rewritten atomically by ``--pb-update-baselines``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.resources
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pneumobench.core.atomic import write_text_atomic
from pneumobench.core.environment import RESULT_LIBRARIES
from pneumobench.core.results import RunResult

__all__ = [
    "MATCHED_VERSIONS",
    "BaselineError",
    "PaperNumbers",
    "RecordedBaseline",
    "RecordedChoice",
    "choose_recorded",
    "content_hash",
    "default_baselines_dir",
    "load_paper",
    "load_recorded",
    "mismatch",
    "paper_path",
    "parse_recorded",
    "record",
    "recorded_path",
    "run_device_kind",
]

PAPER_SCHEMA = "pneumobench.paper/1"
RECORDED_SCHEMA = "pneumobench.baseline/1"
METRICS = ("dice", "accuracy")
PAPER_PACKAGE = "pneumobench.papers.viel_orhan_2020"  # ships the paper's numbers as package data (paper.json)
# Libraries whose version changes a run's numbers (smp provides the encoder, ASPP and scSE).
MATCHED_VERSIONS = RESULT_LIBRARIES


class BaselineError(ValueError):
    """A baseline file that is missing, malformed or does not fit the schema."""


def _require(data: Any, path: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(data, kind) or (kind in (int, float, (int, float)) and isinstance(data, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BaselineError(f"{where}: field {path} must be {names}, got {data!r:.60}")
    return data


def _fields(
    data: dict[str, Any], path: str, required: set[str], where: str, optional: frozenset[str] | set[str] = frozenset()
) -> None:
    missing = sorted(required - set(data))
    unknown = sorted(set(data) - required - set(optional))
    if missing:
        raise BaselineError(f"{where}: missing field(s) {', '.join(f'{path}.{m}' for m in missing)}")
    if unknown:
        raise BaselineError(f"{where}: unknown field(s) {', '.join(f'{path}.{u}' for u in unknown)}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BaselineError(f"{path}: no such baseline file") from None
    return _parse_json(text, str(path))


def _parse_json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BaselineError(f"{where}: not valid JSON ({error})") from None
    return _require(data, "(top level)", dict, where)


def _metric(value: Any, path: str, where: str) -> float:
    value = float(_require(value, path, (int, float), where))
    if not 0.0 <= value <= 1.0:
        raise BaselineError(f"{where}: field {path} must be within [0, 1], got {value}")
    return value


@dataclass(frozen=True)
class PaperNumbers:
    """Every number of the paper's Tables 2-6 and the parameter claim."""

    tables: dict[str, list[dict[str, Any]]]
    parameter_claim: dict[str, Any]
    protocol: dict[str, Any]

    def table6(self, modifications: tuple[str, ...]) -> dict[str, float]:
        for row in self.tables["table6"]:
            if set(row["modifications"]) == set(modifications):
                return {"dice": row["dice"], "accuracy": row["accuracy"]}
        raise KeyError(f"Table 6 has no row with modifications {modifications}")


def paper_path(baselines_dir: str | os.PathLike | None = None) -> Path:
    """``paper.json`` in ``baselines_dir`` when there is one (a user's copy), else the package's own."""
    if baselines_dir is not None and (Path(baselines_dir) / "paper.json").is_file():
        return Path(baselines_dir) / "paper.json"
    return Path(str(importlib.resources.files(PAPER_PACKAGE) / "paper.json"))


def default_baselines_dir(store: str | os.PathLike) -> Path | None:
    """Where recorded baselines are when none is named: ``./baselines``, else ``baselines/`` beside the
    store's ``.pneumobench`` folder (the suite that made the store); None when neither exists."""
    candidates = [Path.cwd() / "baselines", Path(store).resolve().parent.parent / "baselines"]
    return next((path for path in candidates if path.is_dir()), None)


def load_paper(path: str | os.PathLike | None = None) -> PaperNumbers:
    """The paper's numbers from ``path`` (default: the copy shipped in the package)."""
    path = Path(path) if path is not None else paper_path()
    where = str(path)
    data = _read_json(path)
    _fields(data, "", {"schema", "paper", "protocol", "tables", "parameter_claim"}, where)
    if data["schema"] != PAPER_SCHEMA:
        raise BaselineError(f"{where}: field .schema is {data['schema']!r}, expected {PAPER_SCHEMA!r}")
    tables = _require(data["tables"], ".tables", dict, where)
    for name, rows in tables.items():
        for index, row in enumerate(_require(rows, f".tables.{name}", list, where)):
            row_path = f".tables.{name}[{index}]"
            _require(row, row_path, dict, where)
            _fields(row, row_path, {"row", "modifications", "dice", "accuracy"}, where)
            _require(row["row"], f"{row_path}.row", str, where)
            for mod in _require(row["modifications"], f"{row_path}.modifications", list, where):
                _require(mod, f"{row_path}.modifications[]", str, where)
            for metric in METRICS:
                _metric(row[metric], f"{row_path}.{metric}", where)
    if len(tables.get("table6", [])) != 16:
        raise BaselineError(f"{where}: field .tables.table6 must have 16 rows, got {len(tables.get('table6', []))}")
    claim = _require(data["parameter_claim"], ".parameter_claim", dict, where)
    _fields(claim, ".parameter_claim", {"modification", "fewer_parameters", "accepted_range", "text"}, where)
    low, high = _require(claim["accepted_range"], ".parameter_claim.accepted_range", list, where)
    if not low <= claim["fewer_parameters"] <= high:
        raise BaselineError(f"{where}: .parameter_claim.fewer_parameters lies outside .accepted_range")
    return PaperNumbers(tables, claim, _require(data["protocol"], ".protocol", dict, where))


@dataclass(frozen=True)
class RecordedBaseline:
    """Per-seed Dice and accuracy per configuration, recorded on one profile and device kind."""

    profile: str
    device_kind: str
    dataset_fingerprint: str
    environment: dict[str, Any]
    recorded_at: str
    configs: dict[str, dict[str, Any]]  # name -> {config_key, dice: {seed: v}, accuracy: {seed: v}}

    def values(self, config_name: str, metric: str) -> dict[int, float]:
        entry = self.configs.get(config_name)
        if entry is None:
            raise KeyError(config_name)
        return {int(seed): value for seed, value in entry[metric].items()}


def run_device_kind(run: RunResult) -> str:
    """``cpu`` or ``cuda:<card model>``: the device kind a run's numbers depend on."""
    device = str(run.environment.get("device", "cpu"))
    return "cpu" if device.startswith("cpu") else f"cuda:{run.environment.get('device_name')}"


def mismatch(
    recorded: RecordedBaseline, runs: list[RunResult], config_name: str, *, profile: str, check_config: bool = True
) -> str | None:
    """Why ``recorded`` cannot judge ``runs`` of ``config_name`` (the first field that differs), or None.

    Matched: profile, dataset fingerprint, device kind (card model), the configuration's key,
    the versions of ``MATCHED_VERSIONS`` and the runs' CPU thread count. Not matched: the CPU
    model and instruction set (their effect is measured to stay inside the regression margin).
    ``check_config=False`` compares runs of another configuration with this one's record on
    purpose (a planted bug, a modification checked against the baseline's numbers).
    """
    where = f"recorded baseline {recorded.profile}-{recorded.device_kind.split(':')[0]}"
    if recorded.profile != profile:
        return f"{where}: profile {recorded.profile!r} recorded, {profile!r} here"
    entry = recorded.configs.get(config_name)
    if entry is None:
        return f"{where} has no configuration {config_name!r} (record it with --pb-update-baselines)"
    for run in runs:
        here = {
            "dataset fingerprint": (recorded.dataset_fingerprint, run.dataset_fingerprint),
            "device kind": (recorded.device_kind, run_device_kind(run)),
            "configuration key": (entry["config_key"], run.config_key if check_config else entry["config_key"]),
            **{f"{lib} version": (recorded.environment.get(lib), run.environment.get(lib)) for lib in MATCHED_VERSIONS},
            "CPU thread count": (recorded.environment.get("cpu_threads"), run.environment.get("cpu_threads")),
        }
        for name, (then, now) in here.items():
            if then != now:
                return (
                    f"{where}: {name} {then!r} recorded, {now!r} in {config_name} seed {run.seed}; "
                    "re-record with --pb-update-baselines"
                )
    return None


def recorded_path(directory: str | os.PathLike, profile: str, device_type: str) -> Path:
    return Path(directory) / f"{profile}-{device_type}.json"


def load_recorded(path: str | os.PathLike) -> RecordedBaseline:
    return _read_recorded(_read_json(Path(path)), str(path))


def parse_recorded(text: str, where: str) -> RecordedBaseline:
    """A recorded baseline from its file's text (``where`` names it in errors)."""
    return _read_recorded(_parse_json(text, where), where)


def _read_recorded(data: dict[str, Any], where: str) -> RecordedBaseline:
    _fields(
        data,
        "",
        {"schema", "profile", "device_kind", "dataset_fingerprint", "environment", "recorded_at", "configs"},
        where,
    )
    if data["schema"] != RECORDED_SCHEMA:
        raise BaselineError(f"{where}: field .schema is {data['schema']!r}, expected {RECORDED_SCHEMA!r}")
    for name in ("profile", "device_kind", "dataset_fingerprint", "recorded_at"):
        _require(data[name], f".{name}", str, where)
    _require(data["environment"], ".environment", dict, where)
    for config_name, entry in _require(data["configs"], ".configs", dict, where).items():
        entry_path = f".configs.{config_name}"
        _require(entry, entry_path, dict, where)
        _fields(entry, entry_path, {"config_key", "dice", "accuracy"}, where)
        _require(entry["config_key"], f"{entry_path}.config_key", str, where)
        for metric in METRICS:
            for seed, value in _require(entry[metric], f"{entry_path}.{metric}", dict, where).items():
                if not seed.isdigit():
                    raise BaselineError(f"{where}: field {entry_path}.{metric} has a non-integer seed key {seed!r}")
                _metric(value, f"{entry_path}.{metric}.{seed}", where)
    fields = {
        k: data[k] for k in ("profile", "device_kind", "dataset_fingerprint", "environment", "recorded_at", "configs")
    }
    return RecordedBaseline(**fields)


def record(path: str | os.PathLike, *, profile: str, device_kind: str, results: list[RunResult]) -> RecordedBaseline:
    """Write the per-seed values of ``results`` as the recorded baseline at ``path`` (atomically)."""
    if not results:
        raise BaselineError(f"{path}: no runs to record")
    fingerprints = {r.dataset_fingerprint for r in results}
    if len(fingerprints) != 1:
        raise BaselineError(f"{path}: runs come from {len(fingerprints)} datasets; record one dataset at a time")
    configs: dict[str, dict[str, Any]] = {}
    for result in sorted(results, key=lambda r: (r.config_name, r.seed)):
        entry = configs.setdefault(result.config_name, {"config_key": result.config_key, "dice": {}, "accuracy": {}})
        entry["dice"][str(result.seed)] = result.dice
        entry["accuracy"][str(result.seed)] = result.accuracy
    data = {
        "schema": RECORDED_SCHEMA,
        "profile": profile,
        "device_kind": device_kind,
        "dataset_fingerprint": fingerprints.pop(),
        "environment": results[-1].environment,
        "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "configs": configs,
    }
    write_text_atomic(Path(path), json.dumps(data, indent=2, sort_keys=True) + "\n")
    return load_recorded(path)


def content_hash(text: str) -> str:
    """A recorded baseline file's identity: the SHA-256 of its text (12 hex digits shown)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RecordedChoice:
    """The recorded baseline a profile's claims are judged with: ``text`` is the file's (None:
    there is none), read from ``path`` or, ``from_store``, kept in the results store by the
    session that judged it; ``note``: what a report should say about it in its first lines."""

    recorded: RecordedBaseline | None
    text: str | None
    path: Path
    from_store: bool = False
    note: str | None = None


def choose_recorded(
    baselines_dir: str | os.PathLike,
    profile: str,
    device_type: str,
    *,
    judged_with: tuple[str, str | None] | None = None,
    explicit: bool = False,
) -> RecordedChoice:
    """The recorded baseline of ``profile`` on ``device_type``: the one a session judged the store
    with (``judged_with``: its path and text, None when it found none), whatever folder this
    runs from, so a store has one verdict wherever it is judged; else the file in
    ``baselines_dir``. An ``explicit`` folder whose file differs from the session's is refused
    (``BaselineError``) rather than judged into another verdict."""
    path = recorded_path(baselines_dir, profile, device_type)
    text = path.read_text() if path.is_file() else None
    if judged_with is None:
        recorded = parse_recorded(text, str(path)) if text is not None else None
        note = None if text is not None else f"no recorded baseline {path} found: claims needing one are undecided"
        return RecordedChoice(recorded, text, path, note=note)
    used_path, used_text = judged_with
    if text != used_text:
        used = f"none ({used_path} absent)" if used_text is None else f"{used_path} (sha256 {content_hash(used_text)})"
        found = f"{path} (sha256 {content_hash(text)})" if text is not None else f"no {path}"
        if explicit:
            raise BaselineError(
                f"recorded baseline {profile}-{device_type}: the session judged this store with {used}, "
                f"here there is {found}; pass that file's folder with --baselines, or run the session "
                "again to judge with this one"
            )
        note = f"judged with the recorded baseline the session used, {used}, kept in the store ({found} differs)"
    else:
        absent = f"judged without a recorded baseline, as the session was ({used_path} absent)"
        note = None if used_text is not None else absent
    recorded = parse_recorded(used_text, f"{used_path} (as kept in the store)") if used_text is not None else None
    return RecordedChoice(recorded, used_text, Path(used_path), from_store=True, note=note)
