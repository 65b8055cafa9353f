"""Sensitivity: the regression check of ``suites/test_regression.py`` must catch real bugs.

Each bug below is planted without editing a core file: a registered modification (a block, a
loss or a schedule, as a user registers them) or a patch this module applies (in the test's
process and in every training worker). The baseline configuration is trained with the bug over
the seeds of its regression check (the profile's ``baseline_regression``, 16 on smoke; in a store
of its own, see ``pneumobench.tools.sensitivity``), or, for a bug only in how a trained model is
scored, the baseline's kept final models are scored again under it (a test below shows that this
gives exactly what training with the bug gives). Either way the runs are judged by the same
check, at the same alpha and margin, against the recorded baseline of the unmodified
configuration: every bug must be REGRESSED (or CHANGED, for a bug that raises a score). The A/A
control, the unchanged baseline under as many seeds never recorded, must be NO REGRESSION. So
must the baseline trained under another CPU instruction set (the cross-machine noise test).

``pytest suites -m sensitivity`` prints the table docs/regression.md shows (each test records its row;
the plugin prints them after the verdicts).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import f as f_distribution

from pneumobench.judging.claims import Claim
from pneumobench.judging.families import REGRESSION_ALPHA, Family, register_family
from pneumobench.judging.stats import Verdict
from pneumobench.models.unet import PaperUNet
from pneumobench.papers.viel_orhan_2020.modifications import modification
from pneumobench.pytest_plugin import SENSITIVITY_PROPERTY
from pneumobench.tools.sensitivity import PlantedBug, bug_runs, scored_again
from pneumobench.training import engine as training
from pneumobench.training import metrics
from pneumobench.training.losses import register_seg_loss

pytestmark = pytest.mark.sensitivity

CAUGHT = (Verdict.REGRESSED, Verdict.CHANGED)
A_A_FIRST_SEED = 100  # the A/A control's seeds: as many as the check's, from here (none of them recorded)


def regression_seeds(pb) -> tuple[int, ...]:
    """The seeds of the baseline's regression check in this session (the bugs are judged by it)."""
    return pb.regression_seeds or pb.seeds


def a_a_seeds(pb) -> tuple[int, ...]:
    return tuple(range(A_A_FIRST_SEED, A_A_FIRST_SEED + len(regression_seeds(pb))))


# --- bugs planted by patches ------------------------------------------------------------------


def unnormalised_validation():
    """Validation images scaled to [0, 1] instead of ImageNet-normalised like the training images."""
    original = training.validate

    def evaluate(model, data, *args, **kwargs):
        scaled = copy.copy(data)
        scaled.mean, scaled.std = torch.zeros_like(data.mean), torch.full_like(data.std, 255.0)
        return original(model, scaled, *args, **kwargs)

    return mock.patch.object(training, "validate", evaluate)


def validation_images_flipped():
    """Validation images mirrored left to right while their masks are not (augmentation left on)."""
    original = training.validate

    def evaluate(model, data, *args, **kwargs):
        mirrored = copy.copy(data)
        mirrored.images = data.images.flip(-1)
        return original(model, mirrored, *args, **kwargs)

    return mock.patch.object(training, "validate", evaluate)


def mask_shifted_at_inference():
    """An off-by-one at inference: the predicted mask comes out one pixel to the right."""
    original = PaperUNet.forward

    def forward(self, x):
        mask_logits, cls_logits = original(self, x)
        return (mask_logits if self.training else torch.roll(mask_logits, 1, dims=-1)), cls_logits

    return mock.patch.object(PaperUNet, "forward", forward)


def validation_masks_shifted():
    """Ground-truth validation masks one pixel off (an off-by-one crop of the targets)."""
    original = training.validate

    def evaluate(model, data, *args, **kwargs):
        shifted = copy.copy(data)
        shifted.masks = torch.roll(data.masks, 1, dims=-1)
        return original(model, shifted, *args, **kwargs)

    return mock.patch.object(training, "validate", evaluate)


def class_labels_inverted():
    """The classification loss sees every label inverted (a polarity slip when labels are read)."""
    original = training.joint_loss

    def joint_loss(mask_logits, cls_logits, masks, labels, **kwargs):
        return original(mask_logits, cls_logits, masks, 1 - labels, **kwargs)

    return mock.patch.object(training, "joint_loss", joint_loss)


def empty_masks_score_zero():
    """The metric scores an empty prediction of an empty mask 0 instead of 1."""
    original = metrics.dice_per_image

    def dice_per_image(pred, target, threshold=0.5, *, validate=True):
        dice = original(pred, target, threshold, validate=validate)
        empty = torch.as_tensor(target).reshape(len(dice), -1).sum(dim=1) == 0
        return torch.where(empty.to(dice.device), torch.zeros_like(dice), dice)

    return mock.patch.object(metrics, "dice_per_image", dice_per_image)


def half_the_training_masks_emptied():
    """Every other training image's mask read as empty (a join that drops half the RLE rows);
    its label is kept."""
    original = training.DeviceData.batch

    def batch(self, index, flip=None):
        images, masks, labels = original(self, index, flip)
        if flip is not None:  # training batches only: validation keeps its ground truth
            masks = torch.where((index % 2 == 0).view(-1, 1, 1, 1).to(masks.device), torch.zeros_like(masks), masks)
        return images, masks, labels

    return mock.patch.object(training.DeviceData, "batch", batch)


def masks_not_flipped_with_their_images():
    """The flip augmentation mirrors a training image but not its mask (the mask is read before
    the flip, or flipped along the other axis and back)."""
    original = training.DeviceData.batch

    def batch(self, index, flip=None):
        images, masks, labels = original(self, index, flip)
        if flip is not None:  # undo the masks' flip: each flipped image now has the unflipped mask
            masks = torch.where(flip.view(-1, 1, 1, 1), masks.flip(-1), masks)
        return images, masks, labels

    return mock.patch.object(training.DeviceData, "batch", batch)


def encoder_never_unfrozen():
    """Stage 2 keeps the encoder frozen (its BatchNorm still trains): the unfreeze step is lost."""
    return mock.patch.object(training, "unfreeze_encoder", training.freeze_encoder)


# --- bugs planted by registered modifications ---------------------------------------------------


@modification("bug-lr-100x-small")
def lr_100x_small(config):
    """Every learning rate a hundred times too small (a unit slip in the schedule)."""
    return config.replace(stages=tuple(dataclasses.replace(stage, lr=stage.lr / 100, min_lr=stage.min_lr / 100)
                                       for stage in config.stages))


@register_seg_loss("bug-bce-transposed-target", cls_weight=0.1)
def bce_transposed_target(mask_logits, masks):
    """BCE against the mask transposed (height and width swapped)."""
    return F.binary_cross_entropy_with_logits(mask_logits, masks.transpose(-1, -2).to(mask_logits.dtype))


@modification("bug-loss-transposed-target")
def loss_transposed_target(config):
    return config.replace(seg_loss="bug-bce-transposed-target")



BUGS = [
    PlantedBug("unnormalised-validation", "data path", "validation images not normalised like training images",
               patch=unnormalised_validation, scored_only=True),
    PlantedBug("validation-images-flipped", "data path", "validation images mirrored, their masks not",
               patch=validation_images_flipped, scored_only=True),
    PlantedBug("validation-masks-shifted", "data path", "validation ground truth one pixel off",
               patch=validation_masks_shifted, scored_only=True),
    PlantedBug("mask-shifted-at-inference", "model", "predicted mask one pixel off at inference",
               patch=mask_shifted_at_inference, scored_only=True),
    PlantedBug("lr-100x-small", "schedule", "learning rates 100x too small", modifications=("bug-lr-100x-small",)),
    PlantedBug("loss-transposed-target", "loss", "loss against the transposed mask",
               modifications=("bug-loss-transposed-target",)),
    PlantedBug("class-labels-inverted", "class branch", "class labels inverted in the loss", patch=class_labels_inverted),
    PlantedBug("empty-masks-score-zero", "metric", "empty mask predicted empty scores Dice 0",
               patch=empty_masks_score_zero, scored_only=True),
    PlantedBug("half-the-training-masks-emptied", "data path", "half of the training masks empty",
               patch=half_the_training_masks_emptied),
    PlantedBug("masks-not-flipped-with-images", "data path", "flip augmentation mirrors the image, not its mask",
               patch=masks_not_flipped_with_their_images),
    PlantedBug("encoder-never-unfrozen", "schedule", "encoder frozen in stage 2 too", patch=encoder_never_unfrozen),
]
# The metric each bug is expected to move (the other is reported too).
EXPECTED_METRIC = {bug.name: "accuracy" if bug.kind == "class branch" else "dice" for bug in BUGS}


def bug_claim(bug: PlantedBug, metric: str) -> Claim:
    """The regression check of the baseline's ``metric``, run on the bug's runs."""
    return Claim(f"sensitivity-{bug.name}-{metric}", "regression", "planted bug", f"{bug.description} ({metric})",
                 bug.modifications, metric=metric, family="sensitivity", reference=())


register_family(Family("sensitivity", REGRESSION_ALPHA,
                       tuple(bug_claim(bug, metric).id for bug in BUGS for metric in ("dice", "accuracy")), "per-test"))


@pytest.fixture
def table(record_property):
    """``table(row)``: record one row of the sensitivity table the plugin prints at the end."""
    return lambda row: record_property(SENSITIVITY_PROPERTY, json.dumps(row))


def judge(pb, claim: Claim, runs) -> object:
    """The regression check, exactly as ``suites/test_regression.py`` runs it, on ``runs``."""
    return pb.judging.with_runs(lambda mods: runs).judge(claim)


def row(name: str, kind: str, results: dict, caught: bool | str, made: str) -> dict:
    """One table row: the measured change of each metric, its check's verdict and detectable
    change, and how its runs were made (``made``)."""
    cells = {"bug": name, "kind": kind, "runs": made}
    for metric, stats in results.items():
        cells[f"{metric} change"] = f"{stats.estimate - stats.paper:+.3f}" if stats.paper is not None else ""
        cells[f"{metric} verdict"] = stats.verdict.value
    cells["detects (dice, accuracy)"] = ", ".join(
        f"{stats.extra['detectable_change']:.3f}" if "detectable_change" in stats.extra else "-" for stats in results.values())
    cells["caught"] = caught if isinstance(caught, str) else ("yes" if caught else "NO")
    return cells


def planted_runs(pb, bug: PlantedBug) -> tuple[list, str]:
    """The bug's runs over the check's seeds, and how they were made: a scored-only bug's from the
    baseline's final models scored under it (``scored_again``), every other run trained with it."""
    seeds = regression_seeds(pb)
    scored = {}
    if bug.scored_only:
        baseline = pb.runs_of(pb.profile.config(), seeds)
        scored = scored_again(bug, [(r, pb.final_model(pb.profile.config(), r.seed)) for r in baseline],
                              pb.dataset, pb.device)
    trained = bug_runs(bug, pb.profile.config(), tuple(s for s in seeds if s not in scored), pb.dataset, pb.device,
                       store_path=pb.store_path, workers=pb.default_workers,
                       checkpoint_every=pb.profile.checkpoint_every)
    by_seed = {**scored, **{r.seed: r for r in trained}}
    return [by_seed[seed] for seed in seeds], f"{len(trained)} trained, {len(scored)} scored again"


@pytest.mark.parametrize("bug", BUGS, ids=lambda bug: bug.name)
def test_planted_bug_is_caught(bug, pb, table):
    runs, made = planted_runs(pb, bug)
    results = {metric: judge(pb, bug_claim(bug, metric), runs) for metric in ("dice", "accuracy")}
    expected = results[EXPECTED_METRIC[bug.name]]
    table(row(bug.name, bug.kind, results, expected.verdict in CAUGHT, made))
    assert expected.verdict in CAUGHT, f"{bug.description}: not caught: {expected.verdict.value}; {expected.note}"


SCORED_ONLY = [bug for bug in BUGS if bug.scored_only]


@pytest.fixture(scope="module")
def short_baseline(pb, tmp_path_factory):
    """A two-epoch baseline run validated after each epoch (so a scored-only bug also meets a
    validation pass before training ends), with its final weights kept."""
    config = pb.profile.config()
    config = config.replace(stages=tuple(dataclasses.replace(stage, epochs=1) for stage in config.stages[:2]),
                            validate_every=1)
    final_model = tmp_path_factory.mktemp("rescoring") / "final.pt"
    result = training.train(config, pb.dataset, 0, "cpu", progress=False, final_model=final_model)
    return config, result, final_model


@pytest.mark.parametrize("bug", SCORED_ONLY, ids=lambda bug: bug.name)
def test_scoring_again_gives_what_training_with_the_bug_gives(bug, pb, short_baseline):
    """Why a scored-only bug's runs may come from the baseline's final models: the run trained with
    the bug and the bug-free run's final model scored under it report the same scores, exactly
    (and differ from the bug-free run's, so the bug was in force)."""
    config, clean, final_model = short_baseline
    with bug.planted():
        trained = training.train(config, pb.dataset, 0, "cpu", progress=False)
    again = scored_again(bug, [(clean, final_model)], pb.dataset, "cpu")[0]
    fields = ("dice", "accuracy", "dice_per_image", "cls_prob", "correct", "mask_fraction", "examples")
    assert {f: getattr(again, f) for f in fields} == {f: getattr(trained, f) for f in fields}
    assert again.curves[-1] == {**trained.curves[-1], "seconds": again.curves[-1]["seconds"]}
    assert again.dice_per_image != clean.dice_per_image


def test_a_a_control_passes(pb, table):
    """The unchanged baseline under seeds that were never recorded: NO REGRESSION on both metrics.
    Its runs live beside the bug runs, so the results store (and its report) keeps the profile's seeds."""
    from pneumobench.papers.viel_orhan_2020.claims import regression_claims
    from pneumobench.runs.runner import prefetch, run
    from pneumobench.runs.store import ResultStore

    store = ResultStore(pb.store_path.parent / "sensitivity" / "a-a-control.sqlite")  # kept out of the report's store
    seeds = a_a_seeds(pb)
    prefetch([(pb.profile.config(), seed) for seed in seeds], pb.dataset, pb.device, store=store,
             workers=pb.default_workers, progress=False, checkpoint_every=pb.profile.checkpoint_every)
    runs = [run(pb.profile.config(), seed, pb.dataset, pb.device, store=store, progress=False) for seed in seeds]
    checks = {c.metric: c for c in regression_claims() if c.treatment == ()}
    results = {metric: judge(pb, checks[metric], runs) for metric in ("dice", "accuracy")}
    table(row(f"A/A control (seeds {seeds[0]}-{seeds[-1]})", "none", results, "n/a (must not be)",
              f"{len(runs)} trained"))
    assert {metric: r.verdict for metric, r in results.items()} == {
        "dice": Verdict.NO_REGRESSION, "accuracy": Verdict.NO_REGRESSION}, [r.note for r in results.values()]


# Another machine: AVX2 kernels, as on a CPU without AVX-512 (the plainest kernels, ATen's
# "default" and oneDNN's SSE4.1, ran 2.6x slower than native: 16.5 s a run alone, 8.1 s at AVX2, 6.4 native).
CROSS_ISA = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def decorrelated_bound(pb) -> dict[str, float]:
    """The most the per-seed differences between two machines may vary, per metric: as much as
    runs that changed code decorrelates (sqrt(2) x the sized design's seed SD, the case its
    margins are sized for), up to the upper 99% point of the variance ratio test, since both
    SDs are estimates (this many seeds against the seeds the design's SDs were measured over).
    Empty without a sized design (nothing to hold the noise to)."""
    design = pb.profile.baseline_regression
    if design is None:
        return {}
    upper = math.sqrt(f_distribution.ppf(0.99, len(regression_seeds(pb)) - 1, design.sd_seeds - 1))
    return {metric: math.sqrt(2) * sd * upper for metric, sd in design.sds}


def test_cross_machine_noise_stays_inside_the_margin(pb, table, monkeypatch):
    """The baseline trained with AVX2 kernels (ATen and oneDNN), as on a machine without AVX-512,
    against the same seeds trained natively: the runs differ, the per-seed differences are no
    noisier than the runs of changed code the margins were sized for (``decorrelated_bound``),
    and the check says NO REGRESSION."""
    from pneumobench.papers.viel_orhan_2020.claims import regression_claims
    from pneumobench.runs.executors import LocalExecutor
    from pneumobench.runs.runner import prefetch, run
    from pneumobench.runs.store import ResultStore

    seeds = regression_seeds(pb)
    native = pb.runs_of(pb.profile.config(), seeds)
    isa = "-".join(CROSS_ISA.values()).lower()
    store = ResultStore(pb.store_path.parent / "sensitivity" / f"cross-isa-{isa}.sqlite")  # the ISA is not in the key
    for name, value in CROSS_ISA.items():
        monkeypatch.setenv(name, value)  # read by the workers' torch at import; this process's torch is loaded already
    fresh_interpreters = LocalExecutor(pb.default_workers, start_method="spawn")  # the fork server's torch is loaded too
    prefetch([(pb.profile.config(), seed) for seed in seeds], pb.dataset, "cpu", store=store,
             executor=fresh_interpreters, progress=False, checkpoint_every=pb.profile.checkpoint_every)
    other = [run(pb.profile.config(), seed, pb.dataset, "cpu", store=store, progress=False) for seed in seeds]  # stored
    assert {r.environment["cpu_capability"] for r in other} == {CROSS_ISA["ATEN_CPU_CAPABILITY"].upper()}
    checks = {c.metric: c for c in regression_claims() if c.treatment == ()}
    results = {metric: judge(pb, checks[metric], other) for metric in ("dice", "accuracy")}
    differences = {metric: np.array([getattr(o, metric) - getattr(n, metric) for o, n in zip(other, native)])
                   for metric in ("dice", "accuracy")}
    largest = {metric: float(np.abs(d).max()) for metric, d in differences.items()}
    spread = {metric: float(d.std(ddof=1)) for metric, d in differences.items()}
    table(row("another instruction set (" + ", ".join(f"{k}={v}" for k, v in CROSS_ISA.items()) + ")", "none",
                     results, "n/a (must not be); largest per-seed change "
                     + ", ".join(f"{m} {v:.4f}" for m, v in largest.items())
                     + "; SD " + ", ".join(f"{m} {v:.4f}" for m, v in spread.items()), f"{len(other)} trained"))
    assert (differences["dice"] != 0).any(), "the other kernels left every run as it was: nothing was measured"
    bound = decorrelated_bound(pb)
    assert all(spread[metric] <= bound[metric] for metric in bound), (spread, bound)  # what the margins are sized for
    assert all(r.verdict == Verdict.NO_REGRESSION for r in results.values()), [r.note for r in results.values()]
