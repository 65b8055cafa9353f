"""The mutations that the review of the old verdict rules listed (issue 12, adapted to the new
code), each applied alone to a copy of the tree: the unit tests must fail on every one.

    python .ci/listed_mutations.py        # about 5 minutes on 2 cores; exits 1 if one survives

`mutmut run` (configured in pyproject.toml) covers every other mutation of stats.py and claims.py.
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
MUTATIONS = [
    ("judging/stats.py", "half = float(special.stdtrit(df, 1 - alpha)) * se", "half = float(special.stdtrit(df, 0.75)) * se", "a 50% interval"),
    ("judging/stats.py", "wins = float((per_seed > 0).sum() + 0.5 * (per_seed == 0).sum())", "wins = float((per_seed >= 0).sum() + 0.5 * (per_seed == 0).sum())", "ties counted as wins in P(T>C)"),
    ("judging/stats.py", '        verdict, note = Verdict.INCONCLUSIVE, f"closest rival: {closest_name}"', '        verdict, note = Verdict.CONTRADICTED, f"closest rival: {closest_name}"', "best-of INCONCLUSIVE turned into CONTRADICTED"),
    ("judging/stats.py", "    ci = _t_interval(mean, se, df, alpha)\n    return ClaimStats(", "    ci = _t_interval(mean, se, df, 0.00005)\n    return ClaimStats(", "equivalence interval widened to 99.99%"),
    ("judging/stats.py", "p_drop = float(_lower_tail((diff + margin) / se, df))", "p_drop = float(_lower_tail((diff + 0) / se, df))", "regression margin ignored"),
    ("judging/stats.py", "p_rise = float(_upper_tail((diff - margin) / se, df))", "p_rise = float(_upper_tail((diff - 0) / se, df))", "regression margin ignored for a rise"),
    ("judging/stats.py", "adjusted = holm(p_other.tolist())", "adjusted = p_other.tolist()", "no Holm across rivals"),
    ("judging/stats.py", "return float(values.std(ddof=1)) * math.sqrt(1 / n + 1), n - 1", "return float(values.std(ddof=1)) * math.sqrt(1 / n), n - 1", "the paper's run treated as exact"),
    ("judging/stats.py", "    if _no_spread(per_seed):\n", "    if False:\n", "zero spread tested"),
    ("judging/claims.py", "    if not degenerate:\n        return result\n", "    if True:\n        return result\n", "degenerate runs counted"),
    ("judging/claims.py", '    if claim.kind == "regression":\n        return replace(\n            result, note=', '    if False:\n        return replace(\n            result, note=', "a regression check silenced by a degenerate run"),
    ("judging/stats.py", "    bad = np.argwhere(~np.isfinite(values))", "    bad = []", "non-finite scores accepted"),
    ("judging/claims.py", "    if len(set(seeds)) != len(seeds):", "    if False:", "duplicate seeds accepted"),
    ("judging/stats.py", "    elif p_other < alpha:", "    elif p_other < 2 * alpha:", "paired contradiction at 2 alpha"),
]
survivors = []
for filename, old, new, label in MUTATIONS:
    work = pathlib.Path(tempfile.mkdtemp()) / "tree"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", ".git", "mutants", "__pycache__"))
    path = work / "pneumobench" / filename
    text = path.read_text()
    assert text.count(old) == 1, (label, text.count(old))
    path.write_text(text.replace(old, new))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/test_stats.py",
                           "tests/test_stats_outputs.py", "tests/test_claims.py"],
                          cwd=work, capture_output=True, text=True, env={"PYTHONPATH": str(work), "PATH": "/usr/bin:/bin", "HOME": str(work)})
    failing = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    print(f"{'killed' if proc.returncode else 'SURVIVED'}: {label} ({failing[0] if failing else 'no test failed'})",
          flush=True)
    if not proc.returncode:
        survivors.append(label)
    shutil.rmtree(work.parent)
sys.exit(f"{len(survivors)} listed mutation(s) survived: {', '.join(survivors)}" if survivors else 0)
