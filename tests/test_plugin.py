"""The pytest plugin, driven with pytester: outcomes per verdict, --pb-strict, the summary
table, --pb-update-baselines, and the README's "adding a modification" path end to end."""

import json
import textwrap

import pytest

# In-process pytester runs drop modules first imported during a run; torch cannot be
# imported twice, so everything the inner runs use is imported here first.
import pneumobench.baselines  # noqa: F401
import pneumobench.claims  # noqa: F401
import pneumobench.figures  # noqa: F401
import pneumobench.report  # noqa: F401
import pneumobench.runner  # noqa: F401

pytest_plugins = ["pytester"]

FAKE_VERDICTS = textwrap.dedent(
    """
    import pytest
    from pneumobench.claims import Claim
    from pneumobench.stats import ClaimStats, Verdict

    pytestmark = pytest.mark.paper

    @pytest.mark.parametrize("verdict", ["REPRODUCED", "CONTRADICTED", "INCONCLUSIVE"])
    def test_verdict(verdict, pb_judge):
        claim = Claim(f"fake-{verdict.lower()}", "paired", "Table 0", f"a {verdict.lower()} claim", ("x",))
        stats = ClaimStats(verdict=Verdict(verdict), seeds=3, estimate=0.01, ci_low=0.0, ci_high=0.02,
                           p_value=0.2, alpha=0.05, paper=0.005, p_outperform=0.67, seeds_needed=9)
        pb_judge(claim, stats)
    """
)


def test_outcomes_follow_the_verdicts(pytester, tiny_dataset):
    pytester.makepyfile(test_fake=FAKE_VERDICTS)
    # --pb-data with a dataset not drawn by the generator: the data counts as real
    result = pytester.runpytest("-p", "no:cacheprovider", "--pb-report", "report", f"--pb-data={tiny_dataset.path}")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    result.stdout.fnmatch_lines([
        "*pneumobench verdicts*",
        "*claim*source*target*measured*95% CI*p*p (Holm)*P(T>C)*seeds*seeds needed*verdict*",
        "*fake-reproduced*Table 0*+0.0050*+0.0100*[+0.0000, +0.0200]*0.2*0.6*0.67*3*9*REPRODUCED*",
        "*fake-contradicted*CONTRADICTED*",
        "*fake-inconclusive*INCONCLUSIVE*",
    ])
    report = json.loads((pytester.path / "report" / "report.json").read_text())
    assert [r["claim"] for r in report["claims"]] == ["fake-reproduced", "fake-contradicted", "fake-inconclusive"]
    assert report["runs"] == 0 and report["notes"][0].startswith("no Table 6 or figures of runs: no results store")
    markdown = (pytester.path / "report" / "report.md").read_text()
    assert "| fake-contradicted " in markdown and "![effects](figures/effects.png)" in markdown


def test_on_synthetic_data_a_contradiction_is_an_xfail(pytester):
    pytester.makepyfile(test_fake=FAKE_VERDICTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rx")
    result.assert_outcomes(passed=1, xfailed=2)
    result.stdout.fnmatch_lines([
        "*NOTE: synthetic data: exercises the pipeline, not evidence about the paper*",
        "*CONTRADICTED: a contradicted claim*[[]synthetic data: exercises the pipeline, not evidence about the paper]*",
    ])


def test_inconclusive_xfail_says_how_many_seeds_would_decide(pytester):
    pytester.makepyfile(test_fake=FAKE_VERDICTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rx", "-k", "INCONCLUSIVE")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*INCONCLUSIVE: a inconclusive claim*about 9 seeds would decide*"])


def test_strict_turns_inconclusive_into_a_failure(pytester):
    pytester.makepyfile(test_fake=FAKE_VERDICTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--pb-strict")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*(--pb-strict)*"])


TINY_PROFILE = textwrap.dedent(
    """
    from pneumobench.config import PROFILES, ExperimentConfig, ModelConfig, Profile, StageConfig, register_profile
    from pneumobench.data.cache import SyntheticSpec

    if "tiny" not in PROFILES:
        register_profile(Profile(
            name="tiny",
            base=ExperimentConfig(model=ModelConfig(encoder="resnet18", mask_bias=-3.0), image_size=32, batch_size=8,
                                  stages=(StageConfig(1, 1e-2, 1e-3),)),
            seeds=(0, 1, 2),
            synthetic=SyntheticSpec(n_positive=12, n_negative=12, size=32, difficulty=0.2),
            description="plugin tests",
        ))
    """
)

REGRESSION_SUITE = textwrap.dedent(
    """
    import numpy as np
    import pytest
    from pneumobench.claims import Claim
    from pneumobench.stats import regression_check

    @pytest.mark.regression
    @pytest.mark.parametrize("row", [()], ids=["baseline"])
    def test_no_regression(row, pb, pb_judge):
        recorded = pb.recorded()
        if recorded is None:
            pytest.skip("no recorded baseline")
        baseline = recorded.values("baseline", "dice")
        runs = {r.seed: r.dice for r in pb.runs_for(row)}
        stats = regression_check(np.array([runs[s] for s in sorted(baseline)]),
                                 np.array([baseline[s] for s in sorted(baseline)]), margin=0.02)
        pb_judge(Claim("regression-baseline-dice", "regression", "tiny", "baseline keeps its dice", row), stats)
    """
)


@pytest.fixture
def tiny_env(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PNEUMOBENCH_CACHE", str(tmp_path / "cache"))
    pytester.makeconftest(TINY_PROFILE)
    (pytester.path / "baselines").mkdir()
    return ["-p", "no:cacheprovider", "--pb-profile=tiny", f"--pb-store={tmp_path / 'store.sqlite'}", "--pb-workers=1"]


def test_update_baselines_then_regression_passes(pytester, tiny_env):
    pytester.makepyfile(test_regression=REGRESSION_SUITE)
    first = pytester.runpytest(*tiny_env, "-m", "regression")
    first.assert_outcomes(skipped=1)
    recorded = pytester.runpytest(*tiny_env, "-m", "regression", "--pb-update-baselines")
    recorded.stdout.fnmatch_lines(["*recorded baseline written to*tiny-cpu.json (3 runs)*"])
    data = json.loads((pytester.path / "baselines" / "tiny-cpu.json").read_text())
    assert data["profile"] == "tiny" and sorted(data["configs"]["baseline"]["dice"]) == ["0", "1", "2"]
    again = pytester.runpytest(*tiny_env, "-m", "regression", "-rs")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*regression-baseline-dice*NO REGRESSION*"])


NEW_MODIFICATION = textwrap.dedent(
    """
    import pytest
    import torch
    from torch import nn
    from pneumobench.claims import Claim, evaluate
    from pneumobench.models.registry import ATTENTIONS, register_attention
    from pneumobench.modifications import MODIFICATIONS, modification

    if "gate" not in ATTENTIONS:
        @register_attention("gate")
        class Gate(nn.Module):
            def __init__(self, channels):
                super().__init__()
                self.gate = nn.Parameter(torch.zeros(1, channels, 1, 1))

            def forward(self, x):
                return x * 2 * torch.sigmoid(self.gate)

    if "gate" not in MODIFICATIONS:
        @modification("gate")
        def gate(config):
            return config.replace_model(attention="gate")

    GATE_CLAIM = Claim("gate-improves-dice", "paired", "my paper", "the gate improves Dice", ("gate",), metric="dice",
                       direction=+1, paper=0.01)

    @pytest.mark.paper
    @pytest.mark.parametrize("claim", [GATE_CLAIM], ids=lambda c: c.id)
    def test_claim(claim, pb, pb_judge):
        pb_judge(claim, evaluate(claim, pb.runs_for, alpha=pb.alpha, base=pb.profile.base))
    """
)


def test_adding_a_modification_gets_a_verdict(pytester, tiny_env):
    pytester.makepyfile(test_gate=NEW_MODIFICATION)
    result = pytester.runpytest(*tiny_env, "-m", "paper", "-k", "gate")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) + outcomes.get("xfailed", 0) == 1
    result.stdout.fnmatch_lines(["*pneumobench verdicts*", "*gate-improves-dice*my paper*+0.0100*"])
