"""The training step made ready for CUDA graphs, checked on the CPU.

The learning rate lives in a device tensor and gives the float rate's results bit for bit; the
compiled step (captured by torch.compile; ``aot_eager`` runs the captured graphs here, without
generating code) gives the eager step's results; checkpoints written by a background thread
hold the state at the end of the epoch that submitted them, whatever trains afterwards.
"""

import copy
import dataclasses

import pytest
import torch

from pneumobench.experiment.profiles import get_profile
from pneumobench.models import build_model
from pneumobench.training import engine
from pneumobench.training.checkpoints import CheckpointWriter, load_verified
from pneumobench.training.engine import (
    compiled_step,
    epoch_learning_rates,
    make_optimizer,
    set_learning_rate,
    train,
    train_epoch,
    train_step,
)

CONFIG = get_profile("smoke").base
CPU = torch.device("cpu")
RATES = [2e-2 * 0.7**step for step in range(6)]


def model_and_batches(steps: int = 6):
    torch.manual_seed(3)
    model = build_model(CONFIG)
    generator = torch.Generator().manual_seed(4)
    batches = [
        (
            torch.randn(8, 3, 32, 32, generator=generator),
            (torch.rand(8, 1, 32, 32, generator=generator) > 0.8).float(),
            (torch.rand(8, generator=generator) > 0.5).float(),
        )
        for _ in range(steps)
    ]
    return model, batches


def test_a_rate_held_in_a_tensor_gives_the_float_rates_results_bit_for_bit():
    model, batches = model_and_batches()
    twin = copy.deepcopy(model)
    floats = torch.optim.RAdam(model.parameters(), lr=RATES[0])
    tensors = make_optimizer(list(twin.parameters()), RATES[0], CPU)
    rates = torch.tensor(RATES, dtype=torch.float32)
    for step, (images, masks, labels) in enumerate(batches):
        for group in floats.param_groups:
            group["lr"] = RATES[step]
        set_learning_rate(tensors, rates[step])
        train_step(model, floats, images, masks, labels, CONFIG, autocast=False)
        train_step(twin, tensors, images, masks, labels, CONFIG, autocast=False)
    assert isinstance(tensors.param_groups[0]["lr"], torch.Tensor)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters(), strict=True))


def test_train_epoch_gives_each_step_its_scheduled_rate(tiny_dataset):
    config = CONFIG.replace(batch_size=8)
    data = engine.DeviceData(tiny_dataset, tiny_dataset.train_indices, CPU, channels_last=False)
    model = build_model(config)
    optimizer = make_optimizer(list(model.parameters()), 1.0, CPU)
    seen = []

    def recording_step(forward, optimizer, *args, **kwargs):
        seen.append(optimizer.param_groups[0]["lr"].item())
        return torch.zeros(())

    _, last = train_epoch(model, optimizer, data, config, epoch=1, data_seed=0, autocast=False, step_fn=recording_step)
    expected = torch.tensor(epoch_learning_rates(config, 1, len(seen)), dtype=torch.float32).tolist()
    assert seen == expected and len(seen) == len(data) // 8 and last == epoch_learning_rates(config, 1, len(seen))[-1]


def test_the_compiled_step_equals_the_eager_step():
    torch._dynamo.reset()
    model, batches = model_and_batches(4)
    twin = copy.deepcopy(model)
    eager_optimizer = make_optimizer(list(model.parameters()), RATES[0], CPU)
    compiled_optimizer = make_optimizer(list(twin.parameters()), RATES[0], CPU)
    step = compiled_step(CPU, backend="aot_eager")
    for images, masks, labels in batches:
        eager = train_step(model, eager_optimizer, images, masks, labels, CONFIG, autocast=False)
        compiled = step(twin, compiled_optimizer, images, masks, labels, CONFIG, autocast=False)
        torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_a_run_with_compile_model_trains_with_the_compiled_step(tiny_dataset, monkeypatch):
    """The wiring: ``train(compile_model=True)`` runs every step through ``compiled_step`` (here a
    spy that steps eagerly, so the run equals the plain one bit for bit)."""
    devices = []

    def spy(device):
        devices.append(device)
        return train_step

    monkeypatch.setattr(engine, "compiled_step", spy)
    config = CONFIG.replace(stages=(CONFIG.stages[0], dataclasses.replace(CONFIG.stages[1], epochs=1)))
    compiled = train(config, tiny_dataset, seed=2, compile_model=True, progress=False)
    assert devices == [CPU]
    assert compiled.dice_per_image == train(config, tiny_dataset, seed=2, progress=False).dice_per_image


def test_the_writer_saves_the_state_it_was_handed_while_training_goes_on(tmp_path):
    weights = torch.arange(6, dtype=torch.float32)
    writer = CheckpointWriter()
    writer.submit({"weights": weights, "curves": [{"epoch": 1}]}, tmp_path / "run.pt")
    weights.add_(100)  # the next epoch trains on
    writer.wait()
    saved = load_verified(tmp_path / "run.pt", CPU)
    assert saved is not None and torch.equal(saved["weights"], torch.arange(6, dtype=torch.float32))
    assert saved["curves"] == [{"epoch": 1}]


def test_a_failed_background_write_is_raised_in_the_training_loop(tmp_path):
    writer = CheckpointWriter()
    (tmp_path / "a-file").write_text("not a folder")
    writer.submit({"weights": torch.zeros(2)}, tmp_path / "a-file" / "run.pt")
    with pytest.raises(OSError):
        writer.wait()
    writer.wait()  # the error is raised once
