"""Runs in bulk: the results store, ``run`` and ``prefetch`` (the driver), the local and Ray
executors, the claim fence on checkpoints, device selection and progress lines.
"""

from pneumobench.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "devices": ("DEVICE_CHOICES", "DeviceError", "check_device", "device_kind", "select_device"),
        "executors": (
            "EXECUTORS",
            "Executor",
            "ExecutorError",
            "Finished",
            "InlineExecutor",
            "Job",
            "LocalExecutor",
            "RayExecutor",
            "Started",
            "Trained",
            "make_executor",
            "train_job",
        ),
        "fence": ("ClaimFence", "ClaimTakenOver"),
        "progress": ("BarProgress", "LineProgress", "RunProgress", "duration"),
        "runner": ("PrefetchSummary", "key_of", "key_of_kind", "prefetch", "run", "run_conditions"),
        "store": (
            "DEFAULT_STORE",
            "ResultStore",
            "RunFailedError",
            "StoreError",
            "StoredRun",
            "run_key",
            "source_fingerprint",
        ),
    },
)
