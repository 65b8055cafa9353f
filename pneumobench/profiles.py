"""Profiles: how claims are run (the base experiment, the seeds, the default dataset), registered by name.

``paper`` is the paper's protocol on the real SIIM-ACR data, ``nightly`` the same for GPU CI,
``smoke`` a CPU run on synthetic SIIM-format data. A new profile is one ``register_profile``
call in any module, like a modification in ``pneumobench.modifications``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pneumobench.config import ExperimentConfig, ModelConfig, StageConfig, SyntheticSpec
from pneumobench.registry import Registry

__all__ = ["PROFILES", "Profile", "get_profile", "register_profile"]


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
register_profile(
    Profile(
        name="paper",
        base=_PAPER,
        seeds=(0, 1, 2, 3, 4),
        synthetic=None,
        description="the paper's exact protocol on the real SIIM-ACR data (256x256, ImageNet encoder, 43 epochs)",
        checkpoint_every=5,
    )
)
register_profile(
    dataclasses.replace(
        PROFILES.get("paper"),
        name="nightly",
        description="GPU CI: the paper's protocol on a prepared SIIM-ACR dataset, 5 seeds per configuration",
    )
)
register_profile(
    Profile(
        name="smoke",
        base=ExperimentConfig(
            model=ModelConfig(
                encoder="tu-resnet10t", mask_bias=-6.0, decoder_channels=32, center_channels=128, aspp_channels=128
            ),
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
    )
)
