"""Table 6: every row's Dice and accuracy. On the paper's data (profile ``paper``) a row is an
equivalence test against the paper's single run, its run-to-run variance included; in any
other profile, against the profile's recorded baseline (matched on data, code and versions).
The 32 rows are the family ``table6``: 0.05 over them, 0.00156 per row."""

from pathlib import Path

import pytest

from pneumobench.judging.baselines import load_paper
from pneumobench.papers.viel_orhan_2020.claims import table6_claims

pytestmark = pytest.mark.paper

ROWS = table6_claims(load_paper(Path(__file__).resolve().parents[1] / "baselines" / "paper.json"))


@pytest.mark.parametrize("claim", ROWS, ids=lambda claim: claim.id)
def test_table6_row(claim, pb, pb_judge):
    pb_judge(claim, pb.evaluate(claim))
