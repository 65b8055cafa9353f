"""The paper's claims (Tables 2-6 and section 4.2), each judged over the profile's seeds."""

import pytest

from pneumobench.claims import PAPER_CLAIMS, evaluate

pytestmark = pytest.mark.paper


@pytest.mark.parametrize("claim", PAPER_CLAIMS, ids=lambda claim: claim.id)
def test_claim(claim, pb, pb_judge):
    stats = evaluate(
        claim, pb.runs_for, alpha=pb.alpha, base=pb.profile.base,
        recorded=pb.recorded(), use_paper_values=pb.profile.name == "paper" and not pb.synthetic,
    )
    pb_judge(claim, stats)
