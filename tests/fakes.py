"""Hand-made finished runs and stores (no training): the statistics, the report and the plugin
are tested on scores whose truth the test chose."""

from __future__ import annotations

import numpy as np
import torch

from pneumobench.core.environment import environment
from pneumobench.core.results import RunResult, encode_epoch_scores
from pneumobench.data.rle import encode
from pneumobench.experiment.config import ExperimentConfig
from pneumobench.runs.runner import key_of
from pneumobench.runs.store import ResultStore
from pneumobench.training.engine import example_indices


def fake_run(config, seed, dataset, *, dice_shift=0.0, accuracy=0.75, constant_classifier=False, fingerprint=None,
             env=None, rng_key=None, synthetic=None, peak_epoch=None, peak_gain=0.1):
    """A plausible finished run of ``config``: per-image Dice drawn from the seed (shared by all
    configurations), a small per-configuration noise and ``dice_shift``, correctness at about ``accuracy``, class probabilities on both sides of 0.5
    (or all above with ``constant_classifier``), masks neither empty nor full, and examples
    that predict each kept image's ground truth shifted one pixel to the right."""
    mods = config.modifications
    val = dataset.val_indices
    shared = np.random.default_rng(seed)  # common to every configuration of this seed (paired designs)
    rng = np.random.default_rng(rng_key if rng_key is not None else [len(mods), sum(map(len, mods)), seed])
    dice = np.clip(shared.uniform(0.2, 0.9, len(val)) + rng.normal(0, 0.02, len(val)) + dice_shift, 0, 1)
    correct = rng.random(len(val)) < accuracy
    cls_prob = np.full(len(val), 0.9) if constant_classifier else rng.random(len(val))
    # Per-epoch scores: epoch e scores dice * e / 5 (the last epoch is the reported one), except
    # ``peak_epoch``, which scores ``peak_gain`` more on every image and gets every class right.
    epoch_dice = np.stack([dice * e / 5 for e in range(1, 6)]).astype(np.float32)
    epoch_correct = np.stack([correct] * 5)
    if peak_epoch is not None:
        epoch_dice[peak_epoch - 1] = np.clip(dice + peak_gain, 0, 1)
        epoch_correct[peak_epoch - 1] = True
    curves = [{"epoch": e, "stage": 1 if e == 1 else 2, "lr_end": 0.01, "train_loss": 1.0 / e,
               "val_dice": torch.from_numpy(epoch_dice[e - 1]).mean().item(),
               "val_accuracy": torch.from_numpy(epoch_correct[e - 1]).float().mean().item(), "seconds": 1.0}
              for e in range(1, 6)]
    examples = {dataset.ids[val[p]]: encode(np.roll(np.asarray(dataset.masks[val[p]]), 1, axis=1))
                for p in example_indices(dataset)}
    return RunResult(
        config=config.to_dict(), config_key=config.key(), config_name=config.name, seed=seed,
        dataset_fingerprint=fingerprint or dataset.fingerprint, val_ids=[dataset.ids[i] for i in val],
        dice_per_image=dice.tolist(), cls_prob=cls_prob.tolist(), correct=correct.tolist(),
        dice=float(dice.mean()), accuracy=float(correct.mean()), curves=curves, epochs=5, wall_time_s=1.0,
        train_images_per_s=10.0, environment=env if env is not None else {"torch": "2.x", "device_name": "cpu"},
        dataset_path=str(dataset.path), synthetic_data=dataset.synthetic if synthetic is None else synthetic, examples=examples,
        mask_fraction=rng.uniform(0.01, 0.2, len(val)).tolist(), selected_epoch=5,
        epoch_scores=encode_epoch_scores(list(range(1, 6)), epoch_dice, epoch_correct),
    )


def store_runs(store: ResultStore, results: list[RunResult]) -> None:
    """Put finished ``results`` in ``store`` under the keys a CPU session would look them up by."""
    for result in results:
        key = key_of(ExperimentConfig.from_dict(result.config), result.seed, result.dataset_fingerprint, torch.device("cpu"))
        store.fetch_or_claim(key, config_key=result.config_key, config_name=result.config_name, seed=result.seed,
                             dataset_fingerprint=result.dataset_fingerprint, device_kind="cpu")
        store.finish(key, result)


def cpu_environment() -> dict:
    """This machine's environment record, as a real CPU run would carry it."""
    return environment("cpu")
