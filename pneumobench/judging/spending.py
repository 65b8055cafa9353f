"""Group-sequential claims: judge at planned looks and spend each claim's alpha over them.

With ``--pb-seeds auto`` a claim is judged after 5, 10, 20, ... seeds up to a cap (40 by
default). Judging it at every look at its full alpha would raise its error rate with each
look; instead its alpha is *spent* over the looks by a Lan-DeMets spending function
``alpha(t)`` of the information fraction ``t`` (the share of the final look's information
seen so far), and look k's test runs at the alpha spent since the previous look,
``alpha(t_k) - alpha(t_(k-1))``. By the union bound, the chance of a wrong decision at any
look is at most the sum, ``alpha(1) = alpha``, whatever the dependence between the looks: it
holds exactly for t-tests with a shared reference run or Holm's step over rivals, where
boundaries computed from the joint normal distribution of the looks are slightly too loose
(docs/scaling.md). Each direction (REPRODUCED and CONTRADICTED) gets
the same levels, so each error is at most the claim's alpha over all looks.

- ``obrien-fleming`` (default): ``2 - 2 Phi(z(1 - alpha/2) / sqrt(t))``. Nearly nothing is
  spent early, so a claim still open at the cap is judged at almost the fixed design's alpha
  and loses almost no power; large effects still stop early.
- ``pocock``: ``alpha ln(1 + (e - 1) t)``. Spends evenly, stops earlier on large effects, at
  the cost of power at the cap.

Information grows with seeds as the claim's standard error shrinks: ``n`` for a paired or
best-of claim; ``1 / (1/n + 1/m)`` for a Table 6 row judged against ``m`` reference runs
(one for the paper's single published run: the reference's own noise never shrinks).
``calibration.sequential_error_rates`` checks every rule's errors by simulation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

__all__ = [
    "DEFAULT_MAX_SEEDS",
    "FIRST_LOOK",
    "SPENDING",
    "SequentialDesign",
    "SequentialError",
    "design",
    "first_decision",
    "information",
    "planned_looks",
    "spent_alpha",
]

FIRST_LOOK = 5
DEFAULT_MAX_SEEDS = 40


class SequentialError(ValueError):
    """A sequential plan that cannot be run (a cap below the first look, an unknown spending function)."""


def _obrien_fleming(t: float, alpha: float) -> float:
    if t <= 0:
        return 0.0
    return float(2 * st.norm.sf(st.norm.isf(alpha / 2) / math.sqrt(t)))


def _pocock(t: float, alpha: float) -> float:
    return alpha * math.log1p((math.e - 1) * t)


SPENDING: dict[str, Callable[[float, float], float]] = {"obrien-fleming": _obrien_fleming, "pocock": _pocock}


def spent_alpha(t: float, alpha: float, spending: str = "obrien-fleming") -> float:
    """The alpha spent by information fraction ``t`` in [0, 1]; equals ``alpha`` at t = 1."""
    if spending not in SPENDING:
        raise SequentialError(f"spending function {spending!r}: choose one of {', '.join(SPENDING)}")
    return SPENDING[spending](min(max(t, 0.0), 1.0), alpha)


def planned_looks(max_seeds: int = DEFAULT_MAX_SEEDS, first: int = FIRST_LOOK) -> tuple[int, ...]:
    """Seeds at each look: ``first``, doubling, and the cap (5, 10, 20, 40 by default)."""
    if max_seeds < first:
        raise SequentialError(f"--pb-max-seeds {max_seeds}: give at least {first}, the first look's seeds")
    looks = []
    seeds = first
    while seeds < max_seeds:
        looks.append(seeds)
        seeds *= 2
    return (*looks, max_seeds)


def information(seeds: int, reference_runs: int | None = None) -> float:
    """The information (inverse variance, in units of one seed's) of a claim at ``seeds`` seeds:
    ``seeds`` for a paired claim, ``1 / (1/seeds + 1/reference_runs)`` against fixed reference runs."""
    if reference_runs is None:
        return float(seeds)
    return 1.0 / (1.0 / seeds + 1.0 / reference_runs)


@dataclass(frozen=True)
class SequentialDesign:
    """One claim's plan: the looks, their information fractions and nominal one-sided levels."""

    looks: tuple[int, ...]
    fractions: tuple[float, ...]
    alpha: float
    spending: str
    nominal: tuple[float, ...]  # per look: a one-sided p below this decides


def design(
    looks: Sequence[int], alpha: float, spending: str = "obrien-fleming", reference_runs: int | None = None
) -> SequentialDesign:
    """The design of a claim judged at ``looks`` seeds (``reference_runs``: see ``information``):
    each look's nominal level is the alpha spent since the previous look."""
    infos = [information(n, reference_runs) for n in looks]
    fractions = tuple(i / infos[-1] for i in infos)
    spent = [0.0, *(spent_alpha(t, alpha, spending) for t in fractions)]
    nominal = tuple(float(after - before) for before, after in itertools.pairwise(spent))
    return SequentialDesign(tuple(looks), fractions, float(alpha), spending, nominal)


def first_decision(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of look verdicts ``codes`` (rows, looks) in {+1 reproduced, -1 contradicted, 0 open}:
    the first decision and the index of the look that took it (the last look when none did)."""
    decided = codes != 0
    look = np.where(decided.any(axis=1), decided.argmax(axis=1), codes.shape[1] - 1)
    return codes[np.arange(codes.shape[0]), look], look
