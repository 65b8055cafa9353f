"""RLE: round trips, hand-decoded strings, a per-pixel reference, and every malformed input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pneumobench.data.rle import RLEError, decode, decode_union, encode


def reference_decode(rle: str, shape: tuple[int, int], relative: bool) -> np.ndarray:
    """Plain per-pixel decoder, written independently of the library's one."""
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    if rle.strip() == "-1":
        return mask
    values = [int(v) for v in rle.split()]
    position = 0
    for start, length in zip(values[0::2], values[1::2]):
        first = position + start if relative else start - 1
        for pixel in range(first, first + length):
            mask[pixel % height, pixel // height] = True
        position = first + length
    return mask


masks = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda shape: arrays(bool, shape)
)


@given(mask=masks, relative=st.booleans())
def test_round_trip(mask, relative):
    assert np.array_equal(decode(encode(mask, relative=relative), mask.shape, relative=relative), mask)


@given(mask=masks, relative=st.booleans())
def test_decode_matches_per_pixel_reference(mask, relative):
    rle = encode(mask, relative=relative)
    expected = reference_decode(rle, mask.shape, relative)
    assert np.array_equal(decode(rle, mask.shape, relative=relative), expected)


@pytest.mark.parametrize("relative", [True, False])
@pytest.mark.parametrize(
    "pixels",
    [[], [(0, 0)], [(3, 4)], [(0, 0), (3, 4)], "full"],
    ids=["empty", "first", "last", "first+last", "full"],
)
def test_round_trip_edge_masks(pixels, relative):
    mask = np.ones((4, 5), bool) if pixels == "full" else np.zeros((4, 5), bool)
    if pixels != "full":
        for row, col in pixels:
            mask[row, col] = True
    rle = encode(mask, relative=relative)
    assert np.array_equal(decode(rle, (4, 5), relative=relative), mask)


def test_empty_mask_encodes_as_minus_one_and_decodes_with_spaces():
    assert encode(np.zeros((3, 3), bool)) == "-1"
    assert not decode(" -1 ", (3, 3)).any()


def test_hand_written_strings_are_column_major():
    # 3x3 image, pixels numbered down the columns: 0 1 2 | 3 4 5 | 6 7 8.
    # Relative "1 2 3 1": skip 1, paint pixels 1-2, skip 3 (pixels 3-5), paint pixel 6.
    expected = np.zeros((3, 3), bool)
    expected[1, 0] = expected[2, 0] = True  # pixels 1, 2 in column 0
    expected[0, 2] = True  # pixel 6: row 0, column 2
    assert np.array_equal(decode("1 2 3 1", (3, 3)), expected)
    # The same mask in standard 1-based absolute RLE.
    assert np.array_equal(decode("2 2 7 1", (3, 3), relative=False), expected)
    assert encode(expected) == "1 2 3 1"
    assert encode(expected, relative=False) == "2 2 7 1"


def test_non_square_shape_is_height_then_width():
    mask = decode("0 2", (2, 3))  # the whole first column of a 2x3 image
    assert mask.shape == (2, 3)
    assert mask[:, 0].all() and not mask[:, 1:].any()


def test_union_of_regions():
    a = np.zeros((6, 6), bool)
    a[1:3, 1:3] = True
    b = np.zeros((6, 6), bool)
    b[2:5, 2:5] = True  # overlaps a at (2, 2)
    union = decode_union([encode(a), " -1", encode(b)], (6, 6))
    assert np.array_equal(union, a | b)
    assert not decode_union([], (6, 6)).any()


@pytest.mark.parametrize(
    "rle, relative, message",
    [
        ("1 2 3", True, "odd number of tokens (3): token 2 ('3')"),
        ("1 2 x 1", True, "token 2 ('x') is not a non-negative integer"),
        ("1 2.5", True, "token 1 ('2.5') is not a non-negative integer"),
        ("1 2 -3 1", True, "token 2 ('-3') is negative"),
        ("5 5", True, "token 1 (5): run 0 ends at pixel 10, past the image end (9 pixels)"),
        ("0 10", True, "token 1 (10) is larger than the image (9 pixels)"),
        ("9223372036854775000 9223372036854775000", True, "token 0 ('9223372036854775000') is larger than any image"),
        ("1 99999999999999999999999", True, "token 1 ('99999999999999999999999') is larger than any image"),
        ("1 2 5 3", True, "token 3 (3): run 1 ends at pixel 11"),
        ("8 3", False, "token 1 (3): run 0 ends at pixel 10"),
        ("1 4 3 2", False, "token 2 (3): run 1 overlaps an earlier run"),
        ("0 2", False, "token 0 ('0') is not a valid 1-based absolute start"),
        ("   ", True, "empty RLE string"),
    ],
)
def test_malformed_rle_names_the_token(rle, relative, message):
    with pytest.raises(RLEError) as info:
        decode(rle, (3, 3), relative=relative)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_malformed_string_in_union_raises():
    with pytest.raises(RLEError, match="token 1"):
        decode_union(["0 1", "0 99"], (3, 3))


@pytest.mark.parametrize(
    "mask, message",
    [(np.zeros((2, 2, 2), bool), "must be 2-D"), (np.full((2, 2), 2), "must be binary")],
)
def test_encode_rejects_bad_masks(mask, message):
    with pytest.raises(RLEError, match=message):
        encode(mask)


def test_bad_shape_rejected():
    with pytest.raises(RLEError, match="shape"):
        decode("-1", (0, 3))


def test_leading_zeros_do_not_count_as_size():
    assert decode("0" * 30 + "1 2", (3, 3)).T.ravel().tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("rle", ["9223372036854775000 9223372036854775000", "99999999999999999999999 5",
                                 "4611686018427387904 4611686018427387904 4611686018427387904 1"])
def test_numbers_past_int64_or_the_image_are_rle_errors_not_crashes(rle):
    """Once a segfault in np.repeat (overflowing sums) or an OverflowError."""
    with pytest.raises(RLEError):
        decode(rle, (1024, 1024))
    with pytest.raises(RLEError):
        decode_union(["1 2", rle], (1024, 1024))
