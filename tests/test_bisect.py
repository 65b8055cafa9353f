"""``pneumobench bisect`` on a throw-away repository the test builds from this checkout: four
commits, the third planting a known bug (validation masks shifted one pixel); bisect names it on
the smoke profile, trains only the two code versions the range holds, and a second bisect trains
nothing. The search itself, with skipped commits, on scripted verdicts."""

import shutil
import subprocess
from pathlib import Path

import pytest

from pneumobench.cli import main
from pneumobench.tools import bisect as bisect_module
from pneumobench.tools.bisect import BisectError, bisect

ROOT = Path(__file__).resolve().parents[1]
VALIDATION_SCORE = "scores.update(mask_prob, masks, torch.sigmoid(cls_logits.float()), labels)"
PLANTED = "scores.update(mask_prob, masks.roll(1, -1), torch.sigmoid(cls_logits.float()), labels)"


def _commit(repo: Path, message: str) -> str:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=repo, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def planted_repo(tmp_path_factory):
    """good (this checkout's package), a README edit, the planted bug, another README edit."""
    repo = tmp_path_factory.mktemp("bisect-repo")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "pneumobench", repo / "pneumobench", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "baselines", repo / "baselines", ignore=ignore)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "config", "user.email", "t@example.org"], cwd=repo, check=True)
    subprocess.run(["git", "config", "user.name", "test"], cwd=repo, check=True)
    (repo / "README.md").write_text("pneumobench\n")
    commits = [_commit(repo, "good: the package as it is")]
    (repo / "README.md").write_text("pneumobench, documented\n")
    commits.append(_commit(repo, "docs only"))
    engine = repo / "pneumobench" / "training" / "engine.py"
    text = engine.read_text()
    assert text.count(VALIDATION_SCORE) == 1
    engine.write_text(text.replace(VALIDATION_SCORE, PLANTED))
    commits.append(_commit(repo, "tidy the validation loop (plants a one-pixel mask shift)"))
    (repo / "README.md").write_text("pneumobench, documented twice\n")
    commits.append(_commit(repo, "docs again"))
    return repo, commits


def test_bisect_names_the_planted_commit_and_a_second_bisect_trains_nothing(planted_repo, tmp_path, capsys):
    repo, commits = planted_repo
    store = tmp_path / "results.sqlite"
    args = ["bisect", "--repo", str(repo), "--good", commits[0], "--bad", commits[3], "--config", "baseline",
            "--store", str(store)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"first changed commit: {commits[2]}")
    lines = out.splitlines()
    assert lines[0].startswith(f"{commits[3][:12]} docs again: REGRESSED") and lines[0].endswith("trained)")
    assert lines[1].startswith(f"{commits[2][:12]} tidy the validation loop") and "REGRESSED" in lines[1]
    assert lines[1].endswith("already in the store)")  # the same code as the bad commit
    assert lines[2].startswith(f"{commits[1][:12]} docs only: NO REGRESSION") and lines[2].endswith("store)")
    again = bisect(repo, commits[0], commits[3], config="baseline", store=store, log=lambda line: None)
    assert again.first_bad == commits[2] and not any(step.trained for step in again.steps)
    assert not list((repo / ".git" / "worktrees").glob("*"))  # every worktree removed


def test_the_search_skips_what_cannot_train_and_says_which_commits_remain(planted_repo, monkeypatch, tmp_path):
    """Scripted verdicts, as ``git bisect skip``: with commits 1-3 bad and commit 2 untrainable,
    the search steps around it and names commit 1; with commits 2-3 bad and commit 1
    untrainable, the first bad one is commit 1 or 2, and bisect says so."""
    repo, commits = planted_repo
    script = {"bad": set(), "broken": set()}

    def values(self, commit):
        if commit in script["broken"]:
            return "training failed: scripted"
        return ({0: 0.5, 1: 0.51, 2: 0.52} if commit in script["bad"] else {0: 0.9, 1: 0.91, 2: 0.92}), False

    monkeypatch.setattr(bisect_module._Trainer, "values", values)
    script.update(bad=set(commits[1:]), broken={commits[2]})
    found = bisect(repo, commits[0], commits[3], config="baseline", store=tmp_path / "s.sqlite", log=lambda _: None)
    assert found.first_bad == commits[1] and found.ambiguous == []
    assert [(s.commit, s.verdict) for s in found.steps] == [
        (commits[3], "REGRESSED"), (commits[2], "skipped"), (commits[1], "REGRESSED")]
    script.update(bad=set(commits[2:]), broken={commits[1]})
    hidden = bisect(repo, commits[0], commits[3], config="baseline", store=tmp_path / "s.sqlite", log=lambda _: None)
    assert hidden.first_bad is None and hidden.ambiguous == [commits[1], commits[2]]
    assert [s.reason for s in hidden.steps if s.verdict == "skipped"] == ["training failed: scripted"]


def test_a_range_with_no_change_or_in_the_wrong_order_is_a_one_line_error(planted_repo, tmp_path, capsys):
    repo, commits = planted_repo
    with pytest.raises(BisectError, match="is not an ancestor"):
        bisect(repo, commits[3], commits[0], config="baseline", store=tmp_path / "s.sqlite")
    assert main(["bisect", "--repo", str(repo), "--good", "nope", "--bad", commits[0], "--config", "baseline",
                 "--store", str(tmp_path / "s.sqlite")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("pneumobench bisect: git rev-parse") and error.count("\n") == 1
    assert main(["bisect", "--repo", str(repo), "--good", commits[0], "--bad", commits[3], "--config", "aspp+nope",
                 "--store", str(tmp_path / "s.sqlite")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("pneumobench bisect: ") and "nope" in error and error.count("\n") == 1
