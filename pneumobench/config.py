"""Experiment configurations: frozen dataclasses with a JSON round trip and a stable key.

``ExperimentConfig.paper_baseline()`` is the paper's baseline (Table 1);
``.with_modifications("aspp", "lovasz")`` applies registered modifications (see
``pneumobench.modifications``). ``key()`` hashes the canonical JSON, so the same
configuration has the same key in every process and on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pneumobench.data.cache import SyntheticSpec
from pneumobench.registry import Registry

__all__ = ["ConfigError", "ModelConfig", "StageConfig", "ExperimentConfig", "Profile", "PROFILES", "register_profile", "get_profile"]


class ConfigError(ValueError):
    """A configuration that cannot be built or parsed; the message names the field."""


@dataclass(frozen=True)
class ModelConfig:
    """The U-Net of the paper and its extension points (registered names)."""

    encoder: str = "resnet34"
    encoder_weights: str | None = None  # None, "imagenet", or a path to a state dict file
    center: str = "std"  # registered center block: "std" or "aspp"
    attention: str = "none"  # registered decoder attention: "none" or "scse"
    head: str = "concat_pool"  # registered classification head
    hypercolumns: bool = False
    decoder_channels: int = 64
    center_channels: int | None = None  # the standard center block's width; None: the encoder's (512, the paper)
    aspp_channels: int = 256
    aspp_rates: tuple[int, int, int] = (6, 12, 18)
    aspp_dropout: float = 0.0
    cls_hidden: int = 32
    mask_bias: float = 0.0  # initial bias of the final mask conv; < 0 starts from "mostly empty"


@dataclass(frozen=True)
class StageConfig:
    """One training stage: epochs of cosine annealing from ``lr`` to ``min_lr``."""

    epochs: int
    lr: float
    min_lr: float
    freeze_encoder: bool = False


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines a run except the seed and the dataset."""

    model: ModelConfig = field(default_factory=ModelConfig)
    seg_loss: str = "bce"  # registered segmentation loss
    cls_weight: float | None = None  # None: the weight registered with the loss
    batch_size: int = 32
    image_size: int = 256
    flip_p: float = 0.5
    stages: tuple[StageConfig, ...] = (
        StageConfig(epochs=3, lr=5e-4, min_lr=1e-4, freeze_encoder=True),
        StageConfig(epochs=40, lr=5e-4, min_lr=5e-5),
    )
    modifications: tuple[str, ...] = ()

    @classmethod
    def paper_baseline(cls) -> ExperimentConfig:
        """The paper's baseline: ResNet-34 U-Net (ImageNet encoder), BCE, Table 1's schedule."""
        return cls(model=ModelConfig(encoder_weights="imagenet"))

    @property
    def name(self) -> str:
        """``baseline`` or the applied modifications joined by ``+`` (e.g. ``lovasz+aspp``)."""
        return "+".join(self.modifications) or "baseline"

    @property
    def epochs(self) -> int:
        return sum(stage.epochs for stage in self.stages)

    def replace(self, **changes: Any) -> ExperimentConfig:
        return dataclasses.replace(self, **changes)

    def replace_model(self, **changes: Any) -> ExperimentConfig:
        return dataclasses.replace(self, model=dataclasses.replace(self.model, **changes))

    def with_modifications(self, *names: str) -> ExperimentConfig:
        """Apply registered modifications in order; the result records their names canonically."""
        from pneumobench.modifications import apply_modifications

        return apply_modifications(self, names)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        return _from_jsonable(cls, data, "config")

    @classmethod
    def from_json(cls, text: str) -> ExperimentConfig:
        return cls.from_dict(json.loads(text))

    def key(self) -> str:
        """A 16-hex-digit hash of the canonical JSON: stable across processes and machines."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Profile:
    """How claims are run: the base experiment, the seeds, and the default dataset.

    ``synthetic`` is the embedded default dataset used when no ``--pb-data`` is given; a
    profile without one needs a prepared dataset (the real SIIM-ACR data).
    """

    name: str
    base: ExperimentConfig
    seeds: tuple[int, ...]
    synthetic: SyntheticSpec | None
    description: str
    checkpoint_every: int = 1

    def config(self, *modifications: str) -> ExperimentConfig:
        return self.base.with_modifications(*modifications)


PROFILES: Registry[Profile] = Registry("profile")


def register_profile(profile: Profile) -> Profile:
    """Register a profile under its name (a new profile is one call)."""
    return PROFILES.register(profile.name)(profile)


def get_profile(name: str) -> Profile:
    return PROFILES.get(name)


_PAPER = ExperimentConfig.paper_baseline()
register_profile(Profile(
    name="paper",
    base=_PAPER,
    seeds=(0, 1, 2, 3, 4),
    synthetic=None,
    description="the paper's exact protocol on the real SIIM-ACR data (256x256, ImageNet encoder, 43 epochs)",
    checkpoint_every=5,
))
register_profile(dataclasses.replace(
    PROFILES.get("paper"),
    name="nightly",
    description="GPU CI: the paper's protocol on a prepared SIIM-ACR dataset, 5 seeds per configuration",
))
register_profile(Profile(
    name="smoke",
    base=ExperimentConfig(
        model=ModelConfig(encoder="tu-resnet10t", mask_bias=-6.0, decoder_channels=32, center_channels=128,
                          aspp_channels=128),
        image_size=32,
        batch_size=16,
        stages=(StageConfig(1, 2e-2, 2e-2, freeze_encoder=True), StageConfig(11, 2e-2, 1e-4)),
    ),
    seeds=(0, 1, 2),
    synthetic=SyntheticSpec(n_positive=128, n_negative=128, size=32, difficulty=0.2),
    description=(
        "CPU smoke run on synthetic SIIM-format data: the paper's architecture family with a ResNet-10-T encoder "
        "(timm), a 128-channel center (ASPP 128) and a 32-channel decoder at 32x32, 1+11 epochs of 128 images at "
        "2e-2; exercises the pipeline, not evidence about the paper"
    ),
))


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_jsonable(v) for v in value]
    return value


def _from_jsonable(tp: Any, data: Any, where: str) -> Any:
    """Build ``tp`` from JSON data, strictly: unknown or mistyped fields name their path."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        kwargs = {k: _from_jsonable(hints[k], v, f"{where}.{k}") for k, v in data.items()}
        try:
            return tp(**kwargs)
        except TypeError as error:
            raise ConfigError(f"{where}: {error}") from None
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(data, list):
            raise ConfigError(f"{where}: expected a list, got {type(data).__name__}")
        item_types = [args[0]] * len(data) if args[-1] is Ellipsis else list(args)
        if len(item_types) != len(data):
            raise ConfigError(f"{where}: expected {len(item_types)} items, got {len(data)}")
        return tuple(_from_jsonable(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(item_types, data)))
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _from_jsonable(option, data, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {data!r} matches none of {tp}")
    if tp is type(None):
        if data is not None:
            raise ConfigError(f"{where}: expected null, got {data!r}")
        return None
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if tp in (int, float, str, bool) and (type(data) is not tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {data!r}")
    return data
