"""Score a finished run's final model again: its last validation pass alone, under the code in place now.

A run trained with ``final_model`` (``training.train``) keeps its last epoch's weights, verified
like a checkpoint. ``rescore`` loads them and repeats the run's last validation pass with the
same batches, threads and precision, and returns the run's result with that pass's scores. On
unchanged code it gives back the run's own scores exactly (tests/test_rescoring.py). On code
changed only where a trained model is scored (the validation data, inference, the metric) it
gives what a run trained under that code reports, for a run that reports its last epoch:
validation never feeds training. The sensitivity suite scores its bugs of that kind this way
instead of training each of them again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from pneumobench.core.results import RunResult, encode_epoch_scores
from pneumobench.data.prepared import PreparedDataset
from pneumobench.experiment.config import ExperimentConfig
from pneumobench.models import build_model
from pneumobench.training import engine
from pneumobench.training.checkpoints import load_verified

__all__ = ["RescoringError", "rescore"]


class RescoringError(ValueError):
    """A final model that cannot stand for the run: another run's weights, another dataset, or a
    run that does not report its last epoch."""


def rescore(
    result: RunResult, dataset: PreparedDataset, final_model: Path, device: torch.device | str = "cpu"
) -> RunResult | None:
    """``result`` with its last validation pass scored again from the weights at ``final_model``;
    None when there are none (never kept, or damaged: set aside with a warning). The earlier
    validated epochs' scores are kept as trained (their weights are gone)."""
    config = ExperimentConfig.from_dict(result.config)
    if config.epoch_selection != "last" or result.reported_epoch != config.epochs:
        raise RescoringError(
            f"{result.config_name} seed {result.seed} reports epoch {result.selected_epoch} "
            f"({config.epoch_selection}), not its last: its final model does not stand for it"
        )
    if result.dataset_fingerprint != dataset.fingerprint:
        raise RescoringError(
            f"{result.config_name} seed {result.seed} was trained on dataset {result.dataset_fingerprint}, "
            f"not {dataset.fingerprint}"
        )
    device = torch.device(device)
    saved = load_verified(final_model, device)
    if saved is None:
        return None
    expected = engine.run_identity(config, result.seed, dataset)
    if saved.get("identity") != expected:
        raise RescoringError(f"final model {final_model} belongs to {saved.get('identity')}, not {expected}")
    threads = int(result.environment.get("cpu_threads", engine.CPU_THREADS))
    with engine.numerics(device, fast=True, deterministic=False, cpu_threads=threads):
        return _scored_again(result, config, dataset, saved["model"], device)


def _scored_again(
    result: RunResult, config: ExperimentConfig, dataset: PreparedDataset, weights: dict, device: torch.device
) -> RunResult:
    """The last validation pass of ``weights``, as ``training.train`` runs it, in ``result``."""
    channels_last = device.type == "cuda"  # the fast path every stored run trains with
    model = build_model(config).to(device)
    model.load_state_dict(weights)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = engine.DeviceData(dataset, dataset.val_indices, device, channels_last=channels_last)
    positions = engine.example_indices(dataset)
    autocast = channels_last and config.cuda_precision == "bf16"
    scores, kept = engine.validate(model, data, engine.validation_batch(config), autocast, keep=positions)
    dice, accuracy = torch.stack(engine.summaries(scores, config)).tolist()
    curves = [dict(entry) for entry in result.curves]
    curves[-1].update(val_dice=dice, val_accuracy=accuracy)
    return dataclasses.replace(
        result,
        dice_per_image=scores.dice.cpu().tolist(),
        cls_prob=scores.cls_prob.cpu().tolist(),
        correct=scores.correct.cpu().tolist(),
        mask_fraction=scores.mask_fraction.cpu().tolist(),
        dice=dice,
        accuracy=accuracy,
        curves=curves,
        examples=engine.example_masks(dataset, positions, kept),
        epoch_scores=_last_epoch_replaced(result, scores.dice, scores.correct),
    )


def _last_epoch_replaced(result: RunResult, dice: torch.Tensor, correct: torch.Tensor) -> dict:
    """``result``'s per-epoch scores with the last epoch's row replaced by ``dice`` and ``correct``."""
    epochs = result.per_epoch()
    if epochs is None:
        return result.epoch_scores
    dice_rows, correct_rows = epochs.dice.copy(), epochs.correct.copy()
    dice_rows[epochs.row(result.epochs)] = dice.cpu().numpy()
    correct_rows[epochs.row(result.epochs)] = correct.cpu().numpy()
    return encode_epoch_scores(list(epochs.epochs), dice_rows, correct_rows)
