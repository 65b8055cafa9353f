"""The contract every registered entry runs through, built-in or a user's: losses, judges,
profiles, executors and report sections (blocks have theirs in tests/test_models.py). A new
entry is tested here without writing a test; a judge of a new claim kind needs clear cases in
``JUDGE_CASES`` (a test fails until it has them)."""

import dataclasses
import inspect
import json
import math
import os
import zlib
from pathlib import Path

import pytest
import torch
from fakes import cpu_environment, fake_run

from pneumobench.data.prepared import MASK_ROWS, RESIZES
from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig, SyntheticSpec, config_name
from pneumobench.experiment.profiles import PROFILES, get_profile
from pneumobench.judging.baselines import load_paper, record
from pneumobench.judging.claims import JUDGES, claim_alpha, evaluate, verdict_record
from pneumobench.judging.stats import MIN_SEEDS, ClaimStats, Verdict
from pneumobench.papers.viel_orhan_2020.claims import all_claims, regression_claims
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
from pneumobench.reporting.report import SECTIONS, write_report
from pneumobench.runs.executors import EXECUTORS, Executor, ExecutorSettings, Job, train_job
from pneumobench.training.losses import SEG_LOSSES

SMOKE = get_profile("smoke")
BASELINES = Path(__file__).resolve().parents[1] / "baselines"
SEEDS = (0, 1, 2, 3, 4)


# Segmentation losses ---------------------------------------------------------------------


def _masks(batch=3, size=16):
    """Binary masks with one square per image, and one empty image (a negative case)."""
    masks = torch.zeros(batch, 1, size, size)
    for i in range(batch - 1):
        masks[i, :, 2 + i : 8 + i, 3:10] = 1
    return masks


@pytest.mark.parametrize("name", SEG_LOSSES.names())
def test_every_registered_loss_is_a_finite_scalar_with_finite_gradients(name):
    masks = _masks()
    logits = torch.randn(masks.shape, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss = SEG_LOSSES.get(name).fn(logits, masks)
    assert loss.shape == () and torch.isfinite(loss) and loss.item() >= 0
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    weight = SEG_LOSSES.get(name).cls_weight
    assert isinstance(weight, float) and 0 <= weight < float("inf")


@pytest.mark.parametrize("name", SEG_LOSSES.names())
def test_every_registered_loss_prefers_the_truth_to_its_inverse(name):
    masks = _masks()
    confident = 6 * (2 * masks - 1)  # +6 inside each mask, -6 outside
    fn = SEG_LOSSES.get(name).fn
    assert fn(confident, masks) < fn(torch.zeros_like(masks), masks) < fn(-confident, masks)


# Judges: clear cases each way, on the paper's own claims ------------------------------------

PAPER = {c.id: c for c in all_claims(load_paper(BASELINES / "paper.json")) + regression_claims()}
# (kind, claim, how its runs differ, the treatment's shift, the verdict). A paired or best
# claim: a 0.1 Dice advantage on every image and seed, or the same disadvantage. A row or
# regression claim: per-seed Dice 0.6 +- 0.002 against a recorded 0.6 +- 0.002, shifted.
JUDGE_CASES = [
    ("paired", PAPER["aspp-improves-dice"], "image", +0.1, Verdict.REPRODUCED),
    ("paired", PAPER["aspp-improves-dice"], "image", -0.1, Verdict.CONTRADICTED),
    ("best", PAPER["best-dice-is-aspp-hypercolumns"], "image", +0.1, Verdict.REPRODUCED),
    ("best", PAPER["best-dice-is-aspp-hypercolumns"], "image", -0.1, Verdict.CONTRADICTED),
    ("row", PAPER["table6-aspp-dice"], "seed", 0.0, Verdict.REPRODUCED),
    ("row", PAPER["table6-aspp-dice"], "seed", +0.1, Verdict.CONTRADICTED),
    ("regression", PAPER["regression-aspp-dice"], "seed", 0.0, Verdict.NO_REGRESSION),
    ("regression", PAPER["regression-aspp-dice"], "seed", -0.1, Verdict.REGRESSED),
    ("regression", PAPER["regression-aspp-dice"], "seed", +0.1, Verdict.CHANGED),
    ("parameters", PAPER["aspp-is-800k-parameters-lighter"], None, 0.0, Verdict.REPRODUCED),
    (
        "parameters",
        dataclasses.replace(PAPER["aspp-is-800k-parameters-lighter"], treatment=("hypercolumns",)),
        None,
        0.0,
        Verdict.CONTRADICTED,
    ),
]


def test_every_registered_judge_has_clear_cases_here():
    missing = sorted(set(JUDGES.names()) - {kind for kind, *_ in JUDGE_CASES})
    assert not missing, f"add clear cases for claim kind(s) {missing} to JUDGE_CASES"
    for kind, claim, *_ in JUDGE_CASES:
        assert claim.kind == kind


def _steady(results, shift):
    """``results`` with a per-seed Dice of 0.6 + shift +- 0.002: a stable configuration."""
    return [dataclasses.replace(r, dice=0.6 + shift + 0.001 * (r.seed - 2)) for r in results]


def _case_runs(claim, spread, shift, dataset):
    def runs(mods, dice_shift=0.0):  # each configuration's own noise (fake_run's default key can repeat)
        key = zlib.crc32(config_name(mods).encode())
        return [
            fake_run(SMOKE.config(*mods), s, dataset, env=cpu_environment(), dice_shift=dice_shift, rng_key=[key, s])
            for s in SEEDS
        ]

    if spread == "image":
        return {mods: runs(mods, shift if mods == claim.treatment else 0.0) for mods in claim.configs()}
    return {mods: _steady(runs(mods), shift) for mods in claim.configs()}


@pytest.mark.parametrize(
    ("kind", "claim", "spread", "shift", "verdict"),
    JUDGE_CASES,
    ids=[f"{kind}-{claim.id}-{shift:+}" for kind, claim, _, shift, _ in JUDGE_CASES],
)
def test_every_registered_judge_decides_its_clear_cases(kind, claim, spread, shift, verdict, tiny_dataset, tmp_path):
    recorded_runs = _steady([fake_run(SMOKE.config("aspp"), s, tiny_dataset, env=cpu_environment()) for s in SEEDS], 0)
    recorded = record(tmp_path / "smoke-cpu.json", profile="smoke", device_kind="cpu", results=recorded_runs)
    by_mods = _case_runs(claim, spread, shift, tiny_dataset)
    result = evaluate(claim, by_mods.__getitem__, recorded=recorded, use_paper_values=False, profile="smoke")
    assert isinstance(result, ClaimStats) and result.verdict == verdict, result.note
    assert result.decided_by and result.seeds == (len(SEEDS) if claim.configs() else 0)
    if claim.configs():  # a test at the claim's family's alpha
        assert result.alpha == claim_alpha(claim) and 0 <= result.p_value <= 1
    else:  # exact, spends no alpha
        assert math.isnan(result.alpha) and math.isnan(result.p_value)
    json.dumps(verdict_record(claim, result, synthetic=True, profile="smoke"))  # plain data, for the report


# Profiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES.names())
def test_every_registered_profile_runs_every_table6_row(name):
    profile = PROFILES.get(name)
    assert profile.name == name and profile.description
    assert len(set(profile.seeds)) == len(profile.seeds) >= MIN_SEEDS
    assert all(isinstance(s, int) and s >= 0 for s in profile.seeds)
    assert profile.synthetic is None or isinstance(profile.synthetic, SyntheticSpec)
    assert profile.mask_rows in MASK_ROWS and profile.resize in RESIZES and profile.checkpoint_every >= 1
    assert profile.dataset_problem({"mask_rows": profile.mask_rows, "resize": profile.resize}) is None
    keys = set()
    for row in table6_rows():
        config = profile.config(*row)
        assert set(config.modifications) == set(row)
        assert ExperimentConfig.from_json(config.to_json()).key() == config.key()
        keys.add(config.key())
    assert len(keys) == len(table6_rows())  # every row trains something different


# Executors ---------------------------------------------------------------------------------

TINY = ExperimentConfig(
    model=ModelConfig(encoder="resnet18"),
    image_size=32,
    batch_size=16,
    stages=(StageConfig(1, 3e-3, 1e-3, freeze_encoder=True), StageConfig(1, 3e-3, 1e-4)),
)
PROTOCOL = [name for name, member in inspect.getmembers(Executor) if inspect.isfunction(member)]


@pytest.fixture
def executor_factory(request):
    name = request.param
    if name == "ray" and os.environ.get("PNEUMOBENCH_REQUIRE_RAY") != "1":
        pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    yield name, EXECUTORS.get(name)
    if name == "ray":
        import ray

        ray.shutdown()


@pytest.mark.parametrize("executor_factory", EXECUTORS.names(), indirect=True)
def test_every_registered_executor_trains_a_job_as_this_process_does(executor_factory, tiny_dataset, tmp_path):
    name, factory = executor_factory
    if name == "ray":
        import ray

        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)  # never a cluster another test started
    executor = factory(ExecutorSettings(workers=1, cpus_per_run=1))
    assert executor.name == name and all(callable(getattr(executor, method)) for method in PROTOCOL)
    assert executor.run_device_kind("cpu") == "cpu"

    def job(where):
        device = executor.job_device("cpu", 0)
        return Job(TINY.to_json(), 0, "k", device, str(tmp_path / where / "ckpt.pt"), 1, 1)

    here = train_job(job("here"), tiny_dataset)
    events = list(executor.train([job("there")], tiny_dataset))
    assert [type(event).__name__ for event in events] == ["Started", "Finished"], events
    trained = events[1].outcome
    assert not isinstance(trained, BaseException), trained
    assert events[0].node == trained.node
    there = json.loads(trained.result_json)
    mine = json.loads(here.result_json)
    for field in ("dice_per_image", "cls_prob", "correct", "epoch_scores", "config_key", "seed"):
        assert there[field] == mine[field], field
    assert trained.source == here.source and trained.device_kind == "cpu"


# Report sections ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tiny_dataset, tmp_path_factory):
    from fakes import store_runs

    from pneumobench.runs.store import ResultStore

    store = tmp_path_factory.mktemp("sections") / "results.sqlite"
    store_runs(ResultStore(store), [fake_run(SMOKE.config(*m), s, tiny_dataset, synthetic=True)
                                    for m in [(), ("aspp",)] for s in (0, 1, 2)])
    return write_report(store, tmp_path_factory.mktemp("report"), baselines_dir=BASELINES)


@pytest.mark.parametrize("name", SECTIONS.names())
def test_every_registered_section_is_a_headed_block_of_the_markdown(name, report):
    lines = SECTIONS.get(name)(report.data)
    assert lines and all(isinstance(line, str) for line in lines)
    assert lines[0].startswith(("# ", "## ")) and lines[-1] == ""  # a heading, and a blank line before the next
    assert "\n".join(lines) in report.markdown


def test_the_markdown_is_the_sections_in_registration_order(report):
    blocks = ["\n".join(section(report.data)) for _, section in SECTIONS.in_order()]
    assert report.markdown == "\n".join(blocks)
