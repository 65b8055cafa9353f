"""The result of one (configuration, seed) run: plain data with a strict JSON round trip.

Its own module so the results store, statistics and reports read runs without importing
torch or the models.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EpochScores", "RunResult", "decode_epoch_scores", "encode_epoch_scores"]


@dataclass(frozen=True)
class EpochScores:
    """Per-epoch, per-image validation scores: ``dice`` (E,N) float32 and ``correct`` (E,N) bool,
    one row per validated epoch (``epochs``, 1-based), columns in ``val_ids`` order."""

    epochs: tuple[int, ...]
    dice: np.ndarray
    correct: np.ndarray

    def row(self, epoch: int) -> int:
        """The row of a 1-based epoch (``KeyError`` naming it when that epoch was not validated)."""
        try:
            return self.epochs.index(epoch)
        except ValueError:
            raise KeyError(f"epoch {epoch} was not validated (validated: {list(self.epochs)})") from None


def encode_epoch_scores(epochs: list[int], dice: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """A compact JSON form: float32 Dice and bit-packed correctness, each zlib-compressed in base64.

    Exact: decoding gives back the same float32 values (about 2.5 bytes per image and epoch)."""
    dice = np.ascontiguousarray(dice, dtype="<f4")
    correct = np.asarray(correct, dtype=bool)
    if dice.shape != correct.shape or dice.ndim != 2 or dice.shape[0] != len(epochs):
        raise ValueError(f"epoch scores: dice {dice.shape}, correct {correct.shape} and {len(epochs)} epochs disagree")
    return {
        "epochs": [int(e) for e in epochs],
        "images": int(dice.shape[1]),
        "dice_f32": _pack(dice.tobytes()),
        "correct_bits": _pack(np.packbits(correct, axis=None).tobytes()),
    }


def decode_epoch_scores(data: dict[str, Any]) -> EpochScores:
    epochs = tuple(int(e) for e in data["epochs"])
    shape = (len(epochs), int(data["images"]))
    dice = np.frombuffer(_unpack(data["dice_f32"]), dtype="<f4").reshape(shape).copy()
    bits = np.frombuffer(_unpack(data["correct_bits"]), dtype=np.uint8)
    correct = np.unpackbits(bits, count=shape[0] * shape[1]).astype(bool).reshape(shape)
    return EpochScores(epochs, dice, correct)


def _pack(raw: bytes) -> str:
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def _unpack(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


@dataclass
class RunResult:
    """Everything the statistics and reports need from one (configuration, seed) run."""

    config: dict[str, Any]
    config_key: str
    config_name: str
    seed: int
    dataset_fingerprint: str
    val_ids: list[str]
    dice_per_image: list[float]
    cls_prob: list[float]
    correct: list[bool]
    dice: float
    accuracy: float
    curves: list[dict[str, Any]]
    epochs: int
    wall_time_s: float
    train_images_per_s: float
    environment: dict[str, Any] = field(default_factory=dict)
    dataset_path: str = ""
    synthetic_data: bool = False
    examples: dict[str, str] = field(default_factory=dict)  # image id -> predicted mask (SIIM RLE)
    mask_fraction: list[float] = field(default_factory=list)  # per validation image: pixels predicted positive
    # The reported epoch (1-based; 0 in results stored before epoch selection existed: the last).
    selected_epoch: int = 0
    epoch_scores: dict[str, Any] = field(default_factory=dict)  # ``encode_epoch_scores`` of every validated epoch

    @property
    def reported_epoch(self) -> int:
        return self.selected_epoch or self.epochs

    def per_epoch(self) -> EpochScores | None:
        """Every validated epoch's per-image scores, or None for results stored without them."""
        return decode_epoch_scores(self.epoch_scores) if self.epoch_scores else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"RunResult: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> RunResult:
        return cls.from_dict(json.loads(text))
