"""Training engine: the schedule, stage-1 freezing, seeding, kill-and-resume, NaN, learning."""

import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from pneumobench.data.rle import decode
from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
from pneumobench.experiment.profiles import get_profile
from pneumobench.models import build_model
from pneumobench.training.checkpoints import CheckpointWarning, content_checksum, load_verified, save_verified
from pneumobench.training.engine import (
    EXAMPLE_NEGATIVES,
    EXAMPLE_POSITIVES,
    NonFiniteLossError,
    RunResult,
    TrainingSetupError,
    derive_seeds,
    example_indices,
    learning_rate,
    train,
)
from pneumobench.training.losses import SEG_LOSSES, register_seg_loss
from pneumobench.training.metrics import dice_per_image

TINY = ExperimentConfig(
    model=ModelConfig(encoder="resnet18"),
    image_size=32,
    batch_size=16,
    stages=(StageConfig(1, 3e-3, 1e-3, freeze_encoder=True), StageConfig(2, 3e-3, 1e-4)),
)


def test_learning_rates_follow_two_cosine_stages():
    config = ExperimentConfig.paper_baseline()
    steps = 83  # 2,669 training images // 32
    lrs = [learning_rate(config, step, steps) for step in range(config.epochs * steps)]
    stage1, stage2 = lrs[: 3 * steps], lrs[3 * steps :]
    assert stage1[0] == pytest.approx(5e-4) and stage1[-1] == pytest.approx(1e-4)
    assert stage2[0] == pytest.approx(5e-4) and stage2[-1] == pytest.approx(5e-5)
    middle = len(stage2) // 2
    halfway = 5e-5 + (5e-4 - 5e-5) * (1 + math.cos(math.pi * middle / (len(stage2) - 1))) / 2
    assert stage2[middle] == pytest.approx(halfway)
    assert all(a >= b for a, b in zip(stage1, stage1[1:])) and all(a >= b for a, b in zip(stage2, stage2[1:]))
    with pytest.raises(ValueError, match="past the last stage"):
        learning_rate(config, config.epochs * steps, steps)


def test_run_uses_the_schedule_and_reports_everything(tiny_dataset):
    result = train(TINY, tiny_dataset, seed=0, progress=False)
    steps = len(tiny_dataset.train_indices) // TINY.batch_size
    for record in result.curves:
        assert record["lr_end"] == pytest.approx(learning_rate(TINY, record["epoch"] * steps - 1, steps))
    assert [r["stage"] for r in result.curves] == [1, 2, 2]
    assert len(result.dice_per_image) == len(result.val_ids) == len(tiny_dataset.val_indices)
    assert result.val_ids == [tiny_dataset.ids[i] for i in tiny_dataset.val_indices]
    assert result.dice == pytest.approx(sum(result.dice_per_image) / len(result.dice_per_image), abs=1e-6)
    assert result.accuracy == pytest.approx(sum(result.correct) / len(result.correct))
    assert result.environment["torch"] == torch.__version__ and "git_commit" in result.environment
    assert RunResult.from_json(result.to_json()) == result
    assert result.dataset_path == str(tiny_dataset.path) and result.synthetic_data is False
    # the predicted masks a run keeps for reports give exactly the Dice the run scored
    positions = example_indices(tiny_dataset)
    assert len(result.examples) == len(positions) == EXAMPLE_POSITIVES + EXAMPLE_NEGATIVES
    for position in positions:
        index = tiny_dataset.val_indices[position]
        predicted = decode(result.examples[tiny_dataset.ids[index]], (32, 32))
        dice = float(dice_per_image(predicted[None], np.asarray(tiny_dataset.masks[index])[None])[0])
        assert dice == pytest.approx(result.dice_per_image[position], abs=1e-6)


def test_example_images_are_small_middle_large_positives_and_first_negatives(tiny_dataset):
    positions = example_indices(tiny_dataset)
    val = tiny_dataset.val_indices
    labels = np.asarray(tiny_dataset.labels[val])
    areas = np.asarray(tiny_dataset.masks[val]).reshape(len(val), -1).sum(axis=1)
    positives = sorted(np.flatnonzero(labels == 1), key=lambda p: (areas[p], p))
    n = len(positives)
    assert list(positions[:3]) == sorted([positives[n // 6], positives[n // 2], positives[5 * n // 6]])
    assert list(positions[3:]) == list(np.flatnonzero(labels == 0)[:2])


def test_stage1_changes_only_encoder_batchnorm(tiny_dataset, tmp_path):
    config = TINY.replace(stages=(StageConfig(1, 3e-3, 1e-3, freeze_encoder=True), StageConfig(1, 3e-3, 1e-4)))
    checkpoint = tmp_path / "run.pt"
    train(config, tiny_dataset, seed=3, progress=False, checkpoint=checkpoint, keep_checkpoint=True)
    after_stage1 = torch.load(checkpoint, weights_only=True)["model"]
    torch.manual_seed(derive_seeds(3)[0])
    initial = build_model(config).state_dict()
    model = build_model(config)
    bn_names = {n for n, m in model.encoder.named_modules() if isinstance(m, nn.BatchNorm2d)}
    changed_bn = 0
    for name, before in initial.items():
        if not name.startswith("encoder."):
            continue
        module = name[len("encoder.") :].rsplit(".", 1)[0]
        if module in bn_names:
            changed_bn += not torch.equal(before, after_stage1[name])
        else:
            assert torch.equal(before, after_stage1[name]), name
    assert changed_bn > 0
    assert not torch.equal(initial["decoder.final_conv.weight"], after_stage1["decoder.final_conv.weight"])


def test_same_seed_is_bitwise_identical_and_another_seed_differs(tiny_dataset):
    config = TINY.replace(stages=(StageConfig(1, 3e-3, 1e-4),))
    a, b = (train(config, tiny_dataset, seed=5, progress=False) for _ in range(2))
    c = train(config, tiny_dataset, seed=6, progress=False)
    assert a.dice_per_image == b.dice_per_image and a.cls_prob == b.cls_prob
    assert a.cls_prob != c.cls_prob


def test_global_rng_is_untouched(tiny_dataset):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(TINY.replace(stages=(StageConfig(1, 3e-3, 1e-4),)), tiny_dataset, seed=1, progress=False)
    assert torch.equal(torch.rand(3), expected)


RESUME_SCRIPT = textwrap.dedent(
    """
    import sys
    from pneumobench.data.prepared import load
    from pneumobench.experiment.config import ExperimentConfig
    from pneumobench.training.engine import train
    config = ExperimentConfig.from_json(open(sys.argv[1]).read())
    result = train(config, load(sys.argv[2]), seed=7, checkpoint=sys.argv[3], progress=False)
    open(sys.argv[4], "w").write(result.to_json())
    """
)


@pytest.mark.parametrize(
    "protocol",
    [{}, {"epoch_selection": "best-heldout", "heldout_fraction": 0.25, "drop_last": False}],
    ids=["paper", "best-heldout"],
)
def test_killed_run_resumes_to_the_same_result(tiny_dataset, tmp_path, protocol):
    config = TINY.replace(stages=(StageConfig(1, 3e-3, 1e-3, True), StageConfig(2, 3e-3, 1e-4)), **protocol)
    (tmp_path / "config.json").write_text(config.to_json())
    (tmp_path / "resume.py").write_text(RESUME_SCRIPT)
    checkpoint, out = tmp_path / "run.pt", tmp_path / "result.json"
    args = [sys.executable, str(tmp_path / "resume.py"), str(tmp_path / "config.json"), str(tiny_dataset.path), str(checkpoint), str(out)]
    proc = subprocess.Popen(args)
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert checkpoint.exists(), "the run wrote no checkpoint before it ended"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    epochs_done = torch.load(checkpoint, weights_only=True)["epochs_done"]
    assert 1 <= epochs_done < config.epochs
    resumed = train(config, tiny_dataset, seed=7, checkpoint=checkpoint, progress=False)
    assert len(resumed.curves) == config.epochs and not checkpoint.exists()
    uninterrupted = train(config, tiny_dataset, seed=7, progress=False)
    assert resumed.dice_per_image == uninterrupted.dice_per_image
    assert resumed.cls_prob == uninterrupted.cls_prob
    assert resumed.selected_epoch == uninterrupted.selected_epoch
    assert resumed.epoch_scores == uninterrupted.epoch_scores and len(resumed.per_epoch().epochs) == config.epochs


def test_foreign_checkpoint_is_refused(tiny_dataset, tmp_path):
    config = TINY.replace(stages=(StageConfig(2, 3e-3, 1e-4),))
    checkpoint = tmp_path / "run.pt"
    train(config, tiny_dataset, seed=1, progress=False, checkpoint=checkpoint, keep_checkpoint=True)
    with pytest.raises(TrainingSetupError, match="belongs to another run"):
        train(config, tiny_dataset, seed=2, progress=False, checkpoint=checkpoint)


def _flip_a_tensor_byte(path):
    """Flip one byte inside the first tensor's stored data (the zip container does not notice)."""
    with zipfile.ZipFile(path) as archive:
        entry = archive.getinfo(next(name for name in archive.namelist() if "/data/" in name))
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26 : entry.header_offset + 30])
    data[entry.header_offset + 30 + name_length + extra_length + 5] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_flip_a_tensor_byte, "its contents do not match its checksum"),
        (lambda path: path.write_bytes(b""), "unreadable"),
        (lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]), "unreadable"),
    ],
    ids=["tensor-byte-flipped", "zero-bytes", "truncated"],
)
def test_a_damaged_checkpoint_is_set_aside_and_the_run_starts_over(tiny_dataset, tmp_path, damage, problem):
    """Once a flipped byte resumed with wrong weights and stored the wrong result, exit 0."""
    config = TINY.replace(stages=(StageConfig(2, 3e-3, 1e-4),))
    checkpoint = tmp_path / "run.pt"
    uninterrupted = train(config, tiny_dataset, seed=1, progress=False, checkpoint=checkpoint, keep_checkpoint=True)
    damage(checkpoint)
    with pytest.warns(CheckpointWarning, match=f"checkpoint {checkpoint}: {problem}.*set aside as .*the run starts over"):
        again = train(config, tiny_dataset, seed=1, progress=False, checkpoint=checkpoint)
    assert again.dice_per_image == uninterrupted.dice_per_image and len(again.curves) == config.epochs
    set_aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.pt.damaged-")]
    assert len(set_aside) == 1 and not checkpoint.exists()


def test_scratch_files_of_dead_writers_are_removed_on_the_next_start(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    stale, live = tmp_path / f".run.tmp-{dead}.pt", tmp_path / f".run.tmp-{os.getpid()}.pt"
    stale.write_bytes(b"half a checkpoint")
    live.write_bytes(b"being written")
    assert load_verified(tmp_path / "run.pt", torch.device("cpu")) is None
    assert not stale.exists() and live.exists()


def test_an_intact_checkpoint_round_trips_its_checksum(tmp_path):
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "curves": [{"epoch": 1, "val_dice": None}], "stage": 0}
    save_verified(state, tmp_path / "ok.pt")
    loaded = load_verified(tmp_path / "ok.pt", torch.device("cpu"))
    assert loaded["checksum"] == content_checksum(state) and torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert content_checksum({**state, "stage": 1}) != content_checksum(state)


def test_non_finite_loss_stops_the_run_naming_epoch_and_step(tiny_dataset):
    calls = []

    @register_seg_loss("test_nan_at_3", cls_weight=0.1)
    def nan_loss(mask_logits, masks):
        calls.append(1)
        value = nn.functional.binary_cross_entropy_with_logits(mask_logits, masks)
        return value * float("nan") if len(calls) == 3 else value

    try:
        with pytest.raises(NonFiniteLossError, match="at epoch 1, step 3 .of 3."):
            train(TINY.replace(seg_loss="test_nan_at_3"), tiny_dataset, seed=0, progress=False)
    finally:
        SEG_LOSSES.unregister("test_nan_at_3")


@pytest.mark.parametrize(
    "config, message",
    [
        (TINY.replace(image_size=64), "config.image_size is 64 but the dataset"),
        (TINY.replace(batch_size=64), "fewer than one batch of 64"),
    ],
)
def test_setup_errors(tiny_dataset, config, message):
    with pytest.raises(TrainingSetupError, match=message):
        train(config, tiny_dataset, seed=0, progress=False)


def test_a_smoke_run_learns(smoke_dataset):
    config = get_profile("smoke").base
    result = train(config.replace(validate_every=100), smoke_dataset, seed=0, progress=False)
    val_labels = smoke_dataset.labels[smoke_dataset.val_indices]
    all_empty_dice = float((val_labels == 0).mean())  # 1 on negatives, 0 on positives
    assert result.dice > all_empty_dice + 0.05
    assert result.accuracy > 0.6  # chance is 0.5 on balanced data
