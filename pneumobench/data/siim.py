"""Ingest a SIIM-ACR download (DICOM + RLE CSV) into the paper's prepared dataset.

``prepare`` finds the CSV (``stage_2_train.csv`` or ``train-rle.csv``, either header style),
joins its rows with the DICOM files found recursively (image id = file stem), decodes
every image in worker processes, downsamples images by block averaging (area
interpolation for a non-integer factor) and masks by block mean >= 0.5 (the rules as the
paper states them; ``resize="bilinear"`` is the authors' code: bilinear images without
antialiasing and nearest-neighbour masks; ``mask_rows="first"`` keeps only each image's first
RLE row, as their code did, where the default is the union of all rows), samples
``per_class`` images of each class with the seed, splits them in half stratified by label,
and writes the prepared dataset with an ingest report. Every input is accounted for:
each image id found ends up ingested or quarantined with a reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from pneumobench.core.atomic import write_text_atomic
from pneumobench.data import prepared
from pneumobench.data.dicom import DicomError, read_dicom
from pneumobench.data.prepared import MASK_ROWS, RESIZES
from pneumobench.data.rle import EMPTY, RLEError, decode_union
from pneumobench.data.synthetic import SYNTHETIC_MARKER

__all__ = [
    "MASK_ROWS",
    "RESIZES",
    "IngestError",
    "IngestReport",
    "bilinear_image",
    "check_output",
    "downsample_image",
    "downsample_mask",
    "find_csv",
    "nearest_mask",
    "prepare",
]

CSV_NAMES = ("stage_2_train.csv", "train-rle.csv")
SIIM_SHAPE = (1024, 1024)
UNSAFE_ID = re.compile(r"[/\\]|\.\.|^\s*$")


class IngestError(RuntimeError):
    """Preparation cannot go on: no CSV, an unreadable CSV, or nothing usable."""


QUARANTINE_CODES = {  # why an item was set aside; ingest-report.json and docs/data.md list them
    "unsafe-id": "a CSV ImageId with a path separator, '..' or empty",
    "duplicate-id": "several DICOM files with one image id",
    "no-csv-row": "a DICOM file without a CSV row",
    "no-dicom": "a CSV row without a DICOM file",
    "mixed-rows": "both '-1' and RLE rows for one image",
    "not-a-file": "a .dcm path that is not a regular file (a FIFO, a device, a broken link)",
    "unreadable-file": "not a DICOM file, or truncated",
    "no-pixel-data": "a DICOM file without pixel data",
    "unsupported-syntax": "a transfer syntax pneumobench does not decode",
    "not-grayscale": "more than one sample per pixel (RGB)",
    "multi-frame": "more than one frame",
    "not-monochrome": "a photometric interpretation other than MONOCHROME1/2",
    "undecodable-pixels": "pixel data that cannot be decoded",
    "not-2d": "a pixel array that is not 2-D",
    "malformed-header": "a numeric header value that is not a number",
    "wrong-size": "an image of another size than expected",
    "malformed-rle": "an RLE row that does not decode",
    "decoder-crash": "the decoding process died on this file",
    "ingest-error": "any other error while reading this file",
}


@dataclass
class IngestReport:
    """What happened to every input: counts, and a reason for each quarantined item."""

    csv_path: str = ""
    csv_rows: int = 0
    csv_images: int = 0
    dicom_files: int = 0
    found: int = 0
    ingested: int = 0
    quarantined: list[dict[str, str]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    masks_lost_to_downsampling: int = 0
    mask_rows_left_out: int = 0  # extra RLE rows of multi-row images that ``mask_rows="first"`` did not use
    sampled: dict[str, int] = field(default_factory=dict)
    shortfall: dict[str, int] = field(default_factory=dict)
    split: dict[str, int] = field(default_factory=dict)

    def quarantine(self, item: str, code: str, reason: str) -> None:
        """Set ``item`` aside: ``code`` is one of ``QUARANTINE_CODES``, ``reason`` the details."""
        if code not in QUARANTINE_CODES:
            raise ValueError(f"unknown quarantine code {code!r}")
        self.quarantined.append({"id": item, "code": code, "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary(self) -> str:
        lines = [
            f"CSV {self.csv_path}: {self.csv_rows} rows, {self.csv_images} images; {self.dicom_files} DICOM files",
            f"found {self.found} images: {self.ingested} ingested, {len(self.quarantined)} quarantined",
            f"labels of ingested: {self.labels}; masks lost to downsampling: {self.masks_lost_to_downsampling}; "
            f"RLE rows left out (first-row masks): {self.mask_rows_left_out}",
            f"sampled: {self.sampled}; split: {self.split}",
        ]
        if self.shortfall:
            lines.append(f"fewer images than requested: {self.shortfall}")
        codes: dict[str, int] = defaultdict(int)
        for entry in self.quarantined:
            codes[entry["code"]] += 1
        lines += [f"  quarantined {count}: {code} ({QUARANTINE_CODES[code]})" for code, count in sorted(codes.items())]
        return "\n".join(lines)


def find_csv(siim_dir: Path) -> Path:
    """The label CSV of a SIIM download: stage 2's if present, else stage 1's."""
    for name in CSV_NAMES:
        matches = sorted(siim_dir.rglob(name))
        if matches:
            return matches[0]
    raise IngestError(f"no label CSV ({' or '.join(CSV_NAMES)}) under {siim_dir}")


def _read_csv(path: Path, report: IngestReport) -> dict[str, list[str]]:
    """Rows grouped by image id, values stripped; unsafe ids are quarantined."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as error:
        raise IngestError(f"{path}: cannot read the CSV ({error})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = {"ImageId", "EncodedPixels"} - set(table.columns)
    if missing:
        raise IngestError(f"{path}: missing column(s) {sorted(missing)}; found {list(table.columns)}")
    report.csv_path, report.csv_rows = str(path), len(table)
    rows: dict[str, list[str]] = defaultdict(list)
    for line, (image_id, rle) in enumerate(
        zip(table["ImageId"].str.strip(), table["EncodedPixels"].str.strip()), start=2
    ):
        if UNSAFE_ID.search(image_id):
            report.quarantine(
                f"csv line {line}", "unsafe-id", f"unsafe ImageId {image_id!r} (path separator, '..' or empty)"
            )
            continue
        rows[image_id].append(rle)
    report.csv_images = len(rows)
    return dict(rows)


def _walk_dcm(root: Path) -> list[Path]:
    """Every ``*.dcm`` path under ``root``, sorted, following linked folders once each (no loop)."""
    seen: set[str] = set()
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []  # a link back to a folder already walked
            continue
        seen.add(real)
        found += [Path(folder) / name for name in files if name.endswith(".dcm")]
    return sorted(found)


def _find_dicoms(siim_dir: Path, report: IngestReport) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """One DICOM file per image id; ids with several files, or whose path is not a regular file
    (a FIFO would hang the reader), are quarantined here and returned apart so no other reason
    is given for them."""
    by_id: dict[str, list[Path]] = defaultdict(list)
    set_aside: dict[str, list[Path]] = {}
    for path in _walk_dcm(siim_dir):
        if not path.is_file():
            report.quarantine(path.stem, "not-a-file", f"{path}: not a regular file")
            set_aside[path.stem] = [path]
            continue
        by_id[path.stem].append(path)
    report.dicom_files = sum(len(paths) for paths in by_id.values())
    unique = {image_id: paths[0] for image_id, paths in by_id.items() if len(paths) == 1 and image_id not in set_aside}
    for image_id, paths in sorted(by_id.items()):
        if len(paths) > 1:
            report.quarantine(
                image_id, "duplicate-id", f"duplicate DICOM id: {len(paths)} files ({', '.join(map(str, paths))})"
            )
            set_aside[image_id] = paths
    return unique, set_aside


def downsample_image(image: np.ndarray, size: int) -> np.ndarray:
    """Exact block mean (rounded half up) when the factor is an integer, else area interpolation."""
    return np.asarray(_resize_area(Image.fromarray(image), size))


def downsample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A low-resolution pixel is positive when at least half of its area is (uint8 0/1).

    The block mean of a 0/1 image rounded half up is 1 exactly when the mean is >= 0.5.
    """
    small = np.asarray(_resize_area(Image.fromarray(mask.astype(np.uint8)), size))
    if mask.shape[0] % size or mask.shape[1] % size:  # area interpolation of 0/1 values
        area = np.asarray(_resize_area(Image.fromarray(mask.astype(np.float32)), size))
        small = (area >= 0.5).astype(np.uint8)
    return small


def bilinear_image(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize without antialiasing, pixel centres aligned (OpenCV's ``INTER_LINEAR``, which
    albumentations' ``Resize`` uses), rounded half up. At the factor 4 of 1024 -> 256 each output
    pixel is the mean of the 2x2 centre of its 4x4 block: 12 of 16 source pixels are never read."""
    rows, row_weights = _linear_taps(image.shape[0], size)
    cols, col_weights = _linear_taps(image.shape[1], size)
    data = image.astype(np.float64)
    data = data[rows[0]] * (1 - row_weights)[:, None] + data[rows[1]] * row_weights[:, None]
    data = data[:, cols[0]] * (1 - col_weights) + data[:, cols[1]] * col_weights
    return np.floor(data + 0.5).clip(0, 255).astype(np.uint8)


def _linear_taps(source: int, size: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    position = ((np.arange(size) + 0.5) * (source / size) - 0.5).clip(0, source - 1)
    low = np.floor(position).astype(int)
    return (low, np.minimum(low + 1, source - 1)), position - low


def nearest_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize (OpenCV's ``INTER_NEAREST``: source index ``floor(i * scale)``), uint8 0/1."""
    rows = (np.arange(size) * mask.shape[0]) // size
    cols = (np.arange(size) * mask.shape[1]) // size
    return mask[np.ix_(rows, cols)].astype(np.uint8)


def _resize_area(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width % size == 0 and height % size == 0:
        return image.reduce((width // size, height // size))
    return image.resize((size, size), Image.Resampling.BOX)


# id, DICOM path, RLE rows, size, expected shape, (mask rows rule, resize rule)
IngestTask = tuple[str, str, list[str], int, tuple[int, int] | None, tuple[str, str]]


def _ingest_one(task: IngestTask) -> tuple[str, Any]:
    """Worker: decode one image and its mask; return ('ok', arrays) or ('quarantined', reason)."""
    _image_id, path, rles, size, expected_shape, rules = task
    try:
        return _decode_task(path, rles, size, expected_shape, rules)
    except Exception as error:  # one file's failure, whatever it is, costs only that file
        return "quarantined", ("ingest-error", f"{path}: cannot be ingested ({type(error).__name__}: {error})")


def _decode_task(
    path: str, rles: list[str], size: int, expected_shape: tuple[int, int] | None, rules: tuple[str, str]
) -> tuple[str, Any]:
    try:
        image, _ = read_dicom(path)
    except DicomError as error:
        return "quarantined", (error.code, str(error))
    if expected_shape is not None and image.shape != tuple(expected_shape):
        return (
            "quarantined",
            (
                "wrong-size",
                f"{path}: image is {image.shape[0]}x{image.shape[1]}, expected {expected_shape[0]}x{expected_shape[1]}",
            ),
        )
    mask_rows, resize = rules
    small = bilinear_image(image, size) if resize == "bilinear" else downsample_image(image, size)
    if not rles:  # a negative: nothing to decode
        return "ok", (small, np.zeros((size, size), np.uint8))
    try:
        mask = decode_union(rles[:1] if mask_rows == "first" else rles, image.shape)
    except RLEError as error:
        return "quarantined", ("malformed-rle", f"malformed RLE: {error}")
    return "ok", (small, nearest_mask(mask, size) if resize == "bilinear" else downsample_mask(mask, size))


def _synthetic_mark(root: Path) -> dict[str, Any] | None:
    """The generator's parameters when ``root`` is a synthetic download (its marker file), else None."""
    marker = root / SYNTHETIC_MARKER
    if not marker.is_file():
        return None
    try:
        mark = json.loads(marker.read_text())
    except (OSError, ValueError) as error:
        raise IngestError(f"{marker}: unreadable synthetic-data marker ({error})") from None
    return mark if isinstance(mark, dict) else {"marker": mark}


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sample_and_split(
    labels: np.ndarray, per_class: int | None, seed: int, report: IngestReport, train_per_class: int | None = None
):
    """Pick ``per_class`` images of each class, then split each class in half with the seed (or,
    with ``train_per_class``, that many of each class to train and the rest to validate)."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label, name in ((1, "positive"), (0, "negative")):
        members = np.flatnonzero(labels == label)
        want = len(members) if per_class is None else per_class
        if want > len(members):
            report.shortfall[name] = want - len(members)
            want = len(members)
        picked = rng.choice(members, size=want, replace=False) if want else members[:0]
        report.sampled[name] = int(want)
        chosen.extend(sorted(picked.tolist()))
    chosen_arr = np.array(sorted(chosen), dtype=np.int64)
    split = np.full(len(chosen_arr), prepared.VALIDATION, np.uint8)
    total_train = len(chosen_arr) // 2 if train_per_class is None else len(chosen_arr)
    for label in (1, 0):  # positives first take the extra image of an odd class
        members = np.flatnonzero(labels[chosen_arr] == label)
        wanted = (len(members) + 1) // 2 if train_per_class is None else train_per_class
        n_train = min(len(members), wanted, total_train)
        total_train -= n_train
        split[rng.permutation(members)[:n_train]] = prepared.TRAIN
    return chosen_arr, split


def check_output(source: Path, out: Path, *, overwrite: bool) -> None:
    """Refuse, before any work, an output that would destroy input or data: the output must lie
    outside the input (not the input, not a folder holding it, not inside it), and an existing
    output is replaced only with ``overwrite`` and only if it is a prepared dataset (its manifest)."""
    source_path, out_path = source.resolve(), out.resolve()
    if out_path == source_path or out_path in source_path.parents or source_path in out_path.parents:
        relation = "is" if out_path == source_path else "holds" if out_path in source_path.parents else "is inside"
        raise IngestError(f"output {out} {relation} the input {source}: choose an output folder outside the input")
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise IngestError(f"output {out} already exists: pass --overwrite to replace a prepared dataset there")
    if not out.is_dir() or not (out / "manifest.json").is_file():
        raise IngestError(
            f"output {out} is not a prepared dataset (no manifest.json): --overwrite replaces only a prepared "
            "dataset; choose another output folder"
        )


def prepare(
    siim_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    size: int = 256,
    per_class: int | None = 2669,
    seed: int = 2019,
    csv: str | os.PathLike | None = None,
    expected_shape: tuple[int, int] | None = SIIM_SHAPE,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    mask_rows: str = "union",
    resize: str = "area",
    train_per_class: int | None = None,
) -> tuple[prepared.PreparedDataset, IngestReport]:
    """Build the paper's balanced, downsampled dataset from a SIIM-ACR download.

    ``mask_rows`` and ``resize`` choose the rules (see the module docstring); the manifest records
    them and they enter the dataset's fingerprint. ``train_per_class``: train on that many images
    of each class and validate on the rest (None: the paper's half and half), so a small run can
    be scored on more images than it trains on.

    Raises ``IngestError`` only when the CSV cannot be found or read, or when no image is
    usable; everything else that is wrong lands in the report's quarantine with a reason.
    """
    root = Path(siim_dir)
    _check_arguments(root, size, expected_shape, mask_rows, resize, train_per_class)
    check_output(root, Path(out_dir), overwrite=overwrite)
    report = IngestReport()
    csv_path = Path(csv) if csv is not None else find_csv(root)
    rows = _read_csv(csv_path, report)
    dicoms, duplicates = _find_dicoms(root, report)
    tasks, labels_by_id = _match_rows_and_files(
        rows, dicoms, duplicates, report, size, expected_shape, (mask_rows, resize)
    )
    images, masks, ids, labels = _ingest_all(tasks, labels_by_id, report, workers=workers, progress=progress)
    report.ingested = len(ids)
    label_arr = np.array(labels, dtype=np.uint8)
    report.labels = {"positive": int(label_arr.sum()), "negative": int((label_arr == 0).sum())}
    if not ids:
        raise IngestError(f"nothing usable under {root}:\n{report.summary()}")

    chosen, split = _sample_and_split(label_arr, per_class, seed, report, train_per_class)
    report.split = {
        "train": int((split == prepared.TRAIN).sum()),
        "validation": int((split == prepared.VALIDATION).sum()),
    }
    dataset = prepared.save(
        out_dir,
        images=np.stack([images[i] for i in chosen]),
        masks=np.stack([masks[i] for i in chosen]),
        labels=label_arr[chosen],
        split=split,
        ids=[ids[i] for i in chosen],
        parameters={
            "size": size,
            "per_class": per_class,
            **({"train_per_class": train_per_class} if train_per_class is not None else {}),
            "seed": seed,
            "expected_shape": expected_shape,
            "mask_rows": mask_rows,
            "resize": resize,
        },
        source={"csv": csv_path.name, "csv_sha256": _file_hash(csv_path), "dicom_files": report.dicom_files},
        overwrite=overwrite,
        synthetic=_synthetic_mark(root),
    )
    write_text_atomic(Path(out_dir) / "ingest-report.json", json.dumps(report.to_dict(), indent=2, sort_keys=True))
    return dataset, report


def _check_arguments(
    root: Path,
    size: int,
    expected_shape: tuple[int, int] | None,
    mask_rows: str,
    resize: str,
    train_per_class: int | None,
) -> None:
    if not root.is_dir():
        raise IngestError(f"{root} is not a directory")
    if train_per_class is not None and train_per_class < 1:
        raise IngestError(f"train_per_class {train_per_class}: give a positive count of images per class")
    if size < 1:
        raise IngestError(f"size {size}: give a positive side (a multiple of 32 to train)")
    if expected_shape is not None and size > min(expected_shape):
        raise IngestError(
            f"size {size} is above the source images' {expected_shape[0]}x{expected_shape[1]}: give a side from 1 "
            f"to {min(expected_shape)} (a multiple of 32 to train)"
        )
    for name, value, allowed in (("mask_rows", mask_rows, MASK_ROWS), ("resize", resize, RESIZES)):
        if value not in allowed:
            raise IngestError(f"{name} {value!r}: give one of {', '.join(allowed)}")


def _match_rows_and_files(
    rows: dict[str, list[str]],
    dicoms: dict[str, Path],
    duplicates: dict[str, list[Path]],
    report: IngestReport,
    size: int,
    expected_shape: tuple[int, int] | None,
    rules: tuple[str, str],
) -> tuple[list[IngestTask], dict[str, int]]:
    """One ingest task per id with exactly one DICOM file and consistent CSV rows, and its label;
    every other id is quarantined with the reason."""
    all_ids = sorted(set(rows) | set(dicoms) | set(duplicates))
    report.found = len(all_ids) + sum(1 for q in report.quarantined if q["id"].startswith("csv line"))
    tasks: list[IngestTask] = []
    labels_by_id: dict[str, int] = {}
    for image_id in all_ids:
        if image_id in duplicates:
            continue
        if image_id not in rows:
            report.quarantine(image_id, "no-csv-row", f"no CSV row for DICOM file {dicoms[image_id]}")
            continue
        if image_id not in dicoms:
            report.quarantine(image_id, "no-dicom", "no DICOM file for CSV row")
            continue
        values = rows[image_id]
        encoded = [v for v in values if v != EMPTY]
        if encoded and len(encoded) != len(values):
            report.quarantine(image_id, "mixed-rows", f"both '{EMPTY}' and RLE rows ({len(values)} rows)")
            continue
        labels_by_id[image_id] = int(bool(encoded))
        tasks.append((image_id, str(dicoms[image_id]), encoded, size, expected_shape, rules))
    return tasks, labels_by_id


def _ingest_all(
    tasks: list[IngestTask],
    labels_by_id: dict[str, int],
    report: IngestReport,
    *,
    workers: int | None,
    progress: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[int]]:
    """Decode and downsample every task in worker processes; failures are quarantined."""
    images, masks, ids, labels = [], [], [], []
    results = _decode_all(tasks, workers or os.cpu_count() or 1, progress)
    for task, (status, value) in zip(tasks, results):
        image_id = task[0]
        if status != "ok":
            report.quarantine(image_id, *value)
            continue
        image, mask = value
        label = labels_by_id[image_id]
        report.masks_lost_to_downsampling += int(label == 1 and not mask.any())
        report.mask_rows_left_out += max(len(task[2]) - 1, 0) if task[5][0] == "first" else 0
        images.append(image)
        masks.append(mask)
        ids.append(image_id)
        labels.append(label)
    return images, masks, ids, labels


POOL_CONTEXT: BaseContext | None = None  # the worker start method (None: the platform's default)
CHUNK = 8  # tasks a worker takes at a time


def _decode_all(tasks: list[IngestTask], workers: int, progress: bool) -> list[tuple[str, Any]]:
    """``_ingest_one`` of every task, in task order, ``workers`` processes at a time.

    A worker process that dies (a crash inside a decoder) breaks the pool: the tasks that were
    in flight are then retried one per fresh process, so the file that kills its process again
    is quarantined alone, and the rest go on in a new pool.
    """
    results: list[tuple[str, Any] | None] = [None] * len(tasks)
    pending = list(range(len(tasks)))
    with tqdm(total=len(tasks), desc="ingest", unit="img", disable=not progress) as bar:
        while pending:
            finished = 0
            try:
                with ProcessPoolExecutor(max_workers=workers, mp_context=POOL_CONTEXT) as pool:
                    for outcome in pool.map(_ingest_one, [tasks[i] for i in pending], chunksize=CHUNK):
                        results[pending[finished]] = outcome
                        finished += 1
                        bar.update(1)
            except BrokenProcessPool:
                suspects = pending[finished : finished + 2 * workers * CHUNK]
                for index in suspects:
                    results[index] = _ingest_alone(tasks[index])
                    bar.update(1)
                finished += len(suspects)
            pending = pending[finished:]
    assert all(result is not None for result in results)  # every index left `pending` with its outcome
    return cast(list[tuple[str, Any]], results)


def _ingest_alone(task: IngestTask) -> tuple[str, Any]:
    """``_ingest_one`` in a process of its own: a crash costs only this file."""
    with ProcessPoolExecutor(max_workers=1, mp_context=POOL_CONTEXT) as pool:
        try:
            return pool.submit(_ingest_one, task).result()
        except BrokenProcessPool:
            return "quarantined", ("decoder-crash", f"{task[1]}: the decoding process died on this file")
