"""A results store's history across code versions, for nightly runs.

Every stored run carries the source fingerprint of the code that decides its numbers and the
git commit it ran from. ``history`` lists, per configuration and metric, each code version
(its fingerprint, the commits that ran it, when it first finished) with its seeds, mean and
95% interval, and judges each version with the regression suite's own rule (its margin and
alpha): against the previous version in the same environment, and against the recorded
baseline. A version in another environment (device kind, the libraries a baseline must
match, the CPU thread count) starts a new line of comparison and says which field differs:
it is never compared silently. Versions are ordered by ``git log`` when a repository is
given and knows their commits, else by when they first finished.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pneumobench.experiment.profiles import PROFILES, Profile
from pneumobench.judging.baselines import MATCHED_VERSIONS, RecordedBaseline, load_recorded, mismatch, recorded_path
from pneumobench.judging.claims import accuracy_images, claim_alpha, seedwise_regression
from pneumobench.papers.viel_orhan_2020.claims import regression_claims
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
from pneumobench.reporting.sections import mean_t_interval
from pneumobench.runs.store import ResultStore, StoredRun

__all__ = ["HistoryError", "history", "history_rows"]

METRICS = ("dice", "accuracy")


class HistoryError(ValueError):
    """A history that cannot be drawn (no store, no runs, an unknown metric); the message says why."""


@dataclass(frozen=True)
class _Version:
    """The runs of one configuration made by one code version in one environment."""

    source: str
    environment: tuple[tuple[str, Any], ...]
    runs: list[StoredRun]

    @property
    def first_finished(self) -> float:
        return min(stored.finished_at for stored in self.runs)

    @property
    def commits(self) -> list[str]:
        found = {str(s.result.environment.get("git_commit") or "") for s in self.runs} - {""}
        return sorted(found)

    def values(self, metric: str) -> dict[int, float]:
        return {s.result.seed: float(getattr(s.result, metric)) for s in sorted(self.runs, key=lambda s: s.result.seed)}


def _environment(stored: StoredRun) -> tuple[tuple[str, Any], ...]:
    env = stored.result.environment
    fields: list[tuple[str, Any]] = [("device kind", stored.device_kind)]
    fields += [(lib, env.get(lib)) for lib in MATCHED_VERSIONS]
    return (*fields, ("CPU threads", env.get("cpu_threads")))


def _environment_change(before: tuple[tuple[str, Any], ...], after: tuple[tuple[str, Any], ...]) -> str:
    changed = [f"{name} {a} -> {b}" for (name, a), (_, b) in zip(before, after, strict=True) if a != b]
    return "other environment: " + ", ".join(changed)


def _commit_order(repo: str | os.PathLike | None) -> dict[str, int]:
    """Each commit's position in ``git log`` of ``repo`` (oldest 0); empty without a repository."""
    if repo is None:
        return {}
    try:
        listed = subprocess.run(
            ["git", "rev-list", "--reverse", "--all"], cwd=repo, capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {commit: index for index, commit in enumerate(listed)}


def _order_key(version: _Version, order: dict[str, int]) -> tuple[float, float]:
    positions = [order[c.removesuffix("-dirty")] for c in version.commits if c.removesuffix("-dirty") in order]
    return (min(positions) if positions else float("inf"), version.first_finished)


def _rules() -> dict[str, tuple[Profile, tuple[str, ...]]]:
    """Each registered profile's Table 6 configuration keys, with the profile and modifications
    (which give the regression rule's margin and alpha)."""
    rules: dict[str, tuple[Profile, tuple[str, ...]]] = {}
    for name in PROFILES.names():  # a key two profiles share is judged by the first registered
        profile = PROFILES.get(name)
        for mods in table6_rows():
            rules.setdefault(profile.config(*mods).key(), (profile, mods))
    return rules


def _alpha(mods: tuple[str, ...], metric: str) -> float:
    [claim] = [c for c in regression_claims() if c.treatment == mods and c.metric == metric]
    return claim_alpha(claim)


def _judge(
    current: dict[int, float], reference: dict[int, float], margin: float, alpha: float, images: int | None
) -> dict[str, Any]:
    """The regression suite's own rule (``seedwise_regression``): its verdict and p."""
    stats = seedwise_regression(current, reference, margin=margin, alpha=alpha, images=images)
    return {"verdict": stats.verdict.value, "p": stats.p_value}


def _recorded(baselines_dir: str | os.PathLike | None, profile: Profile, device_kind: str) -> RecordedBaseline | None:
    if baselines_dir is None:
        return None
    path = recorded_path(baselines_dir, profile.name, device_kind.split(":")[0])
    return load_recorded(path) if path.is_file() else None


def _version_rows(
    name: str,
    versions: list[_Version],
    metric: str,
    rule: tuple[Profile, tuple[str, ...]] | None,
    baselines_dir: str | os.PathLike | None,
) -> list[dict[str, Any]]:
    """One row per version of one configuration, each judged against the previous version in
    its environment and against the recorded baseline."""
    rows = []
    last_in: dict[tuple[tuple[str, Any], ...], _Version] = {}
    previous: _Version | None = None
    for number, version in enumerate(versions, 1):
        values = version.values(metric)
        mean, low, high = mean_t_interval(list(values.values()))
        row: dict[str, Any] = {
            "config": name,
            "metric": metric,
            "version": number,
            "source_fingerprint": version.source,
            "commits": ", ".join(c[:12] for c in version.commits),
            "first_finished": dt.datetime.fromtimestamp(version.first_finished, dt.timezone.utc).isoformat(
                " ", "seconds"
            ),
            "environment": ", ".join(f"{k} {v}" for k, v in version.environment),
            "seeds": len(values),
            "mean": mean,
            "ci_low": low,
            "ci_high": high,
            "vs_previous": "",
            "vs_previous_p": float("nan"),
            "vs_baseline": "",
            "vs_baseline_p": float("nan"),
            "baseline_mean": float("nan"),  # the recorded baseline this version was judged against
            "margin": float("nan"),
        }
        if rule is None:
            row["vs_previous"] = row["vs_baseline"] = "not a Table 6 configuration of a registered profile"
        else:
            profile, mods = rule
            margin, alpha = profile.regression_margin(metric, mods), _alpha(mods, metric)
            before = last_in.get(version.environment)
            if before is not None:
                images = accuracy_images([stored.result for stored in version.runs], metric)
                judged = _judge(values, before.values(metric), margin, alpha, images)
                row["vs_previous"], row["vs_previous_p"] = judged["verdict"], judged["p"]
            elif previous is not None:
                row["vs_previous"] = _environment_change(previous.environment, version.environment)
            row["vs_baseline"], row["vs_baseline_p"], row["baseline_mean"] = _against_baseline(
                version, name, metric, profile, margin, alpha, baselines_dir
            )
            row["margin"] = margin
        rows.append(row)
        last_in[version.environment] = previous = version
    return rows


def _against_baseline(
    version: _Version,
    name: str,
    metric: str,
    profile: Profile,
    margin: float,
    alpha: float,
    baselines_dir: str | os.PathLike | None,
) -> tuple[str, float, float]:
    """The version against the recorded baseline of its profile and device: the verdict, p and
    the baseline's mean, or why that baseline cannot judge it (and NaNs)."""
    recorded = _recorded(baselines_dir, profile, version.runs[0].device_kind)
    if recorded is None:
        return "no recorded baseline", float("nan"), float("nan")
    runs = [stored.result for stored in version.runs]
    problem = mismatch(recorded, runs, name, profile=profile.name)
    if problem is not None:
        return problem, float("nan"), float("nan")
    reference = recorded.values(name, metric)
    judged = _judge(version.values(metric), reference, margin, alpha, accuracy_images(runs, metric))
    return judged["verdict"], judged["p"], sum(reference.values()) / len(reference)


def history_rows(
    store_path: str | os.PathLike,
    *,
    configs: Sequence[str] = (),
    metrics: Sequence[str] = METRICS,
    baselines_dir: str | os.PathLike | None = "baselines",
    repo: str | os.PathLike | None = None,
    dataset_fingerprint: str | None = None,
) -> list[dict[str, Any]]:
    """The history as rows (``history`` makes them a DataFrame): per configuration (``configs``:
    these names only) and metric, one row per code version in order, on one dataset (default:
    the one with the newest run)."""
    for metric in metrics:
        if metric not in METRICS:
            raise HistoryError(f"metric {metric!r}: give dice or accuracy")
    path = Path(store_path)
    if not path.is_file():
        raise HistoryError(f"no results store at {path}: run the suites first or pass --store PATH")
    finished = ResultStore(path).finished()
    datasets = {s.result.dataset_fingerprint for s in finished}
    if not finished or (dataset_fingerprint is not None and dataset_fingerprint not in datasets):
        have = f"it has runs on {', '.join(sorted(datasets))}" if datasets else "it holds no finished runs"
        raise HistoryError(f"results store {path}: nothing to show for dataset {dataset_fingerprint or 'any'}; {have}")
    dataset = dataset_fingerprint or max(finished, key=lambda s: s.finished_at).result.dataset_fingerprint
    grouped = _versions_by_config(s for s in finished if s.result.dataset_fingerprint == dataset)
    unknown = sorted(set(configs) - {name for name, _ in grouped})
    if unknown:
        raise HistoryError(
            f"no runs of {', '.join(unknown)} in {path}; it has {', '.join(sorted(n for n, _ in grouped))}"
        )
    order, rules = _commit_order(repo), _rules()
    rows = []
    for (name, key), versions in sorted(grouped.items()):
        if configs and name not in configs:
            continue
        ordered = sorted(versions, key=lambda v: _order_key(v, order))
        for metric in metrics:
            rows += [
                {"dataset": dataset, **row}
                for row in _version_rows(name, ordered, metric, rules.get(key), baselines_dir)
            ]
    return rows


def _versions_by_config(finished: Iterable[StoredRun]) -> dict[tuple[str, str], list[_Version]]:
    """The runs per (configuration name, key), split by code version and environment."""
    runs: dict[tuple[str, str], dict[tuple[str, tuple[tuple[str, Any], ...]], list[StoredRun]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for stored in finished:
        result = stored.result
        runs[(result.config_name, result.config_key)][(stored.source_fingerprint, _environment(stored))].append(stored)
    return {
        config: [_Version(source, env, found) for (source, env), found in versions.items()]
        for config, versions in runs.items()
    }


def history(
    store_path: str | os.PathLike = Path(".pneumobench") / "results.sqlite",
    *,
    configs: Sequence[str] = (),
    metrics: Sequence[str] = METRICS,
    baselines_dir: str | os.PathLike | None = "baselines",
    repo: str | os.PathLike | None = ".",
    dataset_fingerprint: str | None = None,
) -> Any:
    """The history of a results store as a pandas DataFrame, one row per (configuration,
    metric, code version): see ``history_rows`` and the module's doc."""
    import pandas as pd

    rows = history_rows(
        store_path,
        configs=configs,
        metrics=metrics,
        baselines_dir=baselines_dir,
        repo=repo,
        dataset_fingerprint=dataset_fingerprint,
    )
    return pd.DataFrame.from_records(rows)
