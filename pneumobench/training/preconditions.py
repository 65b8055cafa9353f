"""What a run needs before it trains, checked without training: the dataset suits the
configuration (image size, a batch of training images, validation images) and the encoder
weights are at hand.

``train`` checks its own run; a pytest session and ``pneumobench run``/``runs`` call
``check_runs`` once, before any run starts, so that a mistake is one line and nothing is
stored as a failed run. Light: numpy only, and smp only when weights are pretrained.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pneumobench.data.prepared import PreparedDataset
from pneumobench.experiment.config import ExperimentConfig

__all__ = ["TrainingSetupError", "check_runs", "check_trainable", "heldout_split"]


class TrainingSetupError(ValueError):
    """A configuration that cannot train on this dataset (the message says why)."""


def heldout_split(dataset: PreparedDataset, fraction: float, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training half split into images trained on and a held-out slice for epoch selection:
    ``round(fraction * n)`` of each label, drawn with the data seed; both in stored order."""
    train = dataset.train_indices
    if fraction <= 0:
        return train, train[:0]
    labels = np.asarray(dataset.labels[train])
    rng = np.random.default_rng(data_seed)
    held = np.zeros(len(train), bool)
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        held[rng.permutation(members)[: round(fraction * len(members))]] = True
    return train[~held], train[held]


def check_trainable(config: ExperimentConfig, dataset: PreparedDataset, cpu_threads: int = 1) -> None:
    """Raise ``TrainingSetupError`` when ``config`` cannot train on ``dataset``. The held-out
    slice's size, and so the count of training images, does not depend on the seed."""
    n_train = len(heldout_split(dataset, config.heldout_fraction, 0)[0])
    where = dataset.path if dataset.path is not None else "in memory"
    if dataset.size != config.image_size:
        raise TrainingSetupError(
            f"config.image_size is {config.image_size} but the dataset {where} is {dataset.size}x{dataset.size} "
            f"(prepare one at {config.image_size}: pneumobench data prepare SIIM_DIR DIR --size {config.image_size})"
        )
    if n_train < config.batch_size:
        raise TrainingSetupError(
            f"the dataset {where} has {n_train} training images, fewer than one batch of {config.batch_size}"
        )
    if not config.drop_last and n_train % config.batch_size == 1:
        raise TrainingSetupError(
            f"{n_train} training images in batches of {config.batch_size} leave a last batch of one image, which "
            "batch normalisation cannot train on; set drop_last or change the batch size"
        )
    if len(dataset.val_indices) == 0:
        raise TrainingSetupError(f"the dataset {where} has no validation images")
    if cpu_threads < 1:
        raise TrainingSetupError(f"cpu_threads must be at least 1, got {cpu_threads}")


def check_runs(configs: Iterable[ExperimentConfig], dataset: PreparedDataset, cpu_threads: int = 1) -> None:
    """Every check a run needs before training, for all of ``configs`` at once: each suits the
    dataset, and each distinct pretrained encoder is built once here (its weights found in the
    hub cache or a file and matched key by key). Raises ``TrainingSetupError`` in one line."""
    encoders = set()
    for config in configs:
        check_trainable(config, dataset, cpu_threads)
        model = config.model
        if model.encoder_weights is not None:
            encoders.add((model.encoder, model.encoder_weights, model.encoder_stem_width, model.encoder_widths))
    for name, weights, stem_width, widths in sorted(encoders, key=str):
        from pneumobench.models.encoder import EncoderWeightsError, build_encoder

        try:
            build_encoder(name, weights, stem_width=stem_width, widths=widths)
        except EncoderWeightsError as error:  # one line: a key mismatch lists its keys on lines of their own
            raise TrainingSetupError("; ".join(line.strip() for line in str(error).splitlines())) from error
