"""Train one configuration with one seed on a prepared dataset: the paper's two-stage protocol.

RAdam; within each stage the learning rate follows a per-step cosine from the stage's rate
to its minimum; stage 1 freezes the encoder's weights (its BatchNorm still trains); batch
``config.batch_size`` with the last partial batch dropped; horizontal flips with
probability ``config.flip_p``; the grayscale image is replicated to 3 channels and
ImageNet-normalised. Validation runs every ``validate_every`` epochs and always after the
last; the reported Dice and accuracy are those of the last epoch.

Seeds: the seed is split into an initialisation seed and a data seed. Each epoch's order
and flips come from a generator seeded by (data seed, epoch), so two configurations with
the same seed see the same batches (common random numbers), and a resumed run continues
exactly. The global RNG state is restored after the run.

Threads: a run fixes torch's CPU thread count (``cpu_threads``, default ``CPU_THREADS``) for
its own duration and records it, because the same seed gives different numbers with a
different thread count; so a run gives the same per-image scores however it is launched
(in-process, a prefetch worker, a pytest-xdist worker, ``pneumobench run``).

The dataset lives on the device as uint8 for the whole run; batches are gathered,
normalised and flipped there. On CUDA the fast path adds channels_last, bf16 autocast and
cuDNN autotuning; on the CPU it changes nothing (channels_last measured 12-30% slower there at
the smoke profile's size, one thread); the host syncs once per epoch (loss check and
validation summary).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pneumobench.atomic import atomic_file
from pneumobench.config import ExperimentConfig
from pneumobench.data.prepared import PreparedDataset
from pneumobench.data.rle import encode
from pneumobench.environment import environment
from pneumobench.losses import joint_loss
from pneumobench.metrics import ScoreAccumulator
from pneumobench.models import build_model, freeze_encoder, unfreeze_encoder
from pneumobench.results import RunResult

__all__ = [
    "CPU_THREADS",
    "DeviceData",
    "NonFiniteLossError",
    "TrainingSetupError",
    "derive_seeds",
    "example_indices",
    "learning_rate",
    "train",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_FORMAT = 1
EXAMPLE_POSITIVES = 3  # validation images whose predicted masks every run keeps, for reports
EXAMPLE_NEGATIVES = 2
CPU_THREADS = 1  # torch CPU threads of every run, unless asked otherwise (part of the store key)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run is abandoned, never reported."""


class TrainingSetupError(ValueError):
    """A configuration and dataset that cannot be trained together, or a foreign checkpoint."""


def derive_seeds(seed: int) -> tuple[int, int]:
    """Independent initialisation and data seeds from one run seed."""
    init, data = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    return int(init >> np.uint64(1)), int(data >> np.uint64(1))


def learning_rate(config: ExperimentConfig, global_step: int, steps_per_epoch: int) -> float:
    """The learning rate of ``global_step``: a per-step cosine within each stage."""
    for stage in config.stages:
        steps = stage.epochs * steps_per_epoch
        if global_step < steps:
            progress = global_step / max(steps - 1, 1)
            return stage.min_lr + (stage.lr - stage.min_lr) * (1 + math.cos(math.pi * progress)) / 2
        global_step -= steps
    raise ValueError("step past the last stage")


def _stage_of_epoch(config: ExperimentConfig, epoch: int) -> int:
    for index, stage in enumerate(config.stages):
        if epoch < stage.epochs:
            return index
        epoch -= stage.epochs
    raise ValueError(f"epoch past the last stage: {epoch}")


class DeviceData:
    """One split of a prepared dataset held on the device as uint8, batched there."""

    def __init__(self, dataset: PreparedDataset, indices: np.ndarray, device: torch.device, channels_last: bool) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(dataset.images[indices])).to(device)
        self.masks = torch.from_numpy(np.ascontiguousarray(dataset.masks[indices])).to(device)
        self.labels = torch.from_numpy(np.ascontiguousarray(dataset.labels[indices])).to(device)
        self.channels_last = channels_last
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, index: torch.Tensor, flip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
def _numerics(device: torch.device, fast: bool, deterministic: bool, cpu_threads: int) -> Iterator[None]:
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


def _save_checkpoint(state: dict[str, Any], path: Path) -> None:
    with atomic_file(path) as scratch:
        torch.save(state, scratch)


def _run_identity(config: ExperimentConfig, seed: int, dataset: PreparedDataset) -> dict[str, Any]:
    return {"format": CHECKPOINT_FORMAT, "config_key": config.key(), "seed": seed, "dataset": dataset.fingerprint}


def _load_checkpoint(path: Path, identity: dict[str, Any], device: torch.device) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("identity") != identity:
        raise TrainingSetupError(
            f"checkpoint {path} belongs to another run ({state.get('identity')}, expected {identity}); "
            "remove it or choose another checkpoint path"
        )
    return state


def _evaluate(
    model: torch.nn.Module, data: DeviceData, batch_size: int, autocast: bool, keep: np.ndarray | None = None
) -> tuple[ScoreAccumulator, torch.Tensor | None]:
    """Score the split; with ``keep`` (validation positions) also return those images'
    predicted masks from this same pass, so they are exactly the masks that were scored."""
    scores = ScoreAccumulator()
    kept: dict[int, torch.Tensor] = {}
    model.eval()
    device_type = data.images.device.type
    with torch.no_grad(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
        for start in range(0, len(data), batch_size):
            stop = min(start + batch_size, len(data))
            index = torch.arange(start, stop, device=data.images.device)
            images, masks, labels = data.batch(index)
            mask_logits, cls_logits = model(images)
            mask_prob = torch.sigmoid(mask_logits.float())
            scores.update(mask_prob, masks, torch.sigmoid(cls_logits.float()), labels)
            for position in (keep if keep is not None else ()):
                if start <= position < stop:
                    kept[int(position)] = mask_prob[position - start, 0] > 0.5
    masks_kept = torch.stack([kept[int(p)] for p in keep]) if keep is not None and len(keep) else None
    return scores, masks_kept


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
    validate_every: int = 1,
    progress: bool = True,
    cpu_threads: int = CPU_THREADS,
) -> RunResult:
    """Train ``config`` with ``seed`` on ``dataset`` and score the validation split.

    ``checkpoint``: a file written atomically every ``checkpoint_every`` epochs; if it exists
    when the run starts, the run resumes from it (and it is removed after success unless
    ``keep_checkpoint``). ``fast`` uses, on CUDA, channels_last, bf16 autocast and cuDNN
    autotuning; ``fast=False`` is the plain fp32 path.
    ``deterministic`` asks torch for deterministic kernels. ``cpu_threads``: torch's CPU
    thread count for the run (results depend on it).
    """
    device = torch.device(device)
    if dataset.size != config.image_size:
        raise TrainingSetupError(
            f"config.image_size is {config.image_size} but the dataset {dataset.path} is {dataset.size}x{dataset.size}"
        )
    steps_per_epoch = len(dataset.train_indices) // config.batch_size
    if steps_per_epoch == 0:
        raise TrainingSetupError(
            f"{len(dataset.train_indices)} training images are fewer than one batch of {config.batch_size}"
        )
    if len(dataset.val_indices) == 0:
        raise TrainingSetupError(f"the dataset {dataset.path} has no validation images")
    if cpu_threads < 1:
        raise TrainingSetupError(f"cpu_threads must be at least 1, got {cpu_threads}")
    checkpoint_path = Path(checkpoint) if checkpoint is not None else None
    identity = _run_identity(config, seed, dataset)
    init_seed, data_seed = derive_seeds(seed)
    autocast = channels_last = fast and device.type == "cuda"
    started = time.perf_counter()

    with _numerics(device, fast, deterministic, cpu_threads):
        torch.manual_seed(init_seed)
        model = build_model(config).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        forward = torch.compile(model) if compile_model else model
        train_data = DeviceData(dataset, dataset.train_indices, device, channels_last=channels_last)
        val_data = DeviceData(dataset, dataset.val_indices, device, channels_last=channels_last)

        resumed = _load_checkpoint(checkpoint_path, identity, device) if checkpoint_path else None
        start_epoch = resumed["epochs_done"] if resumed else 0
        curves: list[dict[str, Any]] = resumed["curves"] if resumed else []
        elapsed_before = resumed["elapsed_s"] if resumed else 0.0
        if resumed:
            model.load_state_dict(resumed["model"])

        positions = example_indices(dataset)  # validation images whose predicted masks the result keeps
        kept: torch.Tensor | None = None
        optimizer: torch.optim.Optimizer | None = None
        current_stage = -1
        last_scores: ScoreAccumulator | None = None
        bar = tqdm(total=config.epochs, initial=start_epoch, desc=f"{config.name} seed {seed}", unit="epoch", disable=not progress, leave=False)
        for epoch in range(start_epoch, config.epochs):
            epoch_started = time.perf_counter()
            stage_index = _stage_of_epoch(config, epoch)
            if stage_index != current_stage:
                stage = config.stages[stage_index]
                (freeze_encoder if stage.freeze_encoder else unfreeze_encoder)(model)
                optimizer = torch.optim.RAdam([p for p in model.parameters() if p.requires_grad], lr=stage.lr)
                if resumed and epoch == start_epoch and resumed["stage"] == stage_index:
                    optimizer.load_state_dict(resumed["optimizer"])
                current_stage = stage_index
            assert optimizer is not None

            model.train()
            order, flips = epoch_order(data_seed, epoch, len(train_data), config.flip_p)
            order, flips = order.to(device, non_blocking=True), flips.to(device, non_blocking=True)
            step_losses = torch.zeros(steps_per_epoch, device=device)
            for step in range(steps_per_epoch):
                lr = learning_rate(config, epoch * steps_per_epoch + step, steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                images, masks, labels = train_data.batch(index, flips[index])
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    mask_logits, cls_logits = forward(images)
                loss = joint_loss(
                    mask_logits.float(), cls_logits.float(), masks, labels,
                    seg_loss=config.seg_loss, cls_weight=config.cls_weight,
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step_losses[step] = loss.detach()

            last_epoch = epoch == config.epochs - 1
            validate = last_epoch or (epoch + 1) % validate_every == 0
            summary = [step_losses.mean(), torch.isfinite(step_losses).all().float()]
            if validate:
                last_scores, kept = _evaluate(forward, val_data, 2 * config.batch_size, autocast,
                                              keep=positions if last_epoch else None)
                summary += [last_scores.dice.mean(), last_scores.correct.float().mean()]
            values = torch.stack(summary).tolist()  # the epoch's one host sync
            if values[1] < 1:
                bad_step = int(torch.nonzero(~torch.isfinite(step_losses))[0])
                raise NonFiniteLossError(
                    f"{config.name} seed {seed}: non-finite training loss at epoch {epoch + 1}, step {bad_step + 1} "
                    f"(of {steps_per_epoch}); the run is abandoned"
                )
            curves.append({
                "epoch": epoch + 1,
                "stage": stage_index + 1,
                "lr_end": lr,
                "train_loss": values[0],
                "val_dice": values[2] if validate else None,
                "val_accuracy": values[3] if validate else None,
                "seconds": time.perf_counter() - epoch_started,
            })
            bar.set_postfix(loss=f"{values[0]:.4f}", dice=f"{values[2]:.3f}" if validate else "-")
            bar.update(1)
            if checkpoint_path and not last_epoch and (epoch + 1) % checkpoint_every == 0:
                _save_checkpoint({
                    "identity": identity,
                    "epochs_done": epoch + 1,
                    "stage": stage_index,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "curves": curves,
                    "elapsed_s": elapsed_before + time.perf_counter() - started,
                }, checkpoint_path)
        bar.close()

        assert last_scores is not None
        predicted = kept.cpu().numpy() if kept is not None else []
        examples = {dataset.ids[dataset.val_indices[p]]: encode(mask) for p, mask in zip(positions, predicted)}

    wall = elapsed_before + time.perf_counter() - started
    trained_images = (config.epochs - start_epoch) * steps_per_epoch * config.batch_size
    if checkpoint_path and not keep_checkpoint:
        checkpoint_path.unlink(missing_ok=True)
    return RunResult(
        config=config.to_dict(),
        config_key=config.key(),
        config_name=config.name,
        seed=seed,
        dataset_fingerprint=dataset.fingerprint,
        val_ids=[dataset.ids[i] for i in dataset.val_indices],
        dice_per_image=last_scores.dice.cpu().tolist(),
        cls_prob=last_scores.cls_prob.cpu().tolist(),
        correct=last_scores.correct.cpu().tolist(),
        mask_fraction=last_scores.mask_fraction.cpu().tolist(),
        dice=curves[-1]["val_dice"],
        accuracy=curves[-1]["val_accuracy"],
        curves=curves,
        epochs=config.epochs,
        wall_time_s=wall,
        train_images_per_s=trained_images / max(time.perf_counter() - started, 1e-9),
        environment=environment(device, cpu_threads=cpu_threads),
        dataset_path=str(dataset.path or ""),
        synthetic_data=dataset.synthetic,
        examples=examples,
    )
