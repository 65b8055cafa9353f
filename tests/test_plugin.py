"""The pytest plugin, driven with pytester: outcomes per verdict, --pb-strict, the summary
table, usage errors, --pb-update-baselines and the regression check against planted changes,
the README's "Adding a modification" path, and the same verdicts from a full session, a
``-k`` selection and ``pneumobench report``. Runs are hand-made (``fakes``), so every
expected verdict is known."""

import json
import shutil
import sys
import textwrap
from pathlib import Path

import contourpy  # noqa: F401

# In-process pytester runs drop modules first imported during a run; torch cannot be
# imported twice, so everything the inner runs use is imported here first.
import matplotlib.backends.backend_agg
import matplotlib.contour  # noqa: F401
import pytest
import torch
from fakes import cpu_environment, fake_run, store_runs

import pneumobench.judging.baselines
import pneumobench.judging.claims
import pneumobench.reporting.figures
import pneumobench.reporting.report
import pneumobench.runs.runner  # noqa: F401
from pneumobench.experiment.config import ExperimentConfig
from pneumobench.experiment.profiles import PROFILES, get_profile
from pneumobench.judging import families
from pneumobench.judging.baselines import MATCHED_VERSIONS, record
from pneumobench.judging.looks import SequentialPlan
from pneumobench.judging.verdicts import verdict_line
from pneumobench.models.extensions import ATTENTIONS
from pneumobench.papers.viel_orhan_2020.modifications import MODIFICATIONS, table6_rows
from pneumobench.reporting.report import write_report
from pneumobench.runs.runner import key_of
from pneumobench.runs.store import ResultStore

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _inner_sessions_are_not_xdist_workers(monkeypatch):
    """The inner pytest sessions run in this process: under ``pytest -n 2`` they would inherit
    this worker's PYTEST_XDIST_WORKER and behave as xdist workers (no verdict summary)."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
ROOT = Path(__file__).resolve().parents[1]
BASELINES, SUITES = ROOT / "baselines", ROOT / "suites"

FAKE_VERDICTS = textwrap.dedent(
    """
    import pytest
    from pneumobench.judging.claims import Claim
    from pneumobench.judging.stats import ClaimStats, Verdict

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
        "*claim*source*target*measured*CI (1-2 alpha)*p*alpha*P(T>C)*seeds*seeds needed*flags*verdict*",
        "*fake-reproduced*Table 0*+0.0050*+0.0100*[+0.0000, +0.0200]*0.2*0.05*0.67*3*9*REPRODUCED*",
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
        "NOTE: synthetic data: exercises the pipeline, not evidence about the paper",
        "3 claims: 1 REPRODUCED, 1 INCONCLUSIVE, 1 CONTRADICTED",
        "next: judge the paper on its data: *",
        "*XFAIL*CONTRADICTED: a contradicted claim*",
    ])
    assert result.stdout.str().count("not evidence about the paper") == 1  # said once, not per xfail


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
    from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig, SyntheticSpec
    from pneumobench.experiment.profiles import PROFILES, Profile, register_profile

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

GATE = textwrap.dedent(
    """
    import torch
    from torch import nn
    from pneumobench.experiment import MODIFICATIONS, modification
    from pneumobench.judging import Claim, Family, register_family
    from pneumobench.models.extensions import ATTENTIONS, register_attention

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
                       direction=+1, paper=0.01, family="my-paper")
    register_family(Family("my-paper", alpha=0.05, members=(GATE_CLAIM.id,)))
    """
)
NEW_CLAIM_SUITE = textwrap.dedent(
    """
    import pytest
    from gate import GATE_CLAIM

    @pytest.mark.paper
    @pytest.mark.parametrize("claim", [GATE_CLAIM], ids=lambda c: c.id)
    def test_claim(claim, pb, pb_judge):
        pb_judge(claim, pb.evaluate(claim))
    """
)

REGRESSION_SUITE = textwrap.dedent(
    """
    import pytest
    from pneumobench.papers.viel_orhan_2020.claims import regression_claims

    CHECKS = [c for c in regression_claims() if c.treatment == () and c.metric == "dice"]

    @pytest.mark.regression
    @pytest.mark.parametrize("check", CHECKS, ids=["baseline-dice"])
    def test_no_regression(check, pb, pb_judge):
        pb_judge(check, pb.evaluate(check))
    """
)


@pytest.fixture
def isolated_registries(monkeypatch):
    """Profiles, modifications, attentions and families registered during a test (here and by
    the inner sessions, which run in this process) are forgotten after it."""
    for registry in (PROFILES, MODIFICATIONS, ATTENTIONS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(families, "FAMILIES", dict(families.FAMILIES))
    exec(TINY_PROFILE, {})  # the same profile and gate here, to build the runs the inner sessions will find
    exec(GATE, {})


@pytest.fixture
def tiny_env(pytester, tmp_path, tiny_dataset, isolated_registries):
    """An inner project with the tiny profile and an empty store; returns (args, store)."""
    pytester.makeconftest(TINY_PROFILE)
    pytester.makepyfile(gate=GATE)
    (pytester.path / "baselines").mkdir()
    shutil.copy(BASELINES / "paper.json", pytester.path / "baselines" / "paper.json")
    store = ResultStore(tmp_path / "store.sqlite")
    args = ["-p", "no:cacheprovider", "--pb-profile=tiny", f"--pb-store={store.path}", "--pb-workers=1",
            f"--pb-data={tiny_dataset.path}", "-rxX"]
    return args, store


def tiny_runs(dataset, mods, *, shift=0.0, **kwargs):
    profile = get_profile("tiny")
    return [fake_run(profile.config(*mods), seed, dataset, dice_shift=shift, env=cpu_environment(), **kwargs)
            for seed in profile.seeds]


def test_usage_errors_are_one_line(pytester, tiny_dataset):
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    (pytester.path / "broken").mkdir()
    (pytester.path / "broken" / "manifest.json").write_text("{}")
    for option, message in [
        ("--pb-seeds=0,0,1", "*pneumobench: seed 0 is given more than once: seeds must be distinct*"),
        ("--pb-seeds=0,-1", "*pneumobench: seed -1 is negative: seeds are integers >= 0*"),
        ("--pb-seeds=abc", "*pneumobench: seeds 'abc': give a count (5) or a comma-separated list*"),
        ("--pb-seeds=0", "*pneumobench: seed count 0: give at least 1*"),
        ("--pb-profile=unknown", "*pneumobench: unknown profile 'unknown'; registered: *smoke*"),
        ("--pb-device=banana", "*pneumobench: --pb-device: device 'banana': give auto, cpu, cuda or cuda:N*"),
        ("--pb-workers=0", "*pneumobench: --pb-workers 0: give at least 1*"),
        ("--pb-data=no/such/dir", "*pneumobench: --pb-data no/such/dir: no such directory*"),
        ("--pb-data=.", "*pneumobench: --pb-data .: not a prepared dataset (no manifest.json)*"),
        ("--pb-data=broken", "*pneumobench: --pb-data: broken: file ids.json is missing*"),
        ("--pb-device=cuda:99", "*pneumobench: --pb-device: device 'cuda:99': *"),  # no such card on any machine
        ("--pb-max-seeds=10", "*pneumobench: --pb-max-seeds applies only with --pb-seeds auto"),
        ("--pb-spending=pocock", "*pneumobench: --pb-spending applies only with --pb-seeds auto"),
        ("--pb-seeds=auto --pb-max-seeds=3", "*pneumobench: --pb-max-seeds 3: give at least 5, the first look's seeds"),
        ("--pb-seeds=auto --pb-spending=linear", "*pneumobench: --pb-spending linear: give obrien-fleming or pocock"),
        ("--pb-executor=spark", "*pneumobench: --pb-executor spark: unknown executor; registered: local, ray"),
        ("--pb-ray-address=auto", "*pneumobench: --pb-ray-address applies only with --pb-executor ray"),
        ("--pb-gpus-per-run=0", "*pneumobench: --pb-gpus-per-run 0: give a share of one GPU (0 < x <= 1, e.g. 0.5) "
                                "or a whole number of GPUs (1, 2)"),
        ("--pb-gpus-per-run=1.5", "*pneumobench: --pb-gpus-per-run 1.5: give a share of one GPU*"),
        (
            f"--pb-profile=authors --pb-data={tiny_dataset.path}",
            f"*pneumobench: --pb-data {tiny_dataset.path}: it was prepared with --mask-rows union --resize area, and "
            "profile 'authors' needs --mask-rows first --resize bilinear (pneumobench data prepare SIIM_DIR DIR "
            "--mask-rows first --resize bilinear)",
        ),
    ]:
        result = pytester.runpytest("-p", "no:cacheprovider", *option.split())
        assert result.ret == pytest.ExitCode.USAGE_ERROR, option
        result.stderr.fnmatch_lines([f"ERROR: {message}"])
        assert "Traceback" not in result.stderr.str()


def test_the_plugin_refuses_the_ray_executor_without_ray(pytester, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--pb-executor=ray")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == ("ERROR: pneumobench: --pb-executor ray: the ray executor needs Ray, which is not "
                                      "installed: install the optional extra: pip install -e '.[ray]' (or pip install "
                                      "'ray>=2.9')")
    assert "Traceback" not in result.stderr.str()


def test_regression_check_catches_a_planted_drop_and_mismatches(pytester, tiny_env, tiny_dataset):
    args, store = tiny_env
    store_runs(store, tiny_runs(tiny_dataset, ()))
    pytester.makepyfile(test_regression=REGRESSION_SUITE)
    missing = pytester.runpytest(*args, "-m", "regression")
    missing.assert_outcomes(xfailed=1)
    missing.stdout.fnmatch_lines(["*INCONCLUSIVE*no recorded baseline for this profile and device*"])

    recorded = pytester.runpytest(*args, "-m", "regression", "--pb-update-baselines")
    recorded.stdout.fnmatch_lines(["*recorded baseline written to*tiny-cpu.json (3 runs)*"])
    path = pytester.path / "baselines" / "tiny-cpu.json"
    data = json.loads(path.read_text())
    assert data["profile"] == "tiny" and data["device_kind"] == "cpu"
    assert data["dataset_fingerprint"] == tiny_dataset.fingerprint
    assert data["configs"]["baseline"]["config_key"] == get_profile("tiny").config().key()
    assert {lib: data["environment"][lib] for lib in MATCHED_VERSIONS} == {lib: cpu_environment()[lib] for lib in MATCHED_VERSIONS}

    same = pytester.runpytest(*args, "-m", "regression")
    same.assert_outcomes(passed=1)

    higher = json.loads(path.read_text())  # the recorded runs were 0.3 better: today's runs dropped
    higher["configs"]["baseline"]["dice"] = {s: min(v + 0.3, 1.0) for s, v in higher["configs"]["baseline"]["dice"].items()}
    path.write_text(json.dumps(higher))
    dropped = pytester.runpytest(*args, "-m", "regression")
    dropped.assert_outcomes(failed=1)
    dropped.stdout.fnmatch_lines(["*REGRESSED: baseline keeps its dice*drop 0.3* > margin 0.02*"])

    other_torch = json.loads(path.read_text())
    other_torch["environment"]["torch"] = "1.0.0"
    path.write_text(json.dumps(other_torch))
    mismatched = pytester.runpytest(*args, "-m", "regression")
    mismatched.assert_outcomes(xfailed=1)
    mismatched.stdout.fnmatch_lines(["*INCONCLUSIVE*torch version '1.0.0' recorded*re-record with --pb-update-baselines*"])


@pytest.mark.parametrize("shift, outcome, verdict", [(0.2, "passed", "REPRODUCED"), (-0.2, "failed", "CONTRADICTED")])
def test_adding_a_modification_gets_its_verdict(pytester, tiny_env, tiny_dataset, shift, outcome, verdict):
    args, store = tiny_env
    store_runs(store, tiny_runs(tiny_dataset, ()) + tiny_runs(tiny_dataset, ("gate",), shift=shift))
    pytester.makepyfile(test_gate=NEW_CLAIM_SUITE)
    result = pytester.runpytest(*args, "-m", "paper")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines([
        "*family my-paper: alpha 0.05 over its 1 claim (Bonferroni, 0.05 per test)*",
        f"*gate-improves-dice*my paper*+0.0100*{verdict}*",
    ])


def test_a_degenerate_configuration_is_flagged_and_never_evidence(pytester, tiny_env, tiny_dataset):
    args, store = tiny_env
    gate = tiny_runs(tiny_dataset, ("gate",), shift=0.2, constant_classifier=True)
    store_runs(store, tiny_runs(tiny_dataset, ()) + gate)
    pytester.makepyfile(test_gate=NEW_CLAIM_SUITE)
    result = pytester.runpytest(*args, "-m", "paper")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines([
        "*gate-improves-dice*degenerate*INCONCLUSIVE*",
        "*rests on a degenerate configuration: gate seed 0: constant classifier (every image positive)*",
    ])


def _verdict_lines(records):
    return {r["claim"]: verdict_line(r) for r in records}


def test_full_session_k_selection_and_report_agree(pytester, tiny_env, tiny_dataset, tmp_path, monkeypatch):
    """The same runs judged four ways give the same verdict line for every claim, the last a report
    from a folder with no ``baselines/`` (the store keeps the recorded baseline the session used)."""
    args, store = tiny_env
    shifts = {("aspp",): 0.1, ("scse",): 0.12, ("aspp", "hypercolumns"): 0.15}  # scSE raises Dice: contradicted
    runs = [run for mods in table6_rows()
            for run in tiny_runs(tiny_dataset, mods, shift=shifts.get(mods, 0.0), constant_classifier=mods == ("lovasz",))]
    store_runs(store, runs)
    record(pytester.path / "baselines" / "tiny-cpu.json", profile="tiny", device_kind="cpu", results=runs)
    suites = pytester.mkdir("suites")
    for name in ("test_claims.py", "test_ablation.py"):  # renamed: tests/test_claims.py is imported already
        shutil.copy(SUITES / name, suites / name.replace("test_", "test_suite_"))

    full = pytester.runpytest(*args, "suites", "-m", "paper", "--pb-report", str(tmp_path / "full"))
    outcomes = full.parseoutcomes()
    # real (not synthetic) data: the contradicted scSE claim fails
    assert outcomes["passed"] >= 3 and outcomes["failed"] == 1 and outcomes["passed"] + 1 + outcomes["xfailed"] == 44
    full_lines = _verdict_lines(json.loads((tmp_path / "full" / "report.json").read_text())["claims"])
    assert full_lines["aspp-improves-dice"].startswith("REPRODUCED")
    assert full_lines["scse-lowers-dice"].startswith("CONTRADICTED")
    assert full_lines["lovasz-improves-dice"].startswith("INCONCLUSIVE") and "degenerate" in full_lines["lovasz-improves-dice"]

    selected = pytester.runpytest(*args, "suites", "-m", "paper", "-k", "aspp-improves-dice or scse-lowers-dice",
                                  "--pb-report", str(tmp_path / "k"))
    selected.assert_outcomes(passed=1, failed=1)
    k_lines = _verdict_lines(json.loads((tmp_path / "k" / "report.json").read_text())["claims"])
    assert k_lines == {claim: full_lines[claim] for claim in ("aspp-improves-dice", "scse-lowers-dice")}

    report = write_report(store.path, tmp_path / "cli", baselines_dir=pytester.path / "baselines")
    assert _verdict_lines(report.data["claims"]) == full_lines
    assert "from the recorded baseline" in full_lines["table6-baseline-dice"]
    monkeypatch.chdir(tmp_path)  # no baselines/ here or beside the store
    from_elsewhere = write_report(store.path, tmp_path / "elsewhere")
    assert _verdict_lines(from_elsewhere.data["claims"]) == full_lines


def test_sequential_session_stops_decided_claims_and_the_report_agrees(pytester, tiny_env, tiny_dataset, tmp_path):
    """--pb-seeds auto on stored runs of seeds 0-9: a large effect is decided before the cap, a
    degenerate configuration stops at once, the rest are undecided at the cap; the table shows
    the looks, and ``pneumobench report --seeds auto`` judges the store to the same verdict lines."""
    args, store = tiny_env
    shifts = {("aspp",): 0.1, ("scse",): 0.12}
    profile = get_profile("tiny")
    runs = [fake_run(profile.config(*mods), seed, tiny_dataset, dice_shift=shifts.get(mods, 0.0), env=cpu_environment(),
                     constant_classifier=mods == ("lovasz",))
            for mods in table6_rows() for seed in range(10)]
    store_runs(store, runs)
    suites = pytester.mkdir("suites")
    for name in ("test_claims.py", "test_ablation.py"):
        shutil.copy(SUITES / name, suites / name.replace("test_", "test_suite_"))
    session = pytester.runpytest(*args, "suites", "-m", "paper", "--pb-seeds=auto", "--pb-max-seeds=10",
                                 "--pb-report", str(tmp_path / "auto"))
    session.stdout.fnmatch_lines(["*sequential (--pb-seeds auto): looks at 5, 10 seeds, obrien-fleming alpha spending*"])
    records = {r["claim"]: r for r in json.loads((tmp_path / "auto" / "report.json").read_text())["claims"]}
    aspp = records["aspp-improves-dice"]
    assert aspp["verdict"] == "REPRODUCED" and aspp["extra"]["sequential"]["decided"]
    assert aspp["seeds"] == aspp["extra"]["sequential"]["seeds"] in (5, 10)
    lovasz = records["lovasz-improves-accuracy"]  # the constant classifier: degenerate, no seeds after the first look
    assert lovasz["verdict"] == "INCONCLUSIVE" and lovasz["degenerate"] and lovasz["seeds"] == 5
    open_at_cap = records["hypercolumns-improve-dice"]
    assert open_at_cap["verdict"] == "INCONCLUSIVE" and open_at_cap["seeds"] == 10
    assert open_at_cap["note"].startswith("undecided at the cap (10 seeds)")
    assert "sequential" not in records["aspp-is-800k-parameters-lighter"]["extra"]  # an exact count: no seeds
    no_baseline = records["table6-baseline-dice"]  # no recorded baseline: more seeds would not help
    assert no_baseline["verdict"] == "INCONCLUSIVE" and no_baseline["seeds"] == 5
    table = {row["claim"]: row for row in json.loads((tmp_path / "auto" / "report.json").read_text())["claims_table"]}
    assert table["hypercolumns-improve-dice"]["look"] == "2/2 at cap"
    assert table["lovasz-improves-accuracy"]["look"] == "1/2 stopped"
    report = write_report(store.path, tmp_path / "cli", baselines_dir=pytester.path / "baselines",
                          sequential=SequentialPlan(10))
    assert _verdict_lines(report.data["claims"]) == _verdict_lines(records.values())


def test_a_failed_run_is_reported_then_retrained_with_pb_retry_failed(pytester, tiny_env, tiny_dataset):
    """Once a failed run could only be retried through the API."""
    args, store = tiny_env
    runs = tiny_runs(tiny_dataset, ())
    store_runs(store, runs[1:])
    first = runs[0]
    key = key_of(ExperimentConfig.from_dict(first.config), first.seed, first.dataset_fingerprint, torch.device("cpu"))
    store.fetch_or_claim(key, config_key=first.config_key, config_name=first.config_name, seed=first.seed,
                         dataset_fingerprint=first.dataset_fingerprint, device_kind="cpu")
    store.fail(key, RuntimeError("out of memory"))
    pytester.makepyfile(test_regression=REGRESSION_SUITE)
    reported = pytester.runpytest(*args, "-m", "regression")
    reported.assert_outcomes(failed=1)
    reported.stdout.fnmatch_lines(["*failed earlier: RuntimeError: out of memory*"])
    assert [entry["status"] for entry in store.unfinished()] == ["failed"]

    retried = pytester.runpytest(*args, "-m", "regression", "--pb-retry-failed")
    retried.assert_outcomes(xfailed=1)  # trained now; INCONCLUSIVE only for want of a recorded baseline
    assert store.unfinished() == [] and store.done(key)


def test_every_id_in_the_verdict_table_selects_its_claim_with_k(pytester):
    """Once ``-k table6-aspp-dice`` (the id the table prints) collected nothing: the pytest id
    was ``aspp-dice``. One collection, then each id through pytest's own ``-k`` matching."""
    from _pytest.mark import KeywordMatcher
    from _pytest.mark.expression import Expression

    from pneumobench.judging.baselines import load_paper
    from pneumobench.papers.viel_orhan_2020.claims import PAPER_CLAIMS, regression_claims, table6_claims

    suites = pytester.mkdir("suites")
    for name in ("test_claims.py", "test_ablation.py", "test_regression.py"):  # renamed: tests/test_claims.py is imported
        shutil.copy(SUITES / name, suites / name.replace("test_", "test_suite_"))
    (pytester.path / "baselines").mkdir()
    shutil.copy(BASELINES / "paper.json", pytester.path / "baselines" / "paper.json")
    items, _ = pytester.inline_genitems("suites", "-p", "no:cacheprovider")
    claim_of = {item.nodeid: item.callspec.params.get("claim", item.callspec.params.get("check")).id for item in items}
    ids = [c.id for c in PAPER_CLAIMS + table6_claims(load_paper(BASELINES / "paper.json")) + regression_claims()]
    assert len(ids) == 44 + 32 and sorted(claim_of.values()) == sorted(ids)
    for claim_id in ids:
        expression = Expression.compile(claim_id)
        selected = [claim_of[item.nodeid] for item in items if expression.evaluate(KeywordMatcher.from_item(item))]
        assert selected == [claim_id], claim_id
