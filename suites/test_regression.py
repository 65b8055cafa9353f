"""Regression: every Table 6 configuration against the recorded baseline of this profile and
device (``baselines/<profile>-<device>.json``). A real drop fails; noise does not. A baseline
recorded on other data, another card model, another configuration or other library versions
cannot judge: the check is INCONCLUSIVE and names the field (re-record with --pb-update-baselines)."""

import pytest

from pneumobench.papers.viel_orhan_2020.claims import regression_claims

pytestmark = pytest.mark.regression


@pytest.mark.parametrize("check", regression_claims(), ids=lambda check: check.id)
def test_no_regression(check, pb, pb_judge):
    pb_judge(check, pb.evaluate(check))
