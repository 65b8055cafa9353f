"""Experiment configurations: frozen dataclasses with a JSON round trip and a stable key.

``ExperimentConfig.paper_baseline()`` is the paper's baseline (Table 1);
``.with_modifications("aspp", "lovasz")`` applies registered modifications (see
``pneumobench.papers.viel_orhan_2020.modifications``). ``key()`` hashes the canonical JSON, so the same
configuration has the same key in every process and on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pneumobench.core.registry import Registry

__all__ = [
    "MODIFICATIONS",
    "PAPER_MODIFICATIONS",
    "ConfigError",
    "ExperimentConfig",
    "ModelConfig",
    "StageConfig",
    "SyntheticSpec",
    "apply_modifications",
    "config_name",
    "modification",
]


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
    aspp_dropout: float = 0.0  # Dropout on ASPP's output (the authors' code: 0.5)
    # The attention the ``scse`` modification installs: "scse" (smp's, a 1-channel spatial gate) or
    # "scse_cc" (the authors' code, a C-channel spatial gate).
    scse_block: str = "scse"
    # The squeeze ratio passed as ``reduction`` to an attention block that takes one (None: the
    # block's own, 16 for both scSE blocks). The smoke profile's narrow decoder needs a smaller one.
    attention_reduction: int | None = None
    cls_hidden: int = 32
    mask_bias: float = 0.0  # initial bias of the final mask conv; < 0 starts from "mostly empty"
    # A timm ResNet ("tu-" encoders) built narrower: its stem width and its four stages' widths
    # (None: the encoder's own). The smoke profile uses it to keep the CPU on maps it runs fast.
    encoder_stem_width: int | None = None
    encoder_widths: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        narrowed = self.encoder_stem_width is not None or self.encoder_widths is not None
        if narrowed and not self.encoder.startswith("tu-"):
            raise ConfigError(
                f"encoder_stem_width and encoder_widths apply to timm encoders ('tu-...'), not {self.encoder!r}"
            )
        if self.attention_reduction is not None and self.attention_reduction < 1:
            raise ConfigError(f"attention_reduction: {self.attention_reduction} is not a positive ratio")
        widths = (self.encoder_stem_width,) if self.encoder_stem_width is not None else ()
        if any(w < 1 for w in (*widths, *(self.encoder_widths or ()))):
            raise ConfigError(f"encoder widths must be positive (got {self.encoder_stem_width}, {self.encoder_widths})")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: epochs of cosine annealing from ``lr`` to ``min_lr``.

    ``seg_loss`` overrides the experiment's segmentation loss in this stage (the authors' code
    trains stage 2 with BCE whatever stage 1 used); its classification weight is then that loss's.
    """

    epochs: int
    lr: float
    min_lr: float
    freeze_encoder: bool = False
    seg_loss: str | None = None


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
    # Protocol settings where the paper's text and the authors' code differ (docs/protocol.md).
    lr_schedule: str = "cosine-step"  # "cosine-step": per step, lr -> min_lr; "cosine-epoch": the authors'
    drop_last: bool = True  # drop the last partial training batch (the authors keep it)
    cuda_precision: str = "bf16"  # on CUDA with the fast path: "bf16" autocast, or "fp32" (the authors')
    val_averaging: str = "image"  # "image": mean over images; "batch": mean of per-batch means (the authors')
    epoch_selection: str = "last"  # the reported epoch: "last", "best-val" (the authors'), "best-heldout"
    heldout_fraction: float = 0.0  # share of the training half held out to pick the epoch ("best-heldout")
    # Validate every k epochs and the last (curves and per-epoch scores only at those); a rule
    # that picks the best epoch needs every epoch validated.
    validate_every: int = 1

    def __post_init__(self) -> None:
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("cuda_precision", self.cuda_precision, CUDA_PRECISIONS)
        _check_choice("val_averaging", self.val_averaging, VAL_AVERAGING)
        _check_choice("epoch_selection", self.epoch_selection, EPOCH_SELECTIONS)
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ConfigError(f"heldout_fraction: {self.heldout_fraction} is not in [0, 1)")
        if self.validate_every < 1:
            raise ConfigError(f"validate_every: {self.validate_every} is not a positive count of epochs")
        if self.epoch_selection != "last" and self.validate_every != 1:
            raise ConfigError(
                f"epoch_selection {self.epoch_selection!r} picks the best epoch and needs every epoch validated "
                f"(validate_every 1, got {self.validate_every})"
            )
        if (self.epoch_selection == "best-heldout") != (self.heldout_fraction > 0):
            raise ConfigError(
                "epoch_selection 'best-heldout' needs a heldout_fraction above 0, and a heldout_fraction "
                f"needs 'best-heldout' (got {self.epoch_selection!r} with {self.heldout_fraction})"
            )

    @classmethod
    def paper_baseline(cls) -> ExperimentConfig:
        """The paper's baseline: ResNet-34 U-Net (ImageNet encoder), BCE, Table 1's schedule."""
        return cls(model=ModelConfig(encoder_weights="imagenet"))

    @property
    def name(self) -> str:
        """``baseline`` or the applied modifications joined by ``+`` (e.g. ``lovasz+aspp``)."""
        return config_name(self.modifications)

    @property
    def epochs(self) -> int:
        return sum(stage.epochs for stage in self.stages)

    def replace(self, **changes: Any) -> ExperimentConfig:
        return dataclasses.replace(self, **changes)

    def replace_model(self, **changes: Any) -> ExperimentConfig:
        return dataclasses.replace(self, model=dataclasses.replace(self.model, **changes))

    def with_modifications(self, *names: str) -> ExperimentConfig:
        """Apply registered modifications in order; the result records their names canonically."""
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
        """A 16-hex-digit hash of the canonical JSON: stable across processes and machines.

        Settings added after the first store format (``LATE_FIELDS``) enter it only when they
        differ from their default, so every configuration that existed before keeps its key
        (and its stored runs and recorded baselines)."""
        canonical = json.dumps(_key_dict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a synthetic prepared dataset (``pneumobench.data.cache`` builds and caches it)."""

    n_positive: int = 160
    n_negative: int = 160
    size: int = 64
    seed: int = 0
    difficulty: float = 0.5
    mask_rows: str = "union"  # preparation rules (``pneumobench.data.siim``); the authors': "first"
    resize: str = "area"  # the authors': "bilinear"
    # Images of each class trained on; the rest are validated (None: half and half, as the paper).
    train_per_class: int | None = None


LR_SCHEDULES = ("cosine-step", "cosine-epoch")
CUDA_PRECISIONS = ("bf16", "fp32")
VAL_AVERAGING = ("image", "batch")
EPOCH_SELECTIONS = ("last", "best-val", "best-heldout")
LATE_FIELDS: dict[type, tuple[str, ...]] = {
    ExperimentConfig: (
        "lr_schedule",
        "drop_last",
        "cuda_precision",
        "val_averaging",
        "epoch_selection",
        "heldout_fraction",
        "validate_every",
    ),
    ModelConfig: ("scse_block", "encoder_stem_width", "encoder_widths", "attention_reduction"),
    StageConfig: ("seg_loss",),
}


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


def _key_dict(value: Any) -> Any:
    """``to_dict`` without the late fields that hold their default (see ``ExperimentConfig.key``)."""
    if dataclasses.is_dataclass(value):
        late = LATE_FIELDS.get(type(value), ())
        defaults = {f.name: f.default for f in dataclasses.fields(value)}
        return {
            f.name: _key_dict(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.name in late and getattr(value, f.name) == defaults[f.name])
        }
    if isinstance(value, (tuple, list)):
        return [_key_dict(v) for v in value]
    return value


def config_name(modifications: Iterable[str]) -> str:
    """A configuration's display name: its modifications joined by ``+``, or ``baseline``."""
    return "+".join(modifications) or "baseline"


Modification = Callable[[ExperimentConfig], ExperimentConfig]
# The paper's four register themselves in its package (imported on first lookup).
MODIFICATIONS: Registry[Modification] = Registry(
    "modification", builtins="pneumobench.papers.viel_orhan_2020.modifications"
)
PAPER_MODIFICATIONS = ("lovasz", "aspp", "hypercolumns", "scse")  # Table 6's order, also the names' canonical order


def modification(name: str) -> Callable[[Modification], Modification]:
    """Decorator: register ``fn(config) -> config`` as modification ``name``."""
    return MODIFICATIONS.register(name)


def apply_modifications(config: ExperimentConfig, names: Iterable[str]) -> ExperimentConfig:
    """Apply each named modification once, in order, recording the set of names in a canonical
    order (the paper's four first, in Table 6's order, then others alphabetically)."""
    applied = set(config.modifications)
    for name in names:
        if name in applied:
            continue
        config = MODIFICATIONS.get(name)(config)
        applied.add(name)
    return config.replace(modifications=tuple(sorted(applied, key=_canonical_order)))


def _canonical_order(name: str) -> tuple[int, str]:
    paper_rank = PAPER_MODIFICATIONS.index(name) if name in PAPER_MODIFICATIONS else len(PAPER_MODIFICATIONS)
    return paper_rank, name


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
            return tp(**kwargs)  # type: ignore[operator]  # a dataclass type, checked above
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
