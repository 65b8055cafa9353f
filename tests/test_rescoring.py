"""Kept final models and scoring them again (``pneumobench.training.rescoring``)."""

import copy
import dataclasses
import warnings

import pytest
import torch

from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
from pneumobench.runs.executors import InlineExecutor
from pneumobench.runs.runner import final_model_path, prefetch, run
from pneumobench.runs.store import ResultStore
from pneumobench.training import engine
from pneumobench.training.checkpoints import CheckpointWarning
from pneumobench.training.engine import train
from pneumobench.training.rescoring import RescoringError, rescore

CONFIG = ExperimentConfig(
    model=ModelConfig(encoder="resnet18"),
    image_size=32,
    batch_size=16,
    stages=(StageConfig(1, 3e-3, 1e-3, freeze_encoder=True), StageConfig(1, 3e-3, 1e-4)),
)


@pytest.fixture(scope="module")
def kept(tiny_dataset, tmp_path_factory):
    """A run of CONFIG with seed 0 and its kept final weights."""
    path = tmp_path_factory.mktemp("final") / "model.pt"
    return train(CONFIG, tiny_dataset, 0, progress=False, final_model=path), path


def test_scoring_the_final_model_again_gives_the_run_back_exactly(kept, tiny_dataset):
    result, path = kept
    assert rescore(result, tiny_dataset, path) == result


def test_scoring_again_follows_the_code_in_place(kept, tiny_dataset, monkeypatch):
    """A patched validation pass changes exactly the last epoch's scores: the per-image lists, the
    means, the last curve entry and the last row of the per-epoch scores."""
    result, path = kept
    original = engine.validate

    def mirrored(model, data, *args, **kwargs):
        flipped = copy.copy(data)
        flipped.images = data.images.flip(-1)
        return original(model, flipped, *args, **kwargs)

    monkeypatch.setattr(engine, "validate", mirrored)
    again = rescore(result, tiny_dataset, path)
    assert again.dice != result.dice and again.dice_per_image != result.dice_per_image
    assert again.curves[-1]["val_dice"] == again.dice and again.curves[:-1] == result.curves[:-1]
    epochs = again.per_epoch()
    assert epochs.dice[-1].tolist() == pytest.approx(again.dice_per_image)
    assert (epochs.dice[:-1] == result.per_epoch().dice[:-1]).all()
    assert again.accuracy == pytest.approx(sum(again.correct) / len(again.correct))


def test_weights_not_kept_or_damaged_give_none(kept, tiny_dataset, tmp_path):
    result, path = kept
    assert rescore(result, tiny_dataset, tmp_path / "never-kept.pt") is None
    damaged = tmp_path / "damaged.pt"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    with pytest.warns(CheckpointWarning, match="set aside"):
        assert rescore(result, tiny_dataset, damaged) is None
    assert not damaged.exists()


def test_weights_of_another_run_or_a_best_epoch_run_are_refused(kept, tiny_dataset):
    result, path = kept
    with pytest.raises(RescoringError, match="belongs to"):
        rescore(dataclasses.replace(result, seed=1), tiny_dataset, path)
    best = dataclasses.replace(result, config=CONFIG.replace(epoch_selection="best-val").to_dict(), selected_epoch=1)
    with pytest.raises(RescoringError, match="not its last"):
        rescore(best, tiny_dataset, path)
    with pytest.raises(RescoringError, match="dataset"):
        rescore(dataclasses.replace(result, dataset_fingerprint="other"), tiny_dataset, path)


def test_runs_keep_their_final_weights_when_asked(tiny_dataset, tmp_path):
    """``run(keep_model=True)`` and ``prefetch(keep_models=...)`` keep the weights of the runs
    they train, and only of those configurations; the kept weights score the run back exactly."""
    store = ResultStore(tmp_path / "results.sqlite")
    other = CONFIG.replace(batch_size=8)
    kept_run = run(CONFIG, 0, tiny_dataset, "cpu", store=store, progress=False, keep_model=True)
    plain_run = run(CONFIG, 1, tiny_dataset, "cpu", store=store, progress=False)
    prefetch([(CONFIG, 2), (other, 2)], tiny_dataset, "cpu", store=store, executor=InlineExecutor(), progress=False,
             keep_models={CONFIG.key()})

    def path(config, seed):
        return final_model_path(store, config, seed, tiny_dataset, "cpu")

    assert path(CONFIG, 0).is_file() and not path(CONFIG, 1).exists()
    assert path(CONFIG, 2).is_file() and not path(other, 2).exists()
    assert rescore(kept_run, tiny_dataset, path(CONFIG, 0)) == kept_run
    assert rescore(plain_run, tiny_dataset, path(CONFIG, 1)) is None
    prefetched = run(CONFIG, 2, tiny_dataset, "cpu", store=store, progress=False)
    assert rescore(prefetched, tiny_dataset, path(CONFIG, 2)) == prefetched
    loaded = torch.load(path(CONFIG, 2), weights_only=True)
    assert loaded["identity"] == engine.run_identity(CONFIG, 2, tiny_dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rescore(prefetched, tiny_dataset, path(CONFIG, 2))  # a sound file: no warning
