"""The protocol settings where the paper's text and the authors' code differ, each checked
against an independent reference: torch's scheduler, the authors' parameter counts, a
hand-computed average, planted signals for epoch selection."""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pneumobench.core.results import RunResult, decode_epoch_scores, encode_epoch_scores
from pneumobench.experiment.config import ConfigError, ExperimentConfig, StageConfig
from pneumobench.experiment.profiles import get_profile
from pneumobench.models import build_model, count_parameters
from pneumobench.training import engine as training
from pneumobench.training.engine import learning_rate, stage_loss_config, steps_per_epoch, train
from pneumobench.training.losses import SEG_LOSSES
from pneumobench.training.metrics import batch_mean
from pneumobench.training.preconditions import heldout_split
from pneumobench.training.selection import select_epoch
from tests.test_training import TINY

ROOT = Path(__file__).resolve().parents[1]
AUTHORS = get_profile("authors")


def test_the_authors_schedule_is_cosine_annealing_stepped_before_each_epoch():
    config = AUTHORS.base
    steps = 84  # 2,669 images in batches of 32, the last (13 images) kept
    offset = 0
    for stage in config.stages:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=stage.lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=stage.epochs, eta_min=stage.min_lr)
        for epoch in range(stage.epochs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns about step() before optimizer.step(), as the authors did
                scheduler.step()
            expected = optimizer.param_groups[0]["lr"]
            for step in (0, steps // 2, steps - 1):
                assert learning_rate(config, (offset + epoch) * steps + step, steps) == pytest.approx(
                    expected, rel=1e-12
                )
        offset += stage.epochs
    first_stage = [learning_rate(config, epoch * steps, steps) for epoch in range(3)]
    assert first_stage == pytest.approx([4e-4, 2e-4, 1e-4])  # the printed lr of the authors' logs; 5e-4 never runs


def test_the_authors_scse_has_their_parameter_count_and_aspp_dropout_keeps_the_saving():
    paper = ExperimentConfig.paper_baseline().replace_model(encoder_weights=None)
    authors = AUTHORS.base.replace_model(encoder_weights=None)

    def count(config, *mods):
        return count_parameters(build_model(config.with_modifications(*mods)))

    assert count(paper, "scse") == 27_015_974
    assert count(authors, "scse") == 27_691_806
    assert count(paper) - count(paper, "aspp") == 752_640
    assert count(authors) - count(authors, "aspp") == 752_640
    model = build_model(authors.with_modifications("aspp"))
    dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.5]


def test_the_authors_scse_gates_each_channel_with_its_own_spatial_map():
    block = build_model(AUTHORS.base.replace_model(encoder_weights=None).with_modifications("scse")).decoder
    gate = next(m for m in block.modules() if type(m).__name__ == "ChannelWiseSCSE")
    x = torch.randn(2, gate.spatial_gate[0].in_channels, 5, 5)
    expected = x * gate.channel_gate(x) + x * torch.sigmoid(gate.spatial_gate[0](x))
    assert torch.allclose(gate(x), expected)
    assert gate.spatial_gate[0].out_channels == gate.spatial_gate[0].in_channels


def test_stage_two_of_the_authors_lovasz_rows_trains_with_bce_and_its_weight():
    config = AUTHORS.config("lovasz")
    assert config.seg_loss == "lovasz"
    first, second = stage_loss_config(config, 0), stage_loss_config(config, config.stages[0].epochs)
    assert (first.seg_loss, first.cls_weight) == ("lovasz", None)
    assert (second.seg_loss, second.cls_weight) == ("bce", None)
    assert SEG_LOSSES.get(first.seg_loss).cls_weight == 0.01 and SEG_LOSSES.get(second.seg_loss).cls_weight == 0.1
    paper = get_profile("paper").config("lovasz")
    assert stage_loss_config(paper, paper.epochs - 1) is paper  # the paper's text: Lovász in both stages


def test_the_smoke_profile_trains_lovasz_over_each_batch_and_leaves_every_other_loss():
    smoke, paper = get_profile("smoke"), get_profile("paper")
    assert smoke.config("lovasz", "scse").seg_loss == "lovasz_batch"
    assert paper.config("lovasz", "scse").seg_loss == "lovasz"
    unsubstituted = dataclasses.replace(smoke, seg_loss_substitutes=())
    assert smoke.config("aspp", "scse") == unsubstituted.config("aspp", "scse")
    staged = dataclasses.replace(
        smoke, base=smoke.base.replace(stages=(StageConfig(1, 1e-3, 1e-3, seg_loss="lovasz"), StageConfig(2, 1e-3, 1e-4)))
    )
    assert [stage.seg_loss for stage in staged.config().stages] == ["lovasz_batch", None]


def test_kept_last_batch_trains_every_image_once_per_epoch(tiny_dataset):
    config = TINY.replace(batch_size=20, drop_last=False)  # 48 training images: 20 + 20 + 8
    assert steps_per_epoch(48, config) == 3 and steps_per_epoch(48, config.replace(drop_last=True)) == 2
    seen = []

    def spy(forward, optimizer, images, masks, labels, loss_config, *, autocast):
        seen.append(len(images))
        return torch.zeros(())

    data = training.DeviceData(tiny_dataset, tiny_dataset.train_indices, torch.device("cpu"), channels_last=False)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    training.train_epoch(torch.nn.Identity(), optimizer, data, config, epoch=0, data_seed=3, autocast=False,
                         step_fn=spy)
    assert seen == [20, 20, 8]


def test_batch_averaging_weighs_a_short_last_batch_as_a_full_one():
    values = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert batch_mean(values).item() == 0.75
    assert batch_mean(values, 3).item() == pytest.approx(0.5)  # (1 + 0) / 2
    assert batch_mean(values, 4).item() == 0.75


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr_schedule": "linear"}, "lr_schedule: 'linear' is not one of cosine-step, cosine-epoch"),
        ({"epoch_selection": "best"}, "epoch_selection: 'best' is not one of last, best-val, best-heldout"),
        ({"epoch_selection": "best-heldout"}, "needs a heldout_fraction above 0"),
        ({"heldout_fraction": 0.2}, "needs a heldout_fraction above 0, and a heldout_fraction needs"),
        ({"heldout_fraction": 1.0, "epoch_selection": "best-heldout"}, r"not in \[0, 1\)"),
        ({"val_averaging": "seed"}, "val_averaging"),
        ({"cuda_precision": "fp16"}, "cuda_precision"),
    ],
)
def test_protocol_settings_are_checked_and_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig().replace(**changes)


def test_new_settings_keep_every_existing_key_and_change_it_when_set():
    recorded = json.loads((ROOT / "baselines" / "smoke-cpu.json").read_text())
    smoke = get_profile("smoke")
    for name, entry in recorded["configs"].items():
        mods = () if name == "baseline" else tuple(name.split("+"))
        assert smoke.config(*mods).key() == entry["config_key"], name
    base = ExperimentConfig.paper_baseline()
    changed = [
        base.replace(lr_schedule="cosine-epoch"),
        base.replace(drop_last=False),
        base.replace(cuda_precision="fp32"),
        base.replace(val_averaging="batch"),
        base.replace(epoch_selection="best-val"),
        base.replace(validate_every=2),
        base.replace_model(scse_block="scse_cc"),
        base.replace(stages=(base.stages[0], StageConfig(40, 5e-4, 5e-5, seg_loss="bce"))),
    ]
    assert len({c.key() for c in changed} | {base.key()}) == len(changed) + 1
    for config in changed:
        assert ExperimentConfig.from_json(config.to_json()) == config


def test_epoch_scores_round_trip_exactly_and_old_results_still_load():
    rng = np.random.default_rng(0)
    dice = rng.random((4, 13), dtype=np.float32)
    correct = rng.random((4, 13)) < 0.5
    decoded = decode_epoch_scores(json.loads(json.dumps(encode_epoch_scores([2, 4, 6, 8], dice, correct))))
    assert decoded.epochs == (2, 4, 6, 8) and decoded.row(6) == 2
    assert np.array_equal(decoded.dice, dice) and np.array_equal(decoded.correct, correct)
    with pytest.raises(KeyError, match="epoch 3 was not validated"):
        decoded.row(3)
    with pytest.raises(ValueError, match="disagree"):
        encode_epoch_scores([1], dice, correct)
    old = {f: v for f, v in json.loads(_a_result().to_json()).items() if f not in ("selected_epoch", "epoch_scores")}
    loaded = RunResult.from_dict(old)
    assert loaded.per_epoch() is None and loaded.reported_epoch == loaded.epochs


def test_a_paper_size_runs_epoch_scores_take_under_three_bytes_per_image_and_epoch():
    """43 epochs x 2,669 images: negatives scoring exactly 0 or 1, positives continuous (docs/protocol.md's 0.29 MB)."""
    rng = np.random.default_rng(0)
    epochs, images = 43, 2669
    negative = rng.random(images) < 0.5
    dice = np.where(
        negative, (rng.random((epochs, images)) < 0.85).astype(np.float32), rng.beta(2, 1.5, (epochs, images))
    ).astype(np.float32)
    dice[~negative & (rng.random((epochs, images)) < 0.2)] = 0
    encoded = json.dumps(encode_epoch_scores(list(range(1, epochs + 1)), dice, rng.random((epochs, images)) < 0.83))
    assert len(encoded) / (epochs * images) < 3.0
    assert len(encoded) < 0.3e6


def _a_result() -> RunResult:
    return RunResult({}, "k", "baseline", 0, "f", ["a"], [1.0], [0.5], [True], 1.0, 1.0, [], 3, 1.0, 1.0)


def test_the_heldout_slice_is_a_stratified_part_of_the_training_half(tiny_dataset):
    kept, held = heldout_split(tiny_dataset, 0.25, data_seed=11)
    train_half = set(tiny_dataset.train_indices.tolist())
    assert set(kept) | set(held) == train_half and not set(kept) & set(held)
    assert not set(held) & set(tiny_dataset.val_indices.tolist())
    labels = np.asarray(tiny_dataset.labels)
    for label in (0, 1):
        members = sum(1 for i in train_half if labels[i] == label)
        assert sum(1 for i in held if labels[i] == label) == round(0.25 * members)
    again, _ = heldout_split(tiny_dataset, 0.25, data_seed=11)
    other, _ = heldout_split(tiny_dataset, 0.25, data_seed=12)
    assert np.array_equal(kept, again) and not np.array_equal(kept, other)


SELECTING = TINY.replace(stages=(StageConfig(1, 3e-3, 1e-3, True), StageConfig(4, 3e-3, 1e-4)))


@pytest.fixture(scope="module")
def best_val_run(tiny_dataset):
    return train(SELECTING.replace(epoch_selection="best-val"), tiny_dataset, seed=5, progress=False)


def test_per_epoch_scores_reproduce_each_epochs_mean_and_the_report(best_val_run):
    run = best_val_run
    scores = run.per_epoch()
    assert scores.epochs == tuple(range(1, SELECTING.epochs + 1))
    for entry in run.curves:
        row = scores.row(entry["epoch"])
        assert torch.from_numpy(scores.dice[row]).mean().item() == entry["val_dice"]
        assert torch.from_numpy(scores.correct[row]).float().mean().item() == entry["val_accuracy"]
    reported = scores.row(run.selected_epoch)
    assert np.array_equal(np.float32(run.dice_per_image), scores.dice[reported])
    assert run.correct == scores.correct[reported].tolist()
    assert run.dice == run.curves[run.selected_epoch - 1]["val_dice"]


def test_best_epoch_is_never_below_the_last_and_matches_a_last_epoch_run(best_val_run, tiny_dataset):
    run = best_val_run
    assert run.selected_epoch == select_epoch(run.curves, "best-val")
    assert run.dice >= run.curves[-1]["val_dice"]
    last = train(SELECTING, tiny_dataset, seed=5, progress=False)
    assert last.selected_epoch == SELECTING.epochs
    assert last.epoch_scores == run.epoch_scores  # the rule changes what is reported, not the training


def test_heldout_selection_never_reads_the_validation_half(tiny_dataset, monkeypatch):
    """Plant a signal in the validation half only (perfect scores at one epoch): best-val reports
    that epoch, best-heldout is not moved by it."""
    config = SELECTING.replace(
        epoch_selection="best-heldout",
        heldout_fraction=0.25,
        stages=(StageConfig(1, 3e-3, 1e-3, True), StageConfig(3, 3e-3, 1e-4)),
    )
    honest = train(config, tiny_dataset, seed=5, progress=False)
    target = 2 if honest.selected_epoch != 2 else 3
    n_val = len(tiny_dataset.val_indices)
    calls = {"val": 0}
    real_validate = training.validate

    def planted(model, data, batch_size, autocast, keep=None):
        scores, kept = real_validate(model, data, batch_size, autocast, keep)
        if len(data) == n_val:
            calls["val"] += 1
            if calls["val"] == target:
                scores._dice = [torch.ones_like(d) for d in scores._dice]
        return scores, kept

    monkeypatch.setattr(training, "validate", planted)
    planted_run = train(config, tiny_dataset, seed=5, progress=False)
    assert planted_run.curves[target - 1]["val_dice"] == 1.0  # the signal is there
    assert planted_run.selected_epoch == honest.selected_epoch
    calls["val"] = 0
    cheating = train(
        config.replace(epoch_selection="best-val", heldout_fraction=0.0), tiny_dataset, seed=5, progress=False
    )
    assert cheating.selected_epoch == target and cheating.dice == 1.0


def test_a_run_under_every_authors_setting_at_once(tiny_dataset):
    """The authors' protocol end to end on the tiny data: Lovász then BCE, ASPP with dropout, C->C scSE,
    per-epoch cosine, a kept last batch (48 = 20 + 20 + 8), per-batch averages, best-val reporting."""
    authors = get_profile("smoke-authors").config("lovasz", "aspp", "scse")
    config = authors.replace(
        model=dataclasses.replace(authors.model, encoder=TINY.model.encoder, encoder_stem_width=None, encoder_widths=None),
        batch_size=20,
        stages=(StageConfig(1, 3e-3, 1e-3, True), StageConfig(3, 3e-3, 1e-4, seg_loss="bce")),
    )
    assert (config.model.center, config.model.attention, config.model.aspp_dropout) == ("aspp", "scse_cc", 0.5)
    run = train(config, tiny_dataset, seed=2, progress=False)
    scores = run.per_epoch()
    assert run.selected_epoch == select_epoch(run.curves, "best-val")
    for entry in run.curves:
        dice = torch.from_numpy(scores.dice[scores.row(entry["epoch"])])
        assert entry["val_dice"] == batch_mean(dice, 20).item()  # per-batch averaging of the same scores
    assert [round(e["lr_end"], 12) for e in run.curves] == [
        round(learning_rate(config, epoch * 3, 3), 12) for epoch in range(4)
    ]
    assert run.curves[0]["train_loss"] > 3 * run.curves[1]["train_loss"]  # Lovász's scale, then BCE's
