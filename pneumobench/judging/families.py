"""Claim families: which claims share one error budget, and the alpha each test gets.

A family is registered with its members, so the alpha of a test is a function of the
family alone, never of which tests a pytest session happened to collect: ``-k``, ``--lf``,
pytest-xdist and ``pneumobench report`` judge the same runs at the same alpha.

- ``bonferroni``: the family-wise ``alpha`` split evenly over the members (each member's
  test at ``alpha / len(members)``), so P(any false verdict in the family) <= ``alpha``
  under any dependence between the claims. A family whose members can err either way under
  one truth (a paired claim at exactly no effect is falsely REPRODUCED or falsely
  CONTRADICTED) sets ``both_ways``: its alpha is split over the two directions too (each
  one-sided test at ``alpha / (2 len(members))``), or the bound would be ``2 alpha``. A Table 6
  row errs one way only at any truth (within the margin it can only be falsely CONTRADICTED,
  outside only falsely REPRODUCED), so its family spends ``alpha / len(members)`` per test.
- ``per-test``: every member is its own decision at ``alpha`` (the regression checks: each
  names the configuration that broke, and the margin keeps the rate under no change far
  below ``alpha``).

The paper's statistical claims form the family ``paper`` (both ways) and its Table 6 rows the
family ``table6``, each at 0.05: the rows have almost no power at their margin and would take
most of one shared budget; the regression checks form ``regression``. A researcher's claim
declares its own family (``register_family``) or joins one (``join_family``), which
deliberately tightens every member's alpha.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "EQUIVALENCE_MARGIN",
    "FAMILIES",
    "PAPER_FAMILY_ALPHA",
    "REGRESSION_ALPHA",
    "Family",
    "FamilyError",
    "get_family",
    "join_family",
    "member_alpha",
    "register_family",
]

PAPER_FAMILY_ALPHA = 0.05
EQUIVALENCE_MARGIN = 0.01  # Table 6 rows: |measured - reference| within this is "reaches the value"
REGRESSION_ALPHA = 0.01
CORRECTIONS = ("bonferroni", "per-test")


class FamilyError(KeyError):
    """An unknown family, a claim outside its family, or a conflicting registration."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Family:
    """A named set of claims whose errors one ``alpha`` controls."""

    name: str
    alpha: float
    members: tuple[str, ...]
    correction: str = "bonferroni"
    both_ways: bool = False  # a member can err in either direction under one truth: alpha split over both

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise FamilyError(
                f"family {self.name!r}: correction {self.correction!r} is not one of {', '.join(CORRECTIONS)}"
            )
        if not 0 < self.alpha < 0.5:
            raise FamilyError(f"family {self.name!r}: alpha {self.alpha} must lie in (0, 0.5)")
        if not self.members:
            raise FamilyError(f"family {self.name!r} has no members")
        if len(set(self.members)) != len(self.members):
            raise FamilyError(f"family {self.name!r} lists a member twice")

    @property
    def test_alpha(self) -> float:
        """The alpha of each member's test."""
        shares = len(self.members) * (2 if self.both_ways else 1)
        return self.alpha / shares if self.correction == "bonferroni" else self.alpha

    def describe(self) -> str:
        """One phrase for tables and reports: the family's alpha and how its members share it."""
        if self.correction == "bonferroni":
            count = len(self.members)
            ways = ", both directions" if self.both_ways else ""
            return (
                f"family {self.name}: alpha {self.alpha} over its {count} claim{'' if count == 1 else 's'}{ways} "
                f"(Bonferroni, {self.test_alpha:.3g} per test)"
            )
        return f"family {self.name}: alpha {self.alpha} per test"


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Register ``family``; registering an identical one again is a no-op (conftests re-run)."""
    existing = FAMILIES.get(family.name)
    if existing is not None and existing != family:
        raise FamilyError(
            f"family {family.name!r} is already registered with other members or alpha; "
            "use join_family to add claims to it"
        )
    FAMILIES[family.name] = family
    return family


def join_family(name: str, *claim_ids: str) -> Family:
    """Add claims to a registered family (idempotent); every member's alpha tightens accordingly."""
    family = get_family(name)
    added = tuple(cid for cid in claim_ids if cid not in family.members)
    FAMILIES[name] = replace(family, members=family.members + added)
    return FAMILIES[name]


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        known = ", ".join(sorted(FAMILIES)) or "none"
        raise FamilyError(f"no claim family {name!r} (registered: {known}); register it with register_family")
    return FAMILIES[name]


def member_alpha(family_name: str, claim_id: str) -> float:
    """The alpha of claim ``claim_id``'s test: its family's, whatever else was collected."""
    family = get_family(family_name)
    if claim_id not in family.members:
        raise FamilyError(
            f"claim {claim_id!r} is not a member of family {family_name!r}; "
            "add it with join_family or give the claim its own family"
        )
    return family.test_alpha
