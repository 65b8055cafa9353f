"""Train one configuration with one seed on a prepared dataset: the paper's two-stage protocol.

RAdam; within each stage the learning rate follows a cosine from the stage's rate to its
minimum (per step, or the authors' per-epoch form: ``config.lr_schedule``); stage 1 freezes the
encoder's weights (its BatchNorm still trains); a stage may train with its own segmentation loss;
batch ``config.batch_size``, the last partial batch dropped or kept (``config.drop_last``);
horizontal flips with probability ``config.flip_p``; the grayscale image is replicated to 3
channels and ImageNet-normalised. Validation runs every ``validate_every`` epochs and always
after the last; every validated epoch's per-image scores are kept, and the reported epoch is
chosen by ``config.epoch_selection`` (``pneumobench.training.selection``), with its epoch means
averaged per image or per batch (``config.val_averaging``).

Seeds: the seed is split into an initialisation seed and a data seed. Each epoch's order
and flips come from a generator seeded by (data seed, epoch), so two configurations with
the same seed see the same batches (common random numbers), and a resumed run continues
exactly. The global RNG state is restored after the run.

Threads: a run fixes torch's CPU thread count (``cpu_threads``, default ``CPU_THREADS``) for
its own duration and records it, because the same seed gives different numbers with a
different thread count; so a run gives the same per-image scores however it is launched
(in-process, a prefetch worker, a pytest-xdist worker, ``pneumobench run``).

The dataset lives on the device as uint8 for the whole run; batches are gathered,
normalised and flipped there. On CUDA the fast path adds channels_last, bf16 autocast (unless
``config.cuda_precision`` is ``fp32``) and cuDNN autotuning; on the CPU it changes nothing
(channels_last measured 12-30% slower there at the smoke profile's size, one thread); the host
syncs once per epoch (loss check and validation summaries).

The loop in named steps: ``train`` checks the inputs and calls ``_start_or_resume`` (the model
from the initialisation seed, or a checkpoint's state); ``_fit`` runs each epoch:
``_enter_stage`` (freeze or unfreeze, a new optimizer), ``train_epoch`` (one ``train_step`` per
batch, the same step ``pneumobench bench`` times), ``validate``, ``_close_epoch`` (the one host
sync and the non-finite check), ``_save_checkpoint``; ``_build_result`` makes the ``RunResult``.
Every step but ``_close_epoch`` keeps its tensors on the device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tqdm import tqdm

from pneumobench.core.environment import environment
from pneumobench.core.results import RunResult, encode_epoch_scores
from pneumobench.data.prepared import PreparedDataset
from pneumobench.data.rle import encode
from pneumobench.experiment.config import ExperimentConfig
from pneumobench.models import PaperUNet, build_model, freeze_encoder, unfreeze_encoder
from pneumobench.training.checkpoints import CheckpointWriter, load_verified, save_verified
from pneumobench.training.losses import joint_loss
from pneumobench.training.metrics import ScoreAccumulator, batch_mean
from pneumobench.training.preconditions import TrainingSetupError, check_trainable, heldout_split
from pneumobench.training.selection import select_epoch

__all__ = [
    "CPU_THREADS",
    "DeviceData",
    "NonFiniteLossError",
    "derive_seeds",
    "example_indices",
    "example_masks",
    "learning_rate",
    "numerics",
    "run_identity",
    "stage_loss_config",
    "steps_per_epoch",
    "summaries",
    "train",
    "train_epoch",
    "train_step",
    "validate",
    "validation_batch",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_FORMAT = 2  # 2: checkpoints carry a checksum of their contents
EXAMPLE_POSITIVES = 3  # validation images whose predicted masks every run keeps, for reports
EXAMPLE_NEGATIVES = 2
CPU_THREADS = 1  # torch CPU threads of every run, unless asked otherwise (part of the store key)
# Images per validation forward pass: no gradients are kept, so larger batches than training's
# fit, and the CPU runs them faster (per-image scores do not depend on it).
VALIDATION_BATCH = 128


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run is abandoned, never reported."""


def derive_seeds(seed: int) -> tuple[int, int]:
    """Independent initialisation and data seeds from one run seed."""
    init, data = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    return int(init >> np.uint64(1)), int(data >> np.uint64(1))


def learning_rate(config: ExperimentConfig, global_step: int, steps_per_epoch: int) -> float:
    """The learning rate of ``global_step``: a cosine within each stage.

    ``cosine-step`` anneals per step from ``lr`` (first step) to ``min_lr`` (last step).
    ``cosine-epoch`` is the authors' ``CosineAnnealingLR(T_max=epochs)`` stepped before each
    epoch: epoch k of n (1-based) runs at the cosine's value at k/n, so ``lr`` itself is never
    used and the last epoch runs at ``min_lr``."""
    for stage in config.stages:
        steps = stage.epochs * steps_per_epoch
        if global_step < steps:
            if config.lr_schedule == "cosine-epoch":
                progress = (global_step // steps_per_epoch + 1) / stage.epochs
            else:
                progress = global_step / max(steps - 1, 1)
            return stage.min_lr + (stage.lr - stage.min_lr) * (1 + math.cos(math.pi * progress)) / 2
        global_step -= steps
    raise ValueError("step past the last stage")


def epoch_learning_rates(config: ExperimentConfig, epoch: int, steps: int) -> list[float]:
    """The learning rate of each step of ``epoch`` (``steps`` per epoch)."""
    return [learning_rate(config, epoch * steps + step, steps) for step in range(steps)]


def make_optimizer(params: list[torch.nn.Parameter], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """RAdam with its learning rate held in a tensor on ``device`` (each step copies the next rate
    in on the device: no Python float per step), capturable on CUDA so that its step makes no
    host sync and can be replayed by a CUDA graph. On the CPU the results are those of a float rate."""
    rate = torch.tensor(lr, dtype=torch.float32, device=device)
    return torch.optim.RAdam(params, lr=rate, capturable=device.type == "cuda")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: torch.Tensor) -> None:
    """Copy ``lr`` (a 0-d tensor on the parameters' device) into every group's rate, in place."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].copy_(lr, non_blocking=True)
        else:
            group["lr"] = lr.clone()


def compiled_step(device: torch.device, backend: str = "inductor") -> Callable[..., torch.Tensor]:
    """``train_step`` captured by ``torch.compile``: forward, loss, backward and the optimizer step
    as compiled graphs, on CUDA in mode ``reduce-overhead`` (CUDA graphs: each step replays its
    kernels with one launch instead of about 1,500). ``backend``: the compiler (tests capture with
    ``aot_eager``, which runs the captured graphs without generating code)."""
    mode = "reduce-overhead" if device.type == "cuda" and backend == "inductor" else None
    return cast(Callable[..., torch.Tensor], torch.compile(train_step, mode=mode, backend=backend))


def steps_per_epoch(n_images: int, config: ExperimentConfig) -> int:
    """Training batches per epoch: the last partial batch is dropped or kept (``config.drop_last``)."""
    return n_images // config.batch_size if config.drop_last else -(-n_images // config.batch_size)


def stage_loss_config(config: ExperimentConfig, epoch: int) -> ExperimentConfig:
    """``config`` with the segmentation loss of ``epoch``'s stage (a stage's ``seg_loss``
    overrides the experiment's, with that loss's registered classification weight)."""
    stage = config.stages[_stage_of_epoch(config, epoch)]
    if stage.seg_loss is None or stage.seg_loss == config.seg_loss:
        return config
    return config.replace(seg_loss=stage.seg_loss, cls_weight=None)


def _stage_of_epoch(config: ExperimentConfig, epoch: int) -> int:
    for index, stage in enumerate(config.stages):
        if epoch < stage.epochs:
            return index
        epoch -= stage.epochs
    raise ValueError(f"epoch past the last stage: {epoch}")


class DeviceData:
    """One split of a prepared dataset held on the device as uint8, batched there."""

    def __init__(
        self, dataset: PreparedDataset, indices: np.ndarray, device: torch.device, channels_last: bool
    ) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(dataset.images[indices])).to(device)
        self.masks = torch.from_numpy(np.ascontiguousarray(dataset.masks[indices])).to(device)
        self.labels = torch.from_numpy(np.ascontiguousarray(dataset.labels[indices])).to(device)
        self.channels_last = channels_last
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(
        self, index: torch.Tensor, flip: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised (B,3,S,S) images, (B,1,S,S) float masks and (B,) float labels."""
        images = self.images[index].unsqueeze(1).float()
        masks = self.masks[index].unsqueeze(1).float()
        if flip is not None:
            flip = flip.view(-1, 1, 1, 1)
            images = torch.where(flip, images.flip(-1), images)
            masks = torch.where(flip, masks.flip(-1), masks)
        images = (images - self.mean) / self.std
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, masks, self.labels[index].float()


def epoch_order(data_seed: int, epoch: int, n: int, flip_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The permutation and flip decisions of one epoch (CPU), from (data seed, epoch)."""
    generator = torch.Generator().manual_seed(data_seed + 1_000_003 * epoch)
    order = torch.randperm(n, generator=generator)
    flips = torch.rand(n, generator=generator) < flip_p
    return order, flips


def example_indices(dataset: PreparedDataset) -> np.ndarray:
    """Positions in the validation split of the images whose predictions a run keeps.

    A fixed choice per dataset: the positives at the 1/6, 3/6 and 5/6 quantiles of mask
    area (a small, a middle and a large one) and the first negatives, in validation order.
    """
    val = dataset.val_indices
    labels = np.asarray(dataset.labels[val])
    positives = np.flatnonzero(labels == 1)
    areas = np.asarray(dataset.masks[val[positives]]).reshape(len(positives), -1).sum(axis=1)
    by_area = positives[np.argsort(areas, kind="stable")]
    quantiles = (np.arange(EXAMPLE_POSITIVES) * 2 + 1) / (2 * EXAMPLE_POSITIVES)
    chosen = np.unique(by_area[(quantiles * len(by_area)).astype(int)]) if len(by_area) else by_area
    return np.concatenate([chosen, np.flatnonzero(labels == 0)[:EXAMPLE_NEGATIVES]])


@contextlib.contextmanager
def numerics(device: torch.device, fast: bool, deterministic: bool, cpu_threads: int) -> Iterator[None]:
    """The run's thread count and deterministic or fast kernels; the previous global settings come back after."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cpu_threads)
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA backward kernels (bilinear upsampling, adaptive max pooling)
        # have no deterministic version; torch warns about them instead of failing the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif fast and device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rng_devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices):
            yield
    finally:
        torch.set_num_threads(threads_before)
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[2], previous[3]


def run_identity(config: ExperimentConfig, seed: int, dataset: PreparedDataset) -> dict[str, Any]:
    """What a checkpoint or a kept final model records of the run it belongs to."""
    return {"format": CHECKPOINT_FORMAT, "config_key": config.key(), "seed": seed, "dataset": dataset.fingerprint}


def _load_checkpoint(path: Path, identity: dict[str, Any], device: torch.device) -> dict[str, Any] | None:
    state = load_verified(path, device)
    if state is None:
        return None
    if state.get("identity") != identity:
        raise TrainingSetupError(
            f"checkpoint {path} belongs to another run ({state.get('identity')}, expected {identity}); "
            "remove it or choose another checkpoint path"
        )
    return state


def train_step(
    forward: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    config: ExperimentConfig,
    *,
    autocast: bool,
) -> torch.Tensor:
    """One optimisation step on one batch; returns the loss, detached, on the device (no host sync).

    The one step the training engine and ``pneumobench bench`` both time."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=autocast):
        mask_logits, cls_logits = forward(images)
    loss = joint_loss(
        mask_logits.float(), cls_logits.float(), masks, labels, seg_loss=config.seg_loss, cls_weight=config.cls_weight
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_epoch(
    forward: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: DeviceData,
    config: ExperimentConfig,
    *,
    epoch: int,
    data_seed: int,
    autocast: bool,
    step_fn: Callable[..., torch.Tensor] = train_step,
) -> tuple[torch.Tensor, float]:
    """One epoch of ``step_fn`` steps (``train_step`` or its ``compiled_step``) in the (data seed,
    epoch) order, each at its learning rate, copied on the device from the epoch's rates.

    Returns the step losses (on the device, unchecked) and the last step's learning rate."""
    steps = steps_per_epoch(len(data), config)
    loss_config = stage_loss_config(config, epoch)
    device = data.images.device
    forward.train()
    order, flips = epoch_order(data_seed, epoch, len(data), config.flip_p)
    order, flips = order.to(device, non_blocking=True), flips.to(device, non_blocking=True)
    rates = epoch_learning_rates(config, epoch, steps)
    lrs = torch.tensor(rates, dtype=torch.float32).to(device, non_blocking=True)
    step_losses = torch.zeros(steps, device=device)
    for step in range(steps):
        set_learning_rate(optimizer, lrs[step])
        index = order[step * config.batch_size : (step + 1) * config.batch_size]
        images, masks, labels = data.batch(index, flips[index])
        step_losses[step] = step_fn(forward, optimizer, images, masks, labels, loss_config, autocast=autocast)
    return step_losses, rates[-1]


def validate(
    model: torch.nn.Module, data: DeviceData, batch_size: int, autocast: bool, keep: np.ndarray | None = None
) -> tuple[ScoreAccumulator, torch.Tensor | None]:
    """Score the split (no host sync); with ``keep`` (validation positions) also return those images'
    predicted masks from this same pass, so they are exactly the masks that were scored."""
    scores = ScoreAccumulator()
    kept: dict[int, torch.Tensor] = {}
    model.eval()
    device_type = data.images.device.type
    with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
        for start in range(0, len(data), batch_size):
            stop = min(start + batch_size, len(data))
            index = torch.arange(start, stop, device=data.images.device)
            images, masks, labels = data.batch(index)
            mask_logits, cls_logits = model(images)
            mask_prob = torch.sigmoid(mask_logits.float())
            scores.update(mask_prob, masks, torch.sigmoid(cls_logits.float()), labels)
            for position in keep if keep is not None else ():
                if start <= position < stop:
                    kept[int(position)] = mask_prob[position - start, 0] > 0.5
    masks_kept = torch.stack([kept[int(p)] for p in keep]) if keep is not None and len(keep) else None
    return scores, masks_kept


@dataclass
class _Selected:
    """The reported epoch's scores and kept example masks (on the device)."""

    epoch: int
    dice: torch.Tensor
    cls_prob: torch.Tensor
    correct: torch.Tensor
    mask_fraction: torch.Tensor
    kept: torch.Tensor | None

    @classmethod
    def of(cls, epoch: int, scores: ScoreAccumulator, kept: torch.Tensor | None) -> _Selected:
        return cls(epoch, scores.dice, scores.cls_prob, scores.correct, scores.mask_fraction, kept)

    def to_state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _RunState:
    """What carries from one epoch to the next (and what a checkpoint holds)."""

    model: PaperUNet
    start_epoch: int
    curves: list[dict[str, Any]]
    elapsed_before: float
    resumed: dict[str, Any] | None
    optimizer: torch.optim.Optimizer | None = None
    stage_index: int = -1
    validated: list[int] = field(default_factory=list)  # 1-based epochs with per-image scores
    epoch_dice: list[torch.Tensor] = field(default_factory=list)
    epoch_correct: list[torch.Tensor] = field(default_factory=list)
    selected: _Selected | None = None

    def record(self, epoch: int, scores: ScoreAccumulator, kept: torch.Tensor | None, rule: str) -> None:
        """Keep a validated epoch's per-image scores, and its full scores if ``rule`` now reports it."""
        self.validated.append(epoch)
        self.epoch_dice.append(scores.dice)
        self.epoch_correct.append(scores.correct)
        if select_epoch(self.curves, rule) == epoch:
            self.selected = _Selected.of(epoch, scores, kept)

    def restore(self, saved: dict[str, Any]) -> None:
        self.validated = list(saved["validated"])
        self.epoch_dice, self.epoch_correct = list(saved["epoch_dice"]), list(saved["epoch_correct"])
        self.selected = _Selected(**saved["selected"]) if saved["selected"] is not None else None


@dataclass(frozen=True)
class _Splits:
    """The device copies a run reads: images trained on, the validation half, the held-out slice."""

    train: DeviceData
    val: DeviceData
    heldout: DeviceData | None

    @classmethod
    def upload(
        cls,
        dataset: PreparedDataset,
        train: np.ndarray,
        heldout: np.ndarray,
        device: torch.device,
        channels_last: bool,
    ) -> _Splits:
        def split(indices: np.ndarray) -> DeviceData:
            return DeviceData(dataset, indices, device, channels_last=channels_last)

        return cls(split(train), split(dataset.val_indices), split(heldout) if len(heldout) else None)


def _start_or_resume(
    config: ExperimentConfig,
    init_seed: int,
    device: torch.device,
    checkpoint: Path | None,
    identity: dict[str, Any],
    *,
    channels_last: bool,
) -> _RunState:
    """The model initialised from ``init_seed``, then restored from ``checkpoint`` if one exists."""
    torch.manual_seed(init_seed)
    model = build_model(config).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    resumed = _load_checkpoint(checkpoint, identity, device) if checkpoint else None
    if resumed:
        model.load_state_dict(resumed["model"])
        state = _RunState(model, resumed["epochs_done"], resumed["curves"], resumed["elapsed_s"], resumed)
        state.restore(resumed["scores"])
        return state
    return _RunState(model, 0, [], 0.0, None)


def _enter_stage(state: _RunState, config: ExperimentConfig, epoch: int) -> None:
    """At a stage's first epoch (or on resuming): freeze or unfreeze the encoder and start the
    stage's optimizer, restoring the checkpoint's optimizer state when resuming inside the stage."""
    stage_index = _stage_of_epoch(config, epoch)
    if stage_index == state.stage_index:
        return
    stage = config.stages[stage_index]
    (freeze_encoder if stage.freeze_encoder else unfreeze_encoder)(state.model)
    device = next(state.model.parameters()).device
    state.optimizer = make_optimizer([p for p in state.model.parameters() if p.requires_grad], stage.lr, device)
    resumed = state.resumed
    if resumed and epoch == state.start_epoch and resumed["stage"] == stage_index:
        state.optimizer.load_state_dict(resumed["optimizer"])
    state.stage_index = stage_index


def validation_batch(config: ExperimentConfig) -> int:
    """Images per validation forward pass: ``VALIDATION_BATCH``, or the training batch if larger."""
    return max(VALIDATION_BATCH, config.batch_size)


def example_masks(dataset: PreparedDataset, positions: np.ndarray, kept: torch.Tensor | None) -> dict[str, str]:
    """The kept predicted masks of the validation images at ``positions``, as SIIM RLE by image id."""
    predicted = kept.cpu().numpy() if kept is not None else np.zeros((0, 1, 1), bool)
    return {dataset.ids[dataset.val_indices[p]]: encode(mask) for p, mask in zip(positions, predicted)}


def summaries(scores: ScoreAccumulator | None, config: ExperimentConfig) -> list[torch.Tensor]:
    """A split's mean Dice and accuracy, averaged as ``config.val_averaging`` says (on the device)."""
    if scores is None:
        return []
    size = config.batch_size if config.val_averaging == "batch" else None
    return [batch_mean(scores.dice, size), batch_mean(scores.correct.float(), size)]


def _close_epoch(step_losses: torch.Tensor, means: list[torch.Tensor], where: str, epoch: int) -> list[float]:
    """The epoch's one host sync: mean loss and the validation summaries; a non-finite loss ends the run."""
    values = torch.stack([step_losses.mean(), torch.isfinite(step_losses).all().float(), *means]).tolist()
    if values[1] < 1:
        bad_step = int(torch.nonzero(~torch.isfinite(step_losses))[0])
        raise NonFiniteLossError(
            f"{where}: non-finite training loss at epoch {epoch + 1}, step {bad_step + 1} "
            f"(of {len(step_losses)}); the run is abandoned"
        )
    return [values[0], *values[2:]]


def _save_checkpoint(
    writer: CheckpointWriter, state: _RunState, identity: dict[str, Any], path: Path, elapsed_s: float
) -> None:
    """Hand the state at this epoch's end to ``writer``, which saves it while the next epoch trains."""
    assert state.optimizer is not None
    writer.submit(
        {
            "identity": identity,
            "epochs_done": state.curves[-1]["epoch"],
            "stage": state.stage_index,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "curves": state.curves,
            "elapsed_s": elapsed_s,
            "scores": {
                "validated": state.validated,
                "epoch_dice": state.epoch_dice,
                "epoch_correct": state.epoch_correct,
                "selected": state.selected.to_state() if state.selected is not None else None,
            },
        },
        path,
    )


def _build_result(
    config: ExperimentConfig,
    dataset: PreparedDataset,
    seed: int,
    state: _RunState,
    examples: dict[str, str],
    timing: dict[str, float],
    environment_record: dict[str, Any],
) -> RunResult:
    selected = state.selected
    assert selected is not None
    reported = state.curves[selected.epoch - 1]
    return RunResult(
        config=config.to_dict(),
        config_key=config.key(),
        config_name=config.name,
        seed=seed,
        dataset_fingerprint=dataset.fingerprint,
        val_ids=[dataset.ids[i] for i in dataset.val_indices],
        dice_per_image=selected.dice.cpu().tolist(),
        cls_prob=selected.cls_prob.cpu().tolist(),
        correct=selected.correct.cpu().tolist(),
        mask_fraction=selected.mask_fraction.cpu().tolist(),
        dice=reported["val_dice"],
        accuracy=reported["val_accuracy"],
        curves=state.curves,
        epochs=config.epochs,
        wall_time_s=timing["wall_time_s"],
        train_images_per_s=timing["train_images_per_s"],
        environment=environment_record,
        dataset_path=str(dataset.path or ""),
        synthetic_data=dataset.synthetic,
        examples=examples,
        selected_epoch=selected.epoch,
        epoch_scores=encode_epoch_scores(
            state.validated,
            torch.stack(state.epoch_dice).cpu().numpy(),
            torch.stack(state.epoch_correct).cpu().numpy(),
        ),
    )


@dataclass(frozen=True)
class _Plan:
    """A run's fixed settings, taken from the arguments of ``train``."""

    config: ExperimentConfig
    data_seed: int
    autocast: bool
    validate_every: int
    checkpoint: Path | None
    checkpoint_every: int
    identity: dict[str, Any]
    where: str  # "<configuration> seed <seed>", for progress and errors
    progress: bool
    checkpoint_guard: Callable[[], None] | None  # raises when this process may no longer write the checkpoint
    step_fn: Callable[..., torch.Tensor] = train_step  # or its compiled_step
    writer: CheckpointWriter = field(default_factory=CheckpointWriter)


def _validate_epoch(
    plan: _Plan, state: _RunState, splits: _Splits, positions: np.ndarray, last_epoch: bool
) -> tuple[ScoreAccumulator, torch.Tensor | None, ScoreAccumulator | None]:
    """Score the validation half (keeping the example masks where this epoch may be reported)
    and the held-out slice."""
    batch = validation_batch(plan.config)
    keep = positions if last_epoch or plan.config.epoch_selection != "last" else None
    scores, kept = validate(state.model, splits.val, batch, plan.autocast, keep=keep)
    held = validate(state.model, splits.heldout, batch, plan.autocast)[0] if splits.heldout is not None else None
    return scores, kept, held


def _curve_entry(epoch: int, stage: int, lr: float, values: list[float], validated: bool, heldout: bool) -> dict:
    entry: dict[str, Any] = {
        "epoch": epoch,
        "stage": stage,
        "lr_end": lr,
        "train_loss": values[0],
        "val_dice": values[1] if validated else None,
        "val_accuracy": values[2] if validated else None,
    }
    if heldout:
        entry["heldout_dice"] = values[3] if validated else None
        entry["heldout_accuracy"] = values[4] if validated else None
    return entry


def _fit(plan: _Plan, state: _RunState, splits: _Splits, positions: np.ndarray, started: float) -> None:
    """The epochs from ``state.start_epoch`` on; the reported epoch's scores end in ``state.selected``.
    However the epochs end (finished, a non-finite loss, Ctrl-C), a checkpoint still being written
    is finished first, so an interrupted run resumes from it."""
    try:
        _epochs(plan, state, splits, positions, started)
    finally:
        plan.writer.wait()


def _epochs(plan: _Plan, state: _RunState, splits: _Splits, positions: np.ndarray, started: float) -> None:
    config = plan.config
    bar = tqdm(
        total=config.epochs,
        initial=state.start_epoch,
        desc=plan.where,
        unit="epoch",
        disable=not plan.progress,
        leave=False,
    )
    for epoch in range(state.start_epoch, config.epochs):
        epoch_started = time.perf_counter()
        _enter_stage(state, config, epoch)
        assert state.optimizer is not None
        step_losses, lr = train_epoch(
            state.model,
            state.optimizer,
            splits.train,
            config,
            epoch=epoch,
            data_seed=plan.data_seed,
            autocast=plan.autocast,
            step_fn=plan.step_fn,
        )
        last_epoch = epoch == config.epochs - 1
        validated = last_epoch or (epoch + 1) % plan.validate_every == 0
        scores, kept, held = _validate_epoch(plan, state, splits, positions, last_epoch) if validated else (None,) * 3
        values = _close_epoch(step_losses, summaries(scores, config) + summaries(held, config), plan.where, epoch)
        entry = _curve_entry(epoch + 1, state.stage_index + 1, lr, values, validated, splits.heldout is not None)
        state.curves.append({**entry, "seconds": time.perf_counter() - epoch_started})
        if scores is not None:
            state.record(epoch + 1, scores, kept, config.epoch_selection)
        bar.set_postfix(loss=f"{values[0]:.4f}", dice=f"{values[1]:.3f}" if validated else "-")
        bar.update(1)
        if plan.checkpoint and not last_epoch and (epoch + 1) % plan.checkpoint_every == 0:
            if plan.checkpoint_guard is not None:
                plan.checkpoint_guard()
            _save_checkpoint(
                plan.writer, state, plan.identity, plan.checkpoint, state.elapsed_before + time.perf_counter() - started
            )
    bar.close()


def _timing(config: ExperimentConfig, state: _RunState, train_images: int, started: float) -> dict[str, float]:
    """The run's wall time (with the epochs before a resume) and this process's training throughput."""
    steps = steps_per_epoch(train_images, config)
    trained_images = (config.epochs - state.start_epoch) * min(steps * config.batch_size, train_images)
    return {
        "wall_time_s": state.elapsed_before + time.perf_counter() - started,
        "train_images_per_s": trained_images / max(time.perf_counter() - started, 1e-9),
    }


def _keep_final_model(plan: _Plan, state: _RunState, path: Path) -> None:
    """Save the trained model's weights with the run's identity, atomically and checksummed."""
    if plan.checkpoint_guard is not None:
        plan.checkpoint_guard()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_verified({"identity": plan.identity, "model": state.model.state_dict()}, path)


def _remove_checkpoint(plan: _Plan) -> None:
    """Delete a finished run's checkpoint, if this process may still touch it."""
    assert plan.checkpoint is not None
    if plan.checkpoint_guard is not None:
        plan.checkpoint_guard()
    plan.checkpoint.unlink(missing_ok=True)


def train(
    config: ExperimentConfig,
    dataset: PreparedDataset,
    seed: int,
    device: torch.device | str = "cpu",
    *,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    keep_checkpoint: bool = False,
    fast: bool = True,
    deterministic: bool = False,
    compile_model: bool = False,
    progress: bool = True,
    cpu_threads: int = CPU_THREADS,
    checkpoint_guard: Callable[[], None] | None = None,
    final_model: str | os.PathLike | None = None,
) -> RunResult:
    """Train ``config`` with ``seed`` on ``dataset`` and score the validation split.

    ``checkpoint``: a file written atomically every ``checkpoint_every`` epochs; if it exists
    when the run starts, the run resumes from it (and it is removed after success unless
    ``keep_checkpoint``). ``fast`` uses, on CUDA, channels_last, cuDNN autotuning and (with
    ``config.cuda_precision == "bf16"``) bf16 autocast; ``fast=False`` is the plain fp32 path.
    ``deterministic`` asks torch for deterministic kernels. ``compile_model``: the training step
    runs as ``compiled_step`` (CUDA graphs on CUDA). Checkpoints are written by a background
    thread while the next epoch trains (``CheckpointWriter``). ``cpu_threads``: torch's CPU
    thread count for the run (results depend on it). The reported epoch follows
    ``config.epoch_selection``; every validated epoch's per-image scores are kept.
    ``checkpoint_guard``: called before each checkpoint write and before the checkpoint is
    removed; it raises to stop a run whose claim another session took over
    (``pneumobench.runs.fence``). ``final_model``: where the last epoch's weights are kept
    (verified like a checkpoint; ``pneumobench.training.rescoring`` scores them again).
    """
    device = torch.device(device)
    init_seed, data_seed = derive_seeds(seed)
    train_indices, heldout_indices = heldout_split(dataset, config.heldout_fraction, data_seed)
    check_trainable(config, dataset, cpu_threads)
    channels_last = fast and device.type == "cuda"
    plan = _Plan(
        config,
        data_seed,
        autocast=channels_last and config.cuda_precision == "bf16",
        validate_every=config.validate_every,
        checkpoint=Path(checkpoint) if checkpoint is not None else None,
        checkpoint_every=checkpoint_every,
        identity=run_identity(config, seed, dataset),
        where=f"{config.name} seed {seed}",
        progress=progress,
        checkpoint_guard=checkpoint_guard,
        step_fn=compiled_step(device) if compile_model else train_step,
    )
    started = time.perf_counter()
    with numerics(device, fast, deterministic, cpu_threads):
        state = _start_or_resume(config, init_seed, device, plan.checkpoint, plan.identity, channels_last=channels_last)
        splits = _Splits.upload(dataset, train_indices, heldout_indices, device, channels_last)
        positions = example_indices(dataset)  # validation images whose predicted masks the result keeps
        _fit(plan, state, splits, positions, started)
        if final_model is not None:
            _keep_final_model(plan, state, Path(final_model))
        assert state.selected is not None
        examples = example_masks(dataset, positions, state.selected.kept)

    timing = _timing(config, state, len(splits.train), started)
    if plan.checkpoint and not keep_checkpoint:
        _remove_checkpoint(plan)
    return _build_result(config, dataset, seed, state, examples, timing, environment(device, cpu_threads=cpu_threads))
