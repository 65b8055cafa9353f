"""The embedded default dataset: synthetic SIIM files, prepared once into a cache and reused.

The cache directory is ``$PNEUMOBENCH_CACHE`` or ``~/.cache/pneumobench``. A dataset is keyed
by its parameters and the generator version; a file lock makes concurrent callers (pytest-xdist
workers, parallel jobs) wait for the one that builds it instead of building it twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from pneumobench.data import prepared
from pneumobench.data.prepared import PREPARATION_DEFAULTS
from pneumobench.data.siim import prepare
from pneumobench.data.synthetic import GENERATOR_VERSION, write_siim
from pneumobench.experiment.config import SyntheticSpec

__all__ = ["cache_dir", "spec_key", "synthetic_dataset"]


def spec_key(spec: SyntheticSpec) -> str:
    """The cache name of ``spec``'s dataset: its parameters and the generator version, hashed."""
    fields = {k: v for k, v in asdict(spec).items() if k not in PREPARATION_DEFAULTS or v != PREPARATION_DEFAULTS[k]}
    if fields["train_per_class"] is None:
        del fields["train_per_class"]  # the paper's split: the old key
    text = json.dumps({**fields, "generator": GENERATOR_VERSION}, sort_keys=True)  # default rules: the old key
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    return Path(os.environ.get("PNEUMOBENCH_CACHE") or Path.home() / ".cache" / "pneumobench")


DEFAULT_SPEC = SyntheticSpec()


def synthetic_dataset(spec: SyntheticSpec = DEFAULT_SPEC, *, progress: bool = False) -> prepared.PreparedDataset:
    """The prepared synthetic dataset of ``spec``, generated on first use and cached."""
    root = cache_dir() / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    key = spec_key(spec)
    target = root / f"synthetic-{key}"
    with open(root / f".synthetic-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "manifest.json").is_file():
            return prepared.load(target)
        raw = Path(tempfile.mkdtemp(prefix="siim-raw-", dir=root))
        try:
            write_siim(
                raw, n_positive=spec.n_positive, n_negative=spec.n_negative, seed=spec.seed, difficulty=spec.difficulty
            )
            prepare(
                raw,
                target,
                size=spec.size,
                per_class=None,
                seed=spec.seed,
                progress=progress,
                overwrite=True,
                mask_rows=spec.mask_rows,
                resize=spec.resize,
                train_per_class=spec.train_per_class,
            )
        finally:
            shutil.rmtree(raw, ignore_errors=True)
        return prepared.load(target, verify=False)
