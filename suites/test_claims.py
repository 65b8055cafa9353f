"""The paper's claims (Tables 2-6 and section 4.2), each judged over the profile's seeds at the
alpha of the ``paper`` family (0.05 over both directions of its 11 claims; fixed: selecting tests
with -k never changes a verdict)."""

import pytest

from pneumobench.papers.viel_orhan_2020.claims import PAPER_CLAIMS

pytestmark = pytest.mark.paper


@pytest.mark.parametrize("claim", PAPER_CLAIMS, ids=lambda claim: claim.id)
def test_claim(claim, pb, pb_judge):
    pb_judge(claim, pb.evaluate(claim))
