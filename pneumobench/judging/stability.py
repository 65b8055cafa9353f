"""Unstable configurations: a seed whose value lies far from the other seeds' values.

A run that collapses or lags without becoming degenerate (its classifier still answers both
classes, its masks are neither all empty nor all full) makes one arm of a paired claim heavy
tailed: with the other seeds slightly ahead, the t-test can call a true zero difference an
improvement. Such a seed is found by a leave-one-out robust z-score: its distance from the
median of the *other* seeds, in units of those seeds' robust SD (1.4826 x their median absolute
deviation). With 3 to 5 seeds the others' MAD is itself noisy and can be near zero, so the
unit is at least ``floor``: the between-seed SD a well-behaved configuration has at most (the
profile's ``seed_sd``; for an accuracy also its binomial SD over the validation images).
At ``UNSTABLE_Z`` = 5 a configuration of well-behaved normal seeds is flagged at most about 1%
of the time at 3 to 40 seeds while their SD is at most 1.5 times the floor, and under 1% at 40
seeds whatever the floor (``calibration.unstable_flag_rates``); a collapse of ten SDs is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAD_TO_SD", "UNSTABLE_Z", "Outlier", "outliers", "robust_z"]

UNSTABLE_Z = 5.0
MAD_TO_SD = 1.4826  # the MAD of a normal sample times this estimates its SD
MIN_SEEDS_TO_FLAG = 3  # two seeds cannot say which one is the outlier


def robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    """Each value's leave-one-out robust z-score along the last axis: (value - median of the
    others) / max(1.4826 MAD of the others, ``floor``). Leading axes are independent samples
    (the simulations judge thousands at once). Zeros with fewer than ``MIN_SEEDS_TO_FLAG`` values."""
    return _leave_one_out(values, floor)[0]


def _leave_one_out(values: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """``robust_z`` and, per value, the median of the others it is measured from."""
    if floor <= 0:
        raise ValueError(f"the robust SD's floor must be positive, got {floor}")
    values = np.asarray(values, float)
    z, centers = np.zeros(values.shape), values.copy()
    if values.shape[-1] < MIN_SEEDS_TO_FLAG:
        return z, centers
    for i in range(values.shape[-1]):
        others = np.delete(values, i, axis=-1)
        centers[..., i] = np.median(others, axis=-1)
        spread = MAD_TO_SD * np.median(np.abs(others - centers[..., i, None]), axis=-1)
        z[..., i] = (values[..., i] - centers[..., i]) / np.maximum(spread, floor)
    return z, centers


@dataclass(frozen=True)
class Outlier:
    """One seed flagged unstable: its value, the others' median and its robust z-score."""

    seed: int
    value: float
    others_median: float
    z: float

    def describe(self, metric: str) -> str:
        side = "below" if self.z < 0 else "above"
        return (
            f"seed {self.seed}: {metric} {self.value:+.4f}, {abs(self.z):.1f} robust SDs {side} "
            f"the other seeds' median {self.others_median:+.4f}"
        )


def outliers(per_seed: dict[int, float], floor: float, threshold: float = UNSTABLE_Z) -> list[Outlier]:
    """The seeds of ``per_seed`` (seed -> value) whose robust z-score exceeds ``threshold``."""
    seeds = list(per_seed)
    values = np.array([per_seed[s] for s in seeds])
    z, centers = _leave_one_out(values, floor)
    return [
        Outlier(seed, float(values[i]), float(centers[i]), float(z[i]))
        for i, seed in enumerate(seeds)
        if abs(z[i]) > threshold
    ]
