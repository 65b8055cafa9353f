"""Claim families and seed lists: the alpha of a claim is its family's, whatever was collected;
seeds are independent replicates or a one-line usage error."""

from pathlib import Path

import pytest

from pneumobench.experiment.seeds import SeedError, parse_seed, parse_seeds
from pneumobench.judging.baselines import load_paper
from pneumobench.judging.claims import claim_alpha
from pneumobench.judging.families import (
    FAMILIES,
    Family,
    FamilyError,
    get_family,
    join_family,
    member_alpha,
    register_family,
)
from pneumobench.papers.viel_orhan_2020.claims import PAPER_CLAIMS, regression_claims, table6_claims

BASELINES = Path(__file__).resolve().parents[1] / "baselines"


def test_the_paper_claims_and_the_table6_rows_are_two_families_at_0_05():
    """The paper's 11 statistical claims can err either way at no effect: 0.05 split over 22
    one-sided tests. Each Table 6 row errs one way at any truth: 0.05 over its 32 rows."""
    paper, table6 = get_family("paper"), get_family("table6")
    rows = table6_claims(load_paper(BASELINES / "paper.json"))
    statistical = [c.id for c in PAPER_CLAIMS if c.kind != "parameters"]
    assert paper.members == tuple(statistical) and len(statistical) == 11 and paper.both_ways
    assert set(table6.members) == {c.id for c in rows} and len(rows) == 32 and not table6.both_ways
    assert paper.alpha == table6.alpha == 0.05
    for claim in PAPER_CLAIMS[:11]:
        assert claim_alpha(claim) == pytest.approx(0.05 / 22)
    for claim in rows:
        assert claim.family == "table6" and claim_alpha(claim) == pytest.approx(0.05 / 32)


def test_regression_checks_are_separate_decisions_at_alpha():
    checks = regression_claims()
    assert len(checks) == 32 and {c.family for c in checks} == {"regression"}
    assert all(claim_alpha(c) == 0.01 for c in checks)


def test_unknown_family_and_outsider_claims_are_errors():
    with pytest.raises(FamilyError, match="no claim family 'nope'"):
        member_alpha("nope", "x")
    with pytest.raises(FamilyError, match="claim 'x' is not a member of family 'paper'"):
        member_alpha("paper", "x")


def test_registering_and_joining_a_family(monkeypatch):
    monkeypatch.setitem(FAMILIES, "mine", Family("mine", 0.05, ("a",)))
    assert member_alpha("mine", "a") == 0.05
    assert register_family(Family("mine", 0.05, ("a",))) == FAMILIES["mine"]  # the same again: a no-op
    with pytest.raises(FamilyError, match="already registered"):
        register_family(Family("mine", 0.05, ("a", "b")))
    join_family("mine", "b", "a")
    assert FAMILIES["mine"].members == ("a", "b") and member_alpha("mine", "b") == 0.025


@pytest.mark.parametrize("kwargs, message", [
    ({"correction": "none"}, "correction 'none'"), ({"alpha": 0.7}, "alpha 0.7"), ({"members": ()}, "no members"),
    ({"members": ("a", "a")}, "twice"),
])
def test_bad_families_are_refused(kwargs, message):
    with pytest.raises(FamilyError, match=message):
        Family(**{"name": "bad", "alpha": 0.05, "members": ("a",), **kwargs})


@pytest.mark.parametrize("text, seeds", [("5", (0, 1, 2, 3, 4)), ("1", (0,)), ("0,3,7", (0, 3, 7)), (" 2, 1 ", (2, 1))])
def test_seed_lists(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [
    ("0", "seed count 0"), ("-1", "seed count -1"), ("abc", "give a count"), ("0,0,1", "seed 0 is given more than once"),
    ("0,-1", "seed -1 is negative"), ("1,x", "seed 'x' is not an integer"), ("1,,2", "seed '' is not an integer"),
    ("1.5", "give a count"),
])
def test_bad_seed_lists_are_one_line_errors(text, message):
    with pytest.raises(SeedError, match=message) as error:
        parse_seeds(text)
    assert "\n" not in str(error.value)


def test_single_seed():
    assert parse_seed("7") == 7
    with pytest.raises(SeedError, match="negative"):
        parse_seed("-3")
