"""Seed lists: what ``--pb-seeds`` accepts, checked so that every seed is an independent replicate.

A repeated seed repeats a run exactly (same initialisation, same batches), so counting it
twice would shrink the standard error without new evidence; a negative or non-integer seed
has no run. Both are usage errors, never a verdict.
"""

from __future__ import annotations

__all__ = ["SeedError", "check_seeds", "parse_seed", "parse_seeds"]


class SeedError(ValueError):
    """A seed specification that cannot be run as independent replicates (one-line message)."""


def check_seeds(seeds: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """``seeds`` as a tuple, or ``SeedError`` for an empty list, a negative or a repeated seed."""
    if not seeds:
        raise SeedError("no seeds: give a count of at least 1 (5) or a list of seeds (0,1,2)")
    negative = [s for s in seeds if s < 0]
    if negative:
        raise SeedError(f"seed {negative[0]} is negative: seeds are integers >= 0")
    repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise SeedError(
            f"seed {repeated[0]} is given more than once: seeds must be distinct "
            "(a repeated seed repeats the same run and is not new evidence)"
        )
    return tuple(seeds)


def parse_seed(text: str) -> int:
    """One seed: an integer >= 0, or ``SeedError``."""
    if not text.strip().lstrip("-").isdigit():
        raise SeedError(f"seed {text!r} is not an integer: seeds are integers >= 0")
    return check_seeds((int(text),))[0]


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"5"`` -> seeds 0..4; ``"0,3,7"`` -> those seeds. ``SeedError`` says what is allowed."""
    parts = [part.strip() for part in text.split(",")]
    if "," not in text:
        if not parts[0].lstrip("-").isdigit():
            raise SeedError(f"seeds {text!r}: give a count (5) or a comma-separated list of integers >= 0 (0,1,2)")
        count = int(parts[0])
        if count < 1:
            raise SeedError(f"seed count {count}: give at least 1 (5 runs seeds 0-4), or a list (0,1,2)")
        return tuple(range(count))
    return check_seeds(tuple(parse_seed(part) for part in parts))
