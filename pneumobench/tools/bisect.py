"""Find the commit that changed a configuration's results (``pneumobench bisect``), as
``git bisect`` does with the regression suite's rule as its test.

Each candidate commit is checked out into a temporary git worktree and its runs trained there,
by that commit's own code (``python -m pneumobench runs`` with the worktree first on the path),
into the given results store. A run's key holds its code's source fingerprint, so a commit whose
result-deciding code equals one already trained (a documentation or report change) trains
nothing, and a second bisect over the same range trains nothing at all. Each candidate's
per-seed values are judged against ``good``'s with the regression check (paired by seed, the
profile's margin, alpha 0.01): REGRESSED or CHANGED marks it bad, NO REGRESSION good. A commit
whose code cannot be imported or cannot train is skipped and said so (``git bisect skip``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pneumobench.experiment.profiles import get_profile
from pneumobench.judging.claims import seedwise_regression
from pneumobench.judging.families import REGRESSION_ALPHA
from pneumobench.judging.stats import Verdict
from pneumobench.runs.store import ResultStore

__all__ = ["BisectError", "BisectResult", "Step", "bisect"]

CHANGED = (Verdict.REGRESSED, Verdict.CHANGED)


class BisectError(ValueError):
    """A bisect that cannot start or cannot decide (unknown revisions, good and bad alike); says why."""


@dataclass(frozen=True)
class Step:
    """One commit judged: its mean, the verdict against ``good`` and its p, or why it was skipped."""

    commit: str
    subject: str
    verdict: str  # REGRESSED, CHANGED, NO REGRESSION, or "skipped"
    mean: float = float("nan")
    p_value: float = float("nan")
    trained: bool = False
    reason: str = ""  # why a skipped commit could not be judged

    def line(self) -> str:
        if self.verdict == "skipped":
            return f"{self.commit[:12]} {self.subject}: skipped, {self.reason}"
        stored = "trained" if self.trained else "already in the store"
        return (
            f"{self.commit[:12]} {self.subject}: {self.verdict} (mean {self.mean:.4f}, p={self.p_value:.3g}; {stored})"
        )


@dataclass
class BisectResult:
    """The first commit whose change is significant (None when skips hide it), the path taken,
    and the candidates the skips leave (the first bad one is among them)."""

    first_bad: str | None
    steps: list[Step] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise BisectError(f"git {' '.join(args)} in {repo}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _candidates(repo: Path, good: str, bad: str) -> list[str]:
    """The commits after ``good`` up to ``bad``, oldest first (``bad`` last)."""
    good_sha, bad_sha = (
        _git(repo, "rev-parse", "--verify", f"{good}^{{commit}}"),
        _git(repo, "rev-parse", "--verify", f"{bad}^{{commit}}"),
    )
    if subprocess.run(["git", "merge-base", "--is-ancestor", good_sha, bad_sha], cwd=repo).returncode != 0:
        raise BisectError(f"--good {good} is not an ancestor of --bad {bad}: give a good commit before the bad one")
    commits = _git(repo, "rev-list", "--ancestry-path", "--reverse", f"{good_sha}..{bad_sha}").split()
    if not commits:
        raise BisectError(f"--good {good} and --bad {bad} are the same commit")
    return commits


@dataclass
class _Trainer:
    """Trains one commit's runs in a worktree of ``repo`` and reads their per-seed values."""

    repo: Path
    store: Path
    profile: str
    config: str
    seeds: Sequence[int]
    metric: str
    runs_args: Sequence[str]
    scratch: Path  # where the worktrees are checked out (each removed after its commit)

    def values(self, commit: str) -> tuple[dict[int, float], bool] | str:
        """The commit's per-seed values and whether anything trained, or why it is skipped."""
        tree = self.scratch / commit[:12]
        _git(self.repo, "worktree", "add", "--detach", "--force", str(tree), commit)
        try:
            env = {**os.environ, "PYTHONPATH": str(tree)}
            probe = subprocess.run(
                [sys.executable, "-c", "from pneumobench.runs.store import source_fingerprint as f; print(f())"],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
            )
            if probe.returncode != 0:
                return f"its code does not import: {_last_line(probe.stderr)}"
            fingerprint = probe.stdout.strip().splitlines()[-1]
            stored = self._stored(fingerprint)
            if len(stored) == len(self.seeds):  # this code's runs are stored: nothing to train
                return stored, False
            seeds = ",".join(map(str, self.seeds))
            command = [sys.executable, "-m", "pneumobench", "runs", "--profile", self.profile, "--config", self.config]
            command += ["--seeds", seeds, "--store", str(self.store), "--quiet", *self.runs_args]
            done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                return f"training failed: {_last_line(done.stderr or done.stdout)}"
            found = self._stored(fingerprint)
            if len(found) < len(self.seeds):
                return f"{len(found)} of {len(self.seeds)} runs in the store after training"
            return found, True
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=self.repo, capture_output=True)

    def _stored(self, fingerprint: str) -> dict[int, float]:
        if not self.store.is_file():
            return {}
        key = get_profile(self.profile).config(*_mods(self.config)).key()
        return {
            s.result.seed: float(getattr(s.result, self.metric))
            for s in ResultStore(self.store).finished(source_fingerprint=fingerprint, config_key=key)
            if s.result.seed in self.seeds
        }


def _mods(config: str) -> tuple[str, ...]:
    return () if config == "baseline" else tuple(config.split("+"))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def bisect(
    repo: str | os.PathLike,
    good: str,
    bad: str,
    *,
    config: str,
    store: str | os.PathLike,
    profile: str = "smoke",
    metric: str = "dice",
    seeds: Sequence[int] | None = None,
    runs_args: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> BisectResult:
    """The first commit in (``good``, ``bad``] whose ``metric`` of ``config`` changed significantly
    against ``good``'s (module doc); ``runs_args``: more ``pneumobench runs`` options (--data,
    --executor, --workers)."""
    root = Path(repo).resolve()
    get_profile(profile).config(*_mods(config))  # an unknown profile or modification: refused before any checkout
    chosen = tuple(seeds) if seeds is not None else get_profile(profile).seeds
    commits = _candidates(root, good, bad)
    with tempfile.TemporaryDirectory(prefix="pneumobench-bisect-") as scratch:
        trainer = _Trainer(
            root, Path(store).resolve(), profile, config, chosen, metric, tuple(runs_args), Path(scratch)
        )
        reference = trainer.values(_git(root, "rev-parse", f"{good}^{{commit}}"))
        if isinstance(reference, str):
            raise BisectError(f"--good {good} cannot be judged: {reference}")
        result = BisectResult(first_bad=None)
        margin = get_profile(profile).regression_margin(metric, _mods(config))
        judge = _Judge(root, commits, trainer, reference[0], margin, result, log)
        if judge(len(commits) - 1) is not True:
            raise BisectError(
                f"--bad {bad} is not significantly different from --good {good} on {config} {metric} "
                f"({result.steps[-1].line()}): nothing to bisect"
            )
        _search(commits, judge, result)
    return result


@dataclass
class _Judge:
    """Judges commit ``index`` against ``good``'s values: True when it changed significantly,
    False when not, None when it was skipped; each step is logged and kept in ``result``."""

    root: Path
    commits: list[str]
    trainer: _Trainer
    reference: dict[int, float]
    margin: float
    result: BisectResult
    log: Callable[[str], None]

    def __call__(self, index: int) -> bool | None:
        commit = self.commits[index]
        subject = _git(self.root, "log", "-1", "--format=%s", commit)
        found = self.trainer.values(commit)
        if isinstance(found, str):
            step, changed = Step(commit, subject, "skipped", reason=found), None
        else:
            values, trained = found
            stats = seedwise_regression(values, self.reference, margin=self.margin, alpha=REGRESSION_ALPHA)
            step = Step(commit, subject, stats.verdict.value, stats.estimate, stats.p_value, trained)
            changed = stats.verdict in CHANGED
        self.result.steps.append(step)
        self.log(step.line())
        return changed


def _search(commits: list[str], judge: Callable[[int], bool | None], result: BisectResult) -> None:
    """Binary search between ``good`` (index -1) and the bad last commit, stepping around skips;
    sets ``result.first_bad``, or ``result.ambiguous`` when skipped commits hide it."""
    low, high, skipped = -1, len(commits) - 1, set()
    while True:
        open_ = [i for i in range(low + 1, high) if i not in skipped]
        if not open_:
            break
        middle = open_[len(open_) // 2]
        verdict = judge(middle)
        if verdict is None:
            skipped.add(middle)
        elif verdict:
            high = middle
        else:
            low = middle
    hidden = [commits[i] for i in range(low + 1, high) if i in skipped]
    if hidden:
        result.ambiguous = [*hidden, commits[high]]
    else:
        result.first_bad = commits[high]
