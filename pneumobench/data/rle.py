"""Run-length encoding of binary masks, as used by the SIIM-ACR CSV files.

Pixels are numbered column-major (down each column first). A string is a list of
``start length`` pairs. With ``relative=True`` (the SIIM convention) each start is the
0-based gap after the end of the previous run, the first counted from pixel 0; with
``relative=False`` starts are the standard Kaggle 1-based absolute pixel numbers.
``"-1"`` (surrounding spaces allowed) is the empty mask.

Everything is vectorized with NumPy: the cost is linear in the number of runs plus one
pass over the pixels, with no Python loop over either.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["EMPTY", "RLEError", "decode", "decode_union", "encode"]

EMPTY = "-1"


class RLEError(ValueError):
    """A malformed run-length string; the message names the offending token."""


MAX_TOKEN_DIGITS = 18  # every 18-digit number fits in int64


def _parse_tokens(rle: str) -> np.ndarray:
    """Split ``rle`` into non-negative integer tokens, naming the first bad one."""
    tokens = np.array(rle.split())
    if tokens.size == 0:
        raise RLEError(f"empty RLE string {rle!r}: use '{EMPTY}' for an empty mask")
    if tokens.size % 2:
        raise RLEError(
            f"RLE has an odd number of tokens ({tokens.size}): token {tokens.size - 1} "
            f"({str(tokens[-1])!r}) has no length"
        )
    # Only ASCII digits are valid; a non-ASCII string holds a bad token somewhere.
    valid = np.char.isdigit(tokens) & (rle.isascii() or np.array([t.isascii() for t in tokens]))
    if not valid.all():
        index = int(np.flatnonzero(~valid)[0])
        token = str(tokens[index])
        problem = "negative" if token.startswith("-") else "not a non-negative integer"
        raise RLEError(f"RLE token {index} ({token!r}) is {problem}")
    too_long = np.char.str_len(np.char.lstrip(tokens, "0")) > MAX_TOKEN_DIGITS
    if too_long.any():  # past int64: no image has that many pixels
        index = int(np.flatnonzero(too_long)[0])
        token = str(tokens[index])
        shown = token if len(token) <= 24 else token[:24] + "..."
        raise RLEError(f"RLE token {index} ({shown!r}) is larger than any image")
    return tokens.astype(np.int64)


def _runs(rle: str, n_pixels: int, relative: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return 0-based absolute (starts, ends) of the runs, sorted and validated."""
    values = _parse_tokens(rle)
    beyond = values > n_pixels  # no gap, start or length can exceed the image (and sums stay far from overflow)
    if beyond.any():
        index = int(np.flatnonzero(beyond)[0])
        raise RLEError(f"RLE token {index} ({int(values[index])}) is larger than the image ({n_pixels} pixels)")
    offsets, lengths = values[0::2], values[1::2]
    if relative:
        ends = np.cumsum(offsets + lengths)
        starts = ends - lengths
    else:
        if (offsets == 0).any():
            index = 2 * int(np.flatnonzero(offsets == 0)[0])
            raise RLEError(f"RLE token {index} ('0') is not a valid 1-based absolute start")
        starts = offsets - 1
        ends = starts + lengths
    past_end = ends > n_pixels
    if past_end.any():
        run = int(np.flatnonzero(past_end)[0])
        raise RLEError(
            f"RLE token {2 * run + 1} ({int(lengths[run])!r}): run {run} ends at pixel "
            f"{int(ends[run])}, past the image end ({n_pixels} pixels)"
        )
    if not relative and starts.size > 1:
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], ends[order]
        overlap = starts[1:] < ends[:-1]
        if overlap.any():
            run = int(order[1:][np.flatnonzero(overlap)[0]])
            raise RLEError(f"RLE token {2 * run} ({int(offsets[run])!r}): run {run} overlaps an earlier run")
    return starts, ends


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) != 2 or min(shape) <= 0:
        raise RLEError(f"mask shape must be (height, width) with positive sizes, got {shape!r}")
    return int(shape[0]), int(shape[1])


def _paint(flat: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
    """Set ``flat[start:end]`` for every run (in place), given sorted disjoint runs.

    One ``np.repeat`` of alternating off/on values by the gap and run lengths builds the
    whole column-major pixel vector at once.
    """
    counts = np.empty(2 * starts.size + 1, dtype=np.int64)
    counts[0:-1:2] = starts - np.concatenate(([0], ends[:-1]))
    counts[1::2] = ends - starts
    counts[-1] = flat.size - (ends[-1] if ends.size else 0)
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    flat |= np.repeat(values, counts)


def _is_empty(rle: str) -> bool:
    return rle.strip() == EMPTY


def decode(rle: str, shape: tuple[int, int], *, relative: bool = True) -> np.ndarray:
    """Decode one run-length string into a boolean mask of ``shape`` (height, width)."""
    height, width = _check_shape(shape)
    flat = np.zeros(height * width, dtype=bool)
    if not _is_empty(rle):
        _paint(flat, *_runs(rle, flat.size, relative))
    return flat.reshape(width, height).T


def decode_union(rles: Iterable[str], shape: tuple[int, int], *, relative: bool = True) -> np.ndarray:
    """Decode several strings of one image (one per region) into the union of their masks.

    Runs of different strings may overlap (regions may touch or overlap); each string on
    its own must be valid. An empty iterable or only ``"-1"`` strings give an empty mask.
    """
    height, width = _check_shape(shape)
    flat = np.zeros(height * width, dtype=bool)
    for rle in rles:
        if not _is_empty(rle):
            _paint(flat, *_runs(rle, flat.size, relative))
    return flat.reshape(width, height).T


def encode(mask: np.ndarray, *, relative: bool = True) -> str:
    """Encode a 2-D binary mask; an empty mask gives ``"-1"``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RLEError(f"mask must be 2-D (height, width), got shape {mask.shape}")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise RLEError("mask must be binary (values 0 and 1 only)")
        mask = mask.astype(bool)
    flat = mask.T.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if flat[0]:
        edges = np.concatenate(([0], edges))
    if flat[-1]:
        edges = np.concatenate((edges, [flat.size]))
    if edges.size == 0:
        return EMPTY
    starts, ends = edges[0::2], edges[1::2]
    lengths = ends - starts
    if relative:
        offsets = starts - np.concatenate(([0], ends[:-1]))
    else:
        offsets = starts + 1
    return " ".join(map(str, np.column_stack((offsets, lengths)).ravel().tolist()))
