"""Throughput benchmarks, the GPU check and planted-bug runs for the sensitivity suite."""

from pneumobench.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "bench": (
            "bench_ingest",
            "bench_metrics",
            "bench_train",
            "make_train_step",
            "naive_decode",
            "naive_encode",
            "synthetic_batches",
            "training_flops_per_image",
        ),
        "gpu_check": ("GpuCheckSettings", "bench_concurrency", "cuda_tests", "gpu_check"),
        "sensitivity": ("PlantedBug", "bug_runs", "bug_store_path"),
    },
)
