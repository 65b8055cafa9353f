"""One training run: the engine (``train`` in named steps), losses, metrics, epoch selection
and verified checkpoints.
"""

from pneumobench.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "checkpoints": ("CheckpointWarning", "content_checksum", "load_verified", "save_verified"),
        "engine": (
            "CPU_THREADS",
            "DeviceData",
            "NonFiniteLossError",
            "derive_seeds",
            "example_indices",
            "learning_rate",
            "stage_loss_config",
            "steps_per_epoch",
            "train",
            "train_epoch",
            "train_step",
            "validate",
        ),
        "losses": ("SEG_LOSSES", "LossInputError", "SegLoss", "joint_loss", "lovasz_hinge", "register_seg_loss"),
        "metrics": (
            "MetricInputError",
            "ScoreAccumulator",
            "accuracy",
            "batch_mean",
            "correct_per_image",
            "dice_per_image",
        ),
        "preconditions": ("TrainingSetupError", "check_runs", "check_trainable", "heldout_split"),
        "selection": ("RULES", "SelectionError", "reselect", "select_epoch"),
    },
)
