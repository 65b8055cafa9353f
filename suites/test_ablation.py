"""Table 6: every row's Dice and accuracy. On the paper's data (profile ``paper``) a row is an
equivalence test against the paper's value; in any other profile, against the profile's
recorded baseline."""

from pathlib import Path

import pytest

from pneumobench.baselines import load_paper
from pneumobench.claims import evaluate, table6_claims

pytestmark = pytest.mark.paper

ROWS = table6_claims(load_paper(Path(__file__).resolve().parents[1] / "baselines" / "paper.json"))


@pytest.mark.parametrize("claim", ROWS, ids=lambda claim: claim.id.removeprefix("table6-"))
def test_table6_row(claim, pb, pb_judge):
    stats = evaluate(
        claim, pb.runs_for, alpha=pb.alpha, base=pb.profile.base,
        recorded=pb.recorded(), use_paper_values=pb.profile.name == "paper" and not pb.synthetic,
    )
    pb_judge(claim, stats)
