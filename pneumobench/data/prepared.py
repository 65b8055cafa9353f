"""The prepared dataset on disk: uint8 arrays, labels, ids, split and a checked manifest.

Layout of a prepared directory::

    images.npy   (N, S, S) uint8     masks.npy  (N, S, S) uint8 (0/1)
    labels.npy   (N,) uint8          split.npy  (N,) uint8 (0 train, 1 validation)
    ids.json     [N image ids]       manifest.json

``save`` writes into a temporary sibling directory and renames it into place, so a reader
never sees half a dataset. ``load`` memory-maps the arrays and refuses a dataset whose
files are missing, truncated or changed (the manifest's fingerprint no longer matches).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumobench import __version__
from pneumobench.core.atomic import atomic_directory

__all__ = [
    "FORMAT_VERSION",
    "MASK_ROWS",
    "PREPARATION_DEFAULTS",
    "RESIZES",
    "DatasetError",
    "PreparedDataset",
    "load",
    "manifest_checksum",
    "save",
]

FORMAT_VERSION = 2  # 2: the manifest carries a checksum of its own fields
READABLE_VERSIONS = (1, 2)
ARRAYS = ("images", "masks", "labels", "split")
TRAIN, VALIDATION = 0, 1
MANIFEST_CHECKSUM = "manifest_sha256"


# How masks and images were brought to the dataset's size (``pneumobench.data.siim``): the
# paper-as-written rules by default; the authors' code used ``first`` and ``bilinear``.
PREPARATION_DEFAULTS = {"mask_rows": "union", "resize": "area"}
MASK_ROWS = ("union", "first")  # a positive image's mask: all its RLE rows, or the first only (the authors')
RESIZES = ("area", "bilinear")  # block mean / majority (the paper's text), or bilinear / nearest (the authors')


class DatasetError(ValueError):
    """A prepared dataset that is missing, incomplete, tampered with or inconsistent."""


@dataclass(frozen=True)
class PreparedDataset:
    """Arrays of a prepared dataset (memory-mapped when loaded) and its manifest."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    ids: tuple[str, ...]
    manifest: dict[str, Any]
    path: Path | None = None

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    @property
    def preparation(self) -> dict[str, str]:
        """The mask and resize rules that built the dataset (``PREPARATION_DEFAULTS`` for older manifests)."""
        parameters = self.manifest.get("parameters", {})
        return {name: str(parameters.get(name, default)) for name, default in PREPARATION_DEFAULTS.items()}

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def synthetic(self) -> bool:
        """Whether the images were drawn by the synthetic generator (not evidence about the paper)."""
        return "synthetic" in self.manifest

    @property
    def train_indices(self) -> np.ndarray:
        return np.flatnonzero(self.split == TRAIN)

    @property
    def val_indices(self) -> np.ndarray:
        """Validation images in stored order: runs line up image by image through these."""
        return np.flatnonzero(self.split == VALIDATION)


def fingerprint(
    images: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    ids: list[str],
    preparation: dict[str, str] | None = None,
) -> str:
    """BLAKE2b of every array (dtype, shape, bytes), the ids and the preparation rules that differ
    from ``PREPARATION_DEFAULTS``: the identity of the contents and of how they were made (two rules
    that happen to give the same arrays still give two fingerprints; default rules add nothing, so
    datasets prepared before the rules existed keep their fingerprint)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (images, masks, labels, split):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    digest.update(json.dumps(list(ids)).encode())
    rules = {k: v for k, v in (preparation or {}).items() if PREPARATION_DEFAULTS.get(k) != v}
    if rules:
        digest.update(json.dumps(rules, sort_keys=True).encode())
    return digest.hexdigest()


def _preparation_of(parameters: dict[str, Any]) -> dict[str, str]:
    return {name: str(parameters[name]) for name in PREPARATION_DEFAULTS if name in parameters}


def _validate(images, masks, labels, split, ids) -> None:
    n = len(ids)
    if images.ndim != 3 or images.shape[1] != images.shape[2] or images.dtype != np.uint8:
        raise DatasetError(f"images must be (N,S,S) uint8, got {images.shape} {images.dtype}")
    if masks.shape != images.shape or masks.dtype != np.uint8:
        raise DatasetError(f"masks must be uint8 of the images' shape {images.shape}, got {masks.shape} {masks.dtype}")
    for name, array in (("labels", labels), ("split", split)):
        if array.shape != (n,) or array.dtype != np.uint8:
            raise DatasetError(f"{name} must be ({n},) uint8, got {array.shape} {array.dtype}")
    if images.shape[0] != n or len(set(ids)) != n:
        raise DatasetError(f"ids must be {images.shape[0]} distinct strings, got {n} ({len(set(ids))} distinct)")


def save(
    out_dir: str | os.PathLike,
    *,
    images: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    ids: list[str],
    parameters: dict[str, Any],
    source: dict[str, Any],
    overwrite: bool = False,
    synthetic: dict[str, Any] | None = None,
) -> PreparedDataset:
    """Write a prepared dataset atomically to ``out_dir`` and return it loaded. ``synthetic``: the
    generator's parameters when the images were drawn (the manifest then says so)."""
    out = Path(out_dir)
    _validate(images, masks, labels, split, ids)
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    with atomic_directory(out) as tmp:
        for name, array in zip(ARRAYS, (images, masks, labels, split)):
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array))
        (tmp / "ids.json").write_text(json.dumps(list(ids)))
        manifest = {
            "format_version": FORMAT_VERSION,
            "pneumobench_version": __version__,
            "parameters": parameters,
            "source": source,
            "counts": _counts(labels, split),
            "size": int(images.shape[-1]),
            "fingerprint": fingerprint(images, masks, labels, split, ids, _preparation_of(parameters)),
            **({"synthetic": synthetic} if synthetic is not None else {}),
        }
        manifest[MANIFEST_CHECKSUM] = manifest_checksum(manifest)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return load(out)


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of every manifest field but the checksum itself (canonical JSON): an edit to the
    counts, parameters, source or the synthetic mark is detected like a change to the arrays."""
    fields = {key: value for key, value in manifest.items() if key != MANIFEST_CHECKSUM}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _counts(labels: np.ndarray, split: np.ndarray) -> dict[str, int]:
    counts = {"images": int(labels.size)}
    for split_name, split_value in (("train", TRAIN), ("validation", VALIDATION)):
        for label_name, label_value in (("positive", 1), ("negative", 0)):
            counts[f"{split_name}_{label_name}"] = int(((split == split_value) & (labels == label_value)).sum())
    return counts


def load(path: str | os.PathLike, *, verify: bool = True) -> PreparedDataset:
    """Memory-map a prepared dataset; ``verify`` recomputes and checks the fingerprint."""
    root = Path(path)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise DatasetError(f"{root} is not a prepared dataset: {manifest_path.name} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
        ids = json.loads((root / "ids.json").read_text())
        arrays = [np.load(root / f"{name}.npy", mmap_mode="r") for name in ARRAYS]
    except FileNotFoundError as error:
        raise DatasetError(f"{root}: file {Path(error.filename).name} is missing") from None
    except (ValueError, OSError, EOFError) as error:  # EOFError: a zero-byte .npy
        raise DatasetError(f"{root}: a file is truncated or corrupt ({type(error).__name__}: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READABLE_VERSIONS:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise DatasetError(
            f"{manifest_path}: not a manifest of format {' or '.join(map(str, READABLE_VERSIONS))} "
            f"(format {version}); prepare the dataset again"
        )
    if manifest["format_version"] >= 2 and manifest.get(MANIFEST_CHECKSUM) != manifest_checksum(manifest):
        raise DatasetError(
            f"{manifest_path}: the manifest was edited since preparation (its checksum does not "
            "match its fields); prepare the dataset again"
        )
    images, masks, labels, split = arrays
    _validate(images, masks, labels, split, ids)
    if verify:
        actual = fingerprint(images, masks, labels, split, ids, _preparation_of(manifest.get("parameters", {})))
        if actual != manifest.get("fingerprint"):
            raise DatasetError(
                f"{root}: contents changed since preparation (fingerprint {actual} != manifest "
                f"{manifest.get('fingerprint')}); prepare the dataset again"
            )
    return PreparedDataset(images, masks, labels, split, tuple(ids), manifest, root)
