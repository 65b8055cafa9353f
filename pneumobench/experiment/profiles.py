"""Profiles: how claims are run (the base experiment, the seeds, the default dataset), registered by name.

``paper`` is the paper's protocol as its text states it, on the real SIIM-ACR data; ``authors``
is what the authors' code ran (docs/protocol.md: every difference is a named setting);
``nightly`` is ``paper`` for GPU CI; ``smoke`` and ``smoke-authors`` are CPU runs of the two
protocols on synthetic SIIM-format data. A new profile is one ``register_profile`` call in any
module, like a modification in ``pneumobench.papers.viel_orhan_2020.modifications``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pneumobench.core.registry import Registry
from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig, SyntheticSpec

__all__ = ["PROFILES", "Profile", "RegressionDesign", "authors_protocol", "get_profile", "register_profile"]


@dataclass(frozen=True)
class RegressionDesign:
    """The baseline configuration's regression check sized by its power: ``seeds`` and a margin
    per metric (``margins``) with which a drop of ``protected`` is found at least 80% of the time
    when runs vary between seeds by ``sds`` (measured) and today's runs are decorrelated from the
    recorded ones, as changed code makes them. Each margin is the largest that keeps that power
    (``stats.sized_margin``, rounded down to 0.001), or 0.001 where no margin does: the check
    then finds what ``stats.detectable_change`` gives, not ``protected``, and the docs say so
    (tests/test_regression_power.py checks both by simulation). The baseline is the code path
    every row shares and the one the sensitivity suite plants its bugs in; the other rows keep
    the profile's seeds and print what they detect."""

    seeds: tuple[int, ...]
    margins: tuple[tuple[str, float], ...]
    sds: tuple[tuple[str, float], ...]
    sd_seeds: int  # the seeds ``sds`` were measured over (how far they can be trusted)
    protected: tuple[tuple[str, float], ...] = (("dice", 0.01), ("accuracy", 0.02))


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
    baseline_selection: str | None = None  # the baseline row's epoch selection where it differs (authors: last)
    mask_rows: str = "union"  # the preparation rules its dataset must have (``pneumobench data prepare``)
    resize: str = "area"
    paper_numbers: bool = False  # on the real data, Table 6's rows are judged against the paper's numbers
    # The change a regression check tolerates, per metric, in the rows without a sized design
    # (``baseline_regression``); docs/regression.md prints what each row can then detect.
    regression_margins: tuple[tuple[str, float], ...] = (("dice", 0.02), ("accuracy", 0.02))
    # The between-seed SD a well-behaved configuration's metric has at most: the unit below which
    # the unstable-seed rule does not shrink its robust SD (pneumobench.judging.stability).
    seed_sds: tuple[tuple[str, float], ...] = (("dice", 0.01), ("accuracy", 0.01))
    # The baseline configuration's regression check, sized by its power (None: ``seeds`` and
    # ``regression_margins``, as every other row).
    baseline_regression: RegressionDesign | None = None
    # The classification loss weight of every row, whatever its segmentation loss registers
    # (None: the loss's own, 0.1 for BCE and 0.01 for Lovász, as the paper).
    cls_weight: float | None = None
    # Segmentation losses this profile trains with in place of the ones the modifications name
    # (pairs ``(named, trained)``, in the experiment and in every stage that overrides its loss).
    seg_loss_substitutes: tuple[tuple[str, str], ...] = ()
    # The baseline's runs keep their final weights (the sensitivity suite scores its
    # validation-only bugs on them instead of training those bugs' runs).
    keep_baseline_models: bool = False

    @property
    def regression_seeds(self) -> tuple[int, ...] | None:
        """The seeds of the baseline's power-sized regression check (None: not sized)."""
        return self.baseline_regression.seeds if self.baseline_regression is not None else None

    def config(self, *modifications: str) -> ExperimentConfig:
        """The row with ``modifications`` as this profile runs it (its loss substitutes, class-loss
        weight and baseline's epoch selection applied)."""
        config = self._substitute_seg_losses(self.base.with_modifications(*modifications))
        if self.cls_weight is not None:
            config = config.replace(cls_weight=self.cls_weight)
        if not config.modifications and self.baseline_selection is not None:
            config = config.replace(epoch_selection=self.baseline_selection)
        return config

    def _substitute_seg_losses(self, config: ExperimentConfig) -> ExperimentConfig:
        substitutes = dict(self.seg_loss_substitutes)
        stages = tuple(
            dataclasses.replace(stage, seg_loss=substitutes.get(stage.seg_loss, stage.seg_loss))
            if stage.seg_loss
            else stage
            for stage in config.stages
        )
        return config.replace(seg_loss=substitutes.get(config.seg_loss, config.seg_loss), stages=stages)

    def with_encoder_weights(self, weights: str | None) -> Profile:
        """This profile with every run starting from ``weights`` (None: random, "imagenet", or a file)."""
        return dataclasses.replace(self, base=self.base.replace_model(encoder_weights=weights))

    def regression_margin(self, metric: str, mods: tuple[str, ...] = ()) -> float:
        """The margin of the regression check of ``metric`` of the configuration with ``mods``."""
        design = self.baseline_regression
        margins = dict(design.margins if design is not None and not mods else self.regression_margins)
        if metric not in margins:
            raise KeyError(f"profile {self.name!r} has no regression margin for {metric!r} (has {', '.join(margins)})")
        return margins[metric]

    def seed_sd(self, metric: str) -> float:
        """The most a well-behaved configuration's ``metric`` varies between seeds (its SD)."""
        sds = dict(self.seed_sds)
        if metric not in sds:
            raise KeyError(f"profile {self.name!r} has no seed SD for {metric!r} (has {', '.join(sds)})")
        return sds[metric]

    def dataset_problem(self, preparation: dict[str, str]) -> str | None:
        """Why a dataset prepared with ``preparation`` (its mask and resize rules) does not suit
        this profile, with the command that makes one that does; None when it suits."""
        wanted = {"mask_rows": self.mask_rows, "resize": self.resize}
        if preparation == wanted:
            return None
        return (
            f"it was prepared with --mask-rows {preparation['mask_rows']} --resize {preparation['resize']}, and "
            f"profile {self.name!r} needs --mask-rows {self.mask_rows} --resize {self.resize} "
            f"(pneumobench data prepare SIIM_DIR DIR --mask-rows {self.mask_rows} --resize {self.resize})"
        )


PROFILES: Registry[Profile] = Registry("profile")


def register_profile(profile: Profile) -> Profile:
    """Register a profile under its name (a new profile is one call)."""
    return PROFILES.register(profile.name)(profile)


def get_profile(name: str) -> Profile:
    return PROFILES.get(name)


# The smoke encoder's stage widths: ResNet-10-T's (64, 128, 256, 512) halved, so that the
# deepest stages, on 1x1 and 2x2 maps at 32x32, cost what they are worth on a CPU (docs/benchmarks.md).
SMOKE_ENCODER_WIDTHS = (32, 64, 128, 256)
_PAPER = ExperimentConfig.paper_baseline()
register_profile(
    Profile(
        name="paper",
        base=_PAPER,
        seeds=(0, 1, 2, 3, 4),
        synthetic=None,
        description="the paper's protocol as its text states it, on the real SIIM-ACR data (256x256, ImageNet "
        "encoder, 43 epochs, the last epoch reported)",
        checkpoint_every=5,
        paper_numbers=True,
    )
)
register_profile(
    dataclasses.replace(
        PROFILES.get("paper"),
        name="nightly",
        description="GPU CI: the paper's protocol on a prepared SIIM-ACR dataset, 5 seeds per configuration",
        paper_numbers=False,
    )
)


def authors_protocol(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` run as the authors' code ran it (TheoViel/pneumothorax_segmentation, the notebook
    that printed Table 6): stage 2 trains with BCE whatever stage 1 used, per-epoch cosine stepped
    before each epoch, the last partial batch kept, fp32, per-batch averages, the epoch with the best
    validation Dice reported, Dropout(0.5) after ASPP, and scSE with a C->C spatial gate."""
    first, *rest = config.stages
    return config.replace(
        stages=(first, *(dataclasses.replace(stage, seg_loss="bce") for stage in rest)),
        lr_schedule="cosine-epoch",
        drop_last=False,
        cuda_precision="fp32",
        val_averaging="batch",
        epoch_selection="best-val",
        validate_every=1,
    ).replace_model(aspp_dropout=0.5, scse_block="scse_cc")


register_profile(
    dataclasses.replace(
        PROFILES.get("paper"),
        name="authors",
        base=authors_protocol(_PAPER),
        description="the authors' code as it ran for Table 6, on the real SIIM-ACR data: best validation epoch "
        "(the last for the baseline), Lovász in stage 1 only, ASPP dropout 0.5, C->C scSE, first-row masks, "
        "bilinear resize, per-epoch cosine, last batch kept, fp32, per-batch averages",
        baseline_selection="last",
        mask_rows="first",
        resize="bilinear",
    )
)
register_profile(
    Profile(
        name="smoke",
        base=ExperimentConfig(
            model=ModelConfig(
                encoder="tu-resnet10t",
                encoder_stem_width=16,
                encoder_widths=SMOKE_ENCODER_WIDTHS,
                mask_bias=-6.0,
                decoder_channels=32,
                center_channels=128,
                aspp_channels=128,
                # scSE's channel gate squeezes the 32-channel decoder to 8 channels, not smp's 2: at 2
                # the scSE rows' Dice varied by up to 0.06 between seeds (docs/regression.md).
                attention_reduction=4,
            ),
            image_size=32,
            batch_size=16,
            stages=(StageConfig(1, 2e-2, 2e-2, freeze_encoder=True), StageConfig(11, 2e-2, 1e-4)),
            validate_every=6,  # the last epoch is reported; each pass over 512 images costs a twentieth of a run
        ),
        seeds=(0, 1, 2),
        # 64 training and 256 validation images per class: over 128 images a run's Dice varied
        # between seeds by 0.0096, over 512 by 0.0079 (24 seeds; docs/regression.md).
        synthetic=SyntheticSpec(n_positive=320, n_negative=320, size=32, difficulty=0.4, train_per_class=64),
        # The baseline's seed SDs measured over seeds 0-23. 16 seeds are the fewest that find a
        # Dice drop of 0.01 with 80% power (docs/regression.md); they leave the Dice check no margin.
        baseline_regression=RegressionDesign(
            seeds=tuple(range(16)),
            margins=(("dice", 0.0), ("accuracy", 0.01)),
            sds=(("dice", 0.0079), ("accuracy", 0.0080)),
            sd_seeds=24,
        ),
        # The class loss at 0.5 in every row (the losses' own weights are 0.1 and 0.01): at those the
        # scSE rows' accuracy lagged the baseline's by 0.03-0.2 and varied by up to 0.05 between seeds.
        cls_weight=0.5,
        # Lovász over each batch, not each image: on 32x32 masks it converges further and the
        # Lovász+scSE rows vary less between seeds (docs/regression.md, .ci/lovasz_spread.py).
        seg_loss_substitutes=(("lovasz", "lovasz_batch"),),
        checkpoint_every=4,  # a killed run redoes at most 3 of its 12 epochs
        keep_baseline_models=True,  # 7.5 MB a run
        seed_sds=(("dice", 0.02), ("accuracy", 0.03)),  # the smoke stability table's bounds (.ci/smoke_table.py)
        description=(
            "CPU smoke run on synthetic SIIM-format data: the paper's architecture family with a ResNet-10-T encoder "
            "(timm) at half width (stages 32-256 channels), a 128-channel center (ASPP 128) and a 32-channel decoder "
            "at 32x32, 1+11 epochs of 128 images at 2e-2, scored on 512; exercises the pipeline, not evidence about "
            "the paper"
        ),
    )
)
_SMOKE = PROFILES.get("smoke")
assert _SMOKE.synthetic is not None
register_profile(
    dataclasses.replace(
        _SMOKE,
        name="smoke-authors",
        base=authors_protocol(_SMOKE.base),
        synthetic=dataclasses.replace(_SMOKE.synthetic, mask_rows="first", resize="bilinear"),
        description="the smoke run under the authors' protocol (profile authors) on synthetic data prepared with "
        "their rules; exercises the pipeline, not evidence about the paper",
        baseline_selection="last",
        mask_rows="first",
        resize="bilinear",
    )
)
