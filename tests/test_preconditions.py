"""What runs need, checked before any trains: by ``check_runs`` directly, and by a pytest
session at its start (one usage-error line, exit 4, nothing stored as a failed run).
``--pb-encoder-weights FILE`` trains from that file."""

import textwrap

import huggingface_hub.constants as hub
import pytest
import segmentation_models_pytorch  # noqa: F401 (imported before the in-process inner sessions)
import torch
from segmentation_models_pytorch.encoders import get_encoder

import pneumobench.judging.baselines
import pneumobench.models.encoder
import pneumobench.papers.viel_orhan_2020.claims
import pneumobench.reporting.report  # noqa: F401 (the inner sessions' modules, imported once here)
from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
from pneumobench.runs.runner import key_of
from pneumobench.runs.store import ResultStore
from pneumobench.training.preconditions import TrainingSetupError, check_runs, check_trainable

pytest_plugins = ["pytester"]

TINY = ExperimentConfig(model=ModelConfig(encoder="resnet18"), image_size=32, batch_size=8,
                        stages=(StageConfig(1, 1e-2, 1e-3),))


@pytest.fixture(autouse=True)
def _inner_sessions_are_not_xdist_workers(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


@pytest.mark.parametrize("changes, message", [
    ({"image_size": 64}, "config.image_size is 64 but the dataset * is 32x32 (prepare one at 64: pneumobench data "
                         "prepare SIIM_DIR DIR --size 64)"),
    ({"batch_size": 64}, "the dataset * has 48 training images, fewer than one batch of 64"),
    ({"batch_size": 24, "heldout_fraction": 0.6, "epoch_selection": "best-heldout"},
     "the dataset * has 20 training images, fewer than one batch of 24"),  # 48 less round(0.6 * 24) of each label
    ({"batch_size": 47, "drop_last": False}, "48 training images in batches of 47 leave a last batch of one image*"),
])
def test_a_configuration_that_cannot_train_is_named_before_training(tiny_dataset, changes, message):
    with pytest.raises(TrainingSetupError) as info:
        check_trainable(TINY.replace(**changes), tiny_dataset)
    from fnmatch import fnmatch

    assert fnmatch(str(info.value), message), str(info.value)


def test_the_trainable_configurations_pass(tiny_dataset):
    check_runs([TINY, TINY.replace(batch_size=48), TINY.replace(batch_size=47)], tiny_dataset)


def test_a_weights_file_that_does_not_fit_is_one_line(tiny_dataset, tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(get_encoder("resnet34", weights=None).state_dict(), path)
    with pytest.raises(TrainingSetupError) as info:
        check_runs([TINY.replace_model(encoder_weights=str(path))], tiny_dataset)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"encoder weights file {path} does not match the encoder:; unexpected: layer")


PROFILE_CODE = textwrap.dedent(
    """
    from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
    from pneumobench.experiment.profiles import PROFILES, Profile, register_profile

    def tiny(name, **changes):
        base = ExperimentConfig(model=ModelConfig(encoder="resnet18", mask_bias=-3.0), image_size=32, batch_size=8,
                                stages=(StageConfig(1, 1e-2, 1e-3),))
        if name not in PROFILES:
            weights = changes.pop("encoder_weights", None)
            register_profile(Profile(name=name, base=base.replace(**changes).replace_model(encoder_weights=weights),
                                     seeds=(0, 1, 2), synthetic=None, description="precondition tests"))

    tiny("tiny")
    tiny("tiny-batch-64", batch_size=64)
    tiny("tiny-imagenet", encoder_weights="imagenet")
    """
)

BASELINE_CHECK = textwrap.dedent(
    """
    import pytest
    from pneumobench.papers.viel_orhan_2020.claims import regression_claims

    @pytest.mark.regression
    @pytest.mark.parametrize("check", [c for c in regression_claims() if c.id == "regression-baseline-dice"])
    def test_no_regression(check, pb, pb_judge):
        pb_judge(check, pb.evaluate(check))
    """
)


@pytest.fixture
def inner(pytester, tmp_path, monkeypatch):
    """An inner project with the tiny profiles and a baseline check; returns the store's path."""
    from pneumobench.experiment.profiles import PROFILES

    monkeypatch.setattr(PROFILES, "_entries", dict(PROFILES._entries))
    pytester.makeconftest(PROFILE_CODE)
    pytester.makepyfile(test_check=BASELINE_CHECK)
    return tmp_path / "store.sqlite"


@pytest.mark.parametrize("options, message", [
    ("--pb-profile=paper", "pneumobench: profile 'paper' runs on the real SIIM-ACR data: pass --pb-data DIR, a "
                           "dataset made with `pneumobench data prepare SIIM_DIR DIR`"),
    ("--pb-profile=paper --pb-data={data}", "pneumobench: profile 'paper': config.image_size is 256 but the dataset "
                                            "{data} is 32x32 (prepare one at 256: *"),
    ("--pb-profile=tiny-batch-64 --pb-data={data}", "pneumobench: profile 'tiny-batch-64': the dataset {data} has 48 "
                                                    "training images, fewer than one batch of 64"),
    ("--pb-profile=tiny-imagenet --pb-data={data}", "pneumobench: profile 'tiny-imagenet': ImageNet weights for "
                                                    "encoder 'resnet18' are not available: *(HF_HUB_OFFLINE is set, and "
                                                    "its cache does not hold them)*--pb-encoder-weights PATH in pytest*"),
    ("--pb-profile=tiny --pb-data={data} --pb-encoder-weights={resnet34}",
     "pneumobench: profile 'tiny': encoder weights file {resnet34} does not match the encoder:; unexpected: layer*"),
    ("--pb-profile=tiny --pb-data={data} --pb-encoder-weights=no-such.pth",
     "pneumobench: --pb-encoder-weights no-such.pth: no such file: give none, imagenet or a state dict file*"),
], ids=["no-data", "image-size", "batch", "imagenet-offline", "weights-mismatch", "weights-missing"])
def test_a_precondition_is_one_line_at_session_start_and_nothing_is_stored(
    pytester, inner, tiny_dataset, tmp_path, monkeypatch, options, message
):
    """Once each of these started workers and stored failed runs (later sessions said "failed
    earlier"), printed a traceback per test, or retried the hub for 75 s."""
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    resnet34 = tmp_path / "resnet34.pth"
    torch.save(get_encoder("resnet34", weights=None).state_dict(), resnet34)
    fill = {"data": tiny_dataset.path, "resnet34": resnet34.resolve()}
    result = pytester.runpytest("-p", "no:cacheprovider", f"--pb-store={inner}", "--pb-workers=1",
                                *options.format(**fill).split())
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message.format(**fill)}"])
    assert len([line for line in result.stderr.lines if line.strip()]) == 1
    assert not inner.exists() or ResultStore(inner).counts() == {}


def test_pb_encoder_weights_file_is_what_the_runs_start_from(pytester, inner, tiny_dataset, tmp_path):
    torch.manual_seed(3)
    weights = tmp_path / "resnet18.pth"
    torch.save(get_encoder("resnet18", weights=None).state_dict(), weights)
    result = pytester.runpytest("-p", "no:cacheprovider", f"--pb-store={inner}", "--pb-workers=1",
                                "--pb-profile=tiny", f"--pb-data={tiny_dataset.path}",
                                f"--pb-encoder-weights={weights}")
    result.assert_outcomes(xfailed=1)  # INCONCLUSIVE for want of a recorded baseline; the runs trained
    store = ResultStore(inner)
    runs = store.results()
    assert sorted(run.seed for run in runs) == [0, 1, 2]
    assert {run.config["model"]["encoder_weights"] for run in runs} == {str(weights.resolve())}
    for run in runs:  # filed under the file's contents (weights_fingerprint), not under random weights
        config = ExperimentConfig.from_dict(run.config)
        assert store.done(key_of(config, run.seed, run.dataset_fingerprint, torch.device("cpu")))
        random_start = config.replace_model(encoder_weights=None)
        assert not store.done(key_of(random_start, run.seed, run.dataset_fingerprint, torch.device("cpu")))
