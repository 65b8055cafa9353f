"""The smoke profile's regression check is sized by its power: simulated at the baseline's
measured seed SDs, with today's runs decorrelated from the recorded ones (changed code: the
least favourable case for a paired check), it finds a drop of 0.01 Dice or 0.02 accuracy at
least 80% of the time, and at no change it fails at most alpha either way. The design it
replaced (3 seeds, margin 0.02) is simulated beside it and misses those drops."""

import math

import pytest

from pneumobench.experiment.profiles import get_profile
from pneumobench.judging.calibration import simulate_regression
from pneumobench.judging.families import REGRESSION_ALPHA
from pneumobench.judging.stats import Verdict

SIMULATIONS = 4000
PROTECTED = {"dice": 0.01, "accuracy": 0.02}  # the change the regression suite must find (issue 25)
LEVEL = {"dice": 0.92, "accuracy": 0.98}  # the smoke baseline's means
SMOKE = get_profile("smoke")
VALIDATION_IMAGES = 512  # the smoke dataset's validation images (the accuracy's binomial floor)


def smoke_rates(metric: str, drop: float, *, seeds: int, margin: float, rng_seed: int) -> dict[Verdict, float]:
    """Verdict rates of the smoke baseline's regression check with today's runs ``drop`` lower."""
    assert SMOKE.regression_sds is not None
    sd = dict(SMOKE.regression_sds)[metric]
    return simulate_regression(
        seeds, REGRESSION_ALPHA, SIMULATIONS, drop=drop, margin=margin, sd=sd, recorded_sd=sd, paired=True,
        images=VALIDATION_IMAGES if metric == "accuracy" else None, level=LEVEL[metric], rng_seed=rng_seed,
    )


def at_most(rate: float, bound: float) -> bool:
    return rate <= bound + 3 * math.sqrt(bound * (1 - bound) / SIMULATIONS)


@pytest.mark.parametrize("metric", ["dice", "accuracy"])
def test_the_sized_check_finds_the_protected_drop_with_80_percent_power(metric):
    assert SMOKE.regression_seeds is not None
    rates = smoke_rates(metric, PROTECTED[metric], seeds=len(SMOKE.regression_seeds),
                        margin=SMOKE.regression_margin(metric), rng_seed=1)
    assert rates[Verdict.REGRESSED] >= 0.8, rates


@pytest.mark.parametrize("metric", ["dice", "accuracy"])
def test_the_design_it_replaced_misses_the_protected_drop(metric):
    rates = smoke_rates(metric, PROTECTED[metric], seeds=len(SMOKE.seeds), margin=0.02, rng_seed=2)
    assert rates[Verdict.REGRESSED] < 0.5, rates


@pytest.mark.parametrize("metric", ["dice", "accuracy"])
def test_the_sized_check_at_no_change_fails_at_most_alpha_either_way(metric):
    assert SMOKE.regression_seeds is not None
    rates = smoke_rates(metric, 0.0, seeds=len(SMOKE.regression_seeds), margin=SMOKE.regression_margin(metric),
                        rng_seed=3)
    assert at_most(rates[Verdict.REGRESSED], REGRESSION_ALPHA), rates
    assert at_most(rates[Verdict.CHANGED], REGRESSION_ALPHA), rates


def test_only_the_baseline_takes_the_regression_seeds():
    assert SMOKE.regression_seeds is not None and set(SMOKE.seeds) <= set(SMOKE.regression_seeds)
    assert SMOKE.regression_seeds_of(()) == SMOKE.regression_seeds
    assert SMOKE.regression_seeds_of(("aspp",)) == SMOKE.seeds
    assert get_profile("paper").regression_seeds_of(()) == get_profile("paper").seeds
