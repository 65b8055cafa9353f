"""Regression: every Table 6 configuration against the recorded baseline of this profile and
device (``baselines/<profile>-<device>.json``). A real drop fails; noise does not."""

import numpy as np
import pytest

from pneumobench.claims import Claim
from pneumobench.modifications import table6_rows
from pneumobench.pytest_plugin import REGRESSION_ALPHA, REGRESSION_MARGIN
from pneumobench.stats import regression_check

pytestmark = pytest.mark.regression


@pytest.mark.parametrize("metric", ["dice", "accuracy"])
@pytest.mark.parametrize("row", table6_rows(), ids=lambda row: "+".join(row) or "baseline")
def test_no_regression(row, metric, pb, pb_judge):
    recorded = pb.recorded()
    if recorded is None:
        pytest.skip(f"no recorded baseline for profile {pb.profile.name} on {pb.device.type}: "
                    "record one with --pb-update-baselines")
    if recorded.dataset_fingerprint != pb.dataset.fingerprint:
        pytest.skip(f"the recorded baseline was measured on dataset {recorded.dataset_fingerprint}, "
                    f"this run uses {pb.dataset.fingerprint}: record a new baseline for this dataset")
    name = "+".join(row) or "baseline"
    baseline = recorded.values(name, metric)
    runs = {r.seed: getattr(r, metric) for r in pb.runs_for(row)}
    seeds = sorted(set(baseline) & set(runs))
    stats = regression_check(np.array([runs[s] for s in seeds]), np.array([baseline[s] for s in seeds]),
                             margin=REGRESSION_MARGIN, alpha=REGRESSION_ALPHA)
    check = Claim(f"regression-{name}-{metric}", "regression", f"{recorded.profile}-{pb.device.type} baseline",
                  f"{name} keeps its {metric}", row, metric=metric)
    pb_judge(check, stats)
