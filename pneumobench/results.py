"""The result of one (configuration, seed) run: plain data with a strict JSON round trip.

Its own module so the results store, statistics and reports read runs without importing
torch or the models.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunResult"]


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
