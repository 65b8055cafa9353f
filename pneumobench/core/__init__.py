"""Foundations every stage uses: the ``Registry`` extension mechanism, atomic file writes,
the environment a run records, and ``RunResult``, the plain data a run produces.
"""

from pneumobench.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "atomic": ("atomic_directory", "atomic_file", "process_alive", "write_text_atomic"),
        "environment": (
            "RESULT_LIBRARIES",
            "cpu_model",
            "device_name",
            "environment",
            "git_commit",
            "library_versions",
        ),
        "lazy": ("lazy_exports",),
        "registry": ("ExtensionImportError", "Registry", "UnknownNameError", "extension_modules", "import_extensions"),
        "results": ("EpochScores", "RunResult", "decode_epoch_scores", "encode_epoch_scores"),
    },
)
