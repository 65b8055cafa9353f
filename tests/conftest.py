"""Shared fixtures of the unit tests: small prepared synthetic datasets, made in memory."""

import numpy as np
import pytest

from pneumobench.data import prepared
from pneumobench.data.siim import downsample_image, downsample_mask
from pneumobench.data.synthetic import iter_cases


def make_prepared(path, n_per_class, *, size=32, seed=11, difficulty=0.2):
    """A prepared dataset drawn at 4x ``size`` (no DICOM round trip: that path has its own
    tests), alternating train and validation within each class."""
    cases = list(iter_cases(n_per_class, n_per_class, seed=seed, difficulty=difficulty, size=4 * size))
    labels = np.array([bool(case.regions) for _, case in cases], np.uint8)
    split = np.zeros(len(cases), np.uint8)
    for label in (0, 1):
        split[np.flatnonzero(labels == label)[1::2]] = prepared.VALIDATION
    return prepared.save(
        path,
        images=np.stack([downsample_image(case.image, size) for _, case in cases]),
        masks=np.stack([downsample_mask(case.mask, size) for _, case in cases]),
        labels=labels,
        split=split,
        ids=[image_id for image_id, _ in cases],
        parameters={"synthetic": True, "size": size, "seed": seed},
        source={"generator": "tests"},
    )


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """96 synthetic images at 32x32: 48 train, 48 validation, balanced."""
    return make_prepared(tmp_path_factory.mktemp("tiny") / "prepared", 48)


@pytest.fixture(scope="session")
def smoke_dataset():
    """The smoke profile's embedded default dataset (generated once into the cache, then reused)."""
    from pneumobench.data.cache import synthetic_dataset
    from pneumobench.experiment.profiles import get_profile

    return synthetic_dataset(get_profile("smoke").synthetic)
