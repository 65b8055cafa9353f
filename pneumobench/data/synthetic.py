"""Synthetic chest radiographs in the exact SIIM-ACR file format.

Each image has a body outline, two lungs with vessel-like texture, ribs, a mediastinum
and heart, and noise. A positive image has one or two pneumothorax-like regions: a
peripheral, apical part of a lung where the lung texture is missing (air), edged by a thin
bright pleural line along the collapsed lung; each region is one CSV row. Files are
written as SIIM ships them: 1024x1024 8-bit MONOCHROME2 JPEG Baseline DICOM under
``dicom-images-train/<study>/<series>/<SOPInstanceUID>.dcm`` and a CSV with relative RLE.

``difficulty`` (0 easy .. 1 hard) lowers the contrast of the regions, shrinks them and
raises the noise; the default suits the smoke profile (models learn, Dice stays well
below 1). Everything is drawn from one seed, so a dataset is reproducible.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from pneumobench.data.dicom import write_dicom
from pneumobench.data.rle import EMPTY, encode

__all__ = [
    "GENERATOR_VERSION",
    "SYNTHETIC_MARKER",
    "SyntheticCase",
    "draw_case",
    "iter_cases",
    "write_prepared",
    "write_siim",
]

GENERATOR_VERSION = 2  # 2: the download carries SYNTHETIC_MARKER (the images are unchanged)
SYNTHETIC_MARKER = "pneumobench-synthetic.json"  # in a download's root: its images were drawn, not acquired
SIZE = 1024


@dataclass
class SyntheticCase:
    """One drawn image: pixels, one mask per pneumothorax region, and patient tags."""

    image: np.ndarray  # (SIZE, SIZE) uint8
    regions: list[np.ndarray]  # boolean masks, disjoint
    patient: dict[str, str]

    @property
    def mask(self) -> np.ndarray:
        union = np.zeros(self.image.shape, bool)
        for region in self.regions:
            union |= region
        return union


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Band-limited noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    fine = ndimage.zoom(coarse, size / cells, order=1, prefilter=False)
    return fine / max(np.abs(fine).max(), 1e-6)


def _ellipse(y: np.ndarray, x: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2


def draw_case(rng: np.random.Generator, positive: bool, *, difficulty: float = 0.5, size: int = SIZE) -> SyntheticCase:
    """Draw one chest-radiograph-like image, with pneumothorax regions when ``positive``.

    Anatomy and regions are drawn at half resolution and upscaled 2x (pixel replication);
    the noise is drawn at full resolution.
    """
    if size % 2:
        raise ValueError(f"size must be even, got {size}")
    case = _draw_half(rng, positive, difficulty, size // 2)
    image = np.repeat(np.repeat(case.image, 2, axis=0), 2, axis=1).astype(np.float32)
    image += (0.03 + 0.07 * difficulty) * 255 * rng.standard_normal(image.shape, dtype=np.float32)
    regions = [np.repeat(np.repeat(r, 2, axis=0), 2, axis=1) for r in case.regions]
    return SyntheticCase(np.clip(image, 0, 255).astype(np.uint8), regions, case.patient)


def _draw_half(rng: np.random.Generator, positive: bool, difficulty: float, size: int) -> SyntheticCase:
    y, x = np.mgrid[-1 : 1 : complex(0, size), -1 : 1 : complex(0, size)].astype(np.float32)

    def jitter(scale: float) -> float:
        return float(rng.uniform(-scale, scale))

    body = _ellipse(y, x, 0.1 + jitter(0.03), jitter(0.03), 1.05, 0.88 + jitter(0.04)) <= 1
    image = np.where(body, 0.62, 0.08).astype(np.float32)

    lungs = []
    for side in (-1, 1):
        cy, cx = -0.08 + jitter(0.04), side * (0.38 + jitter(0.03))
        ry, rx = 0.62 + jitter(0.05), 0.24 + jitter(0.03)
        lungs.append((cy, cx, ry, rx, _ellipse(y, x, cy, cx, ry, rx) <= 1))
    lung_any = lungs[0][4] | lungs[1][4]
    texture = 0.07 * _smooth_noise(rng, size, 48) + 0.04 * _smooth_noise(rng, size, 12)
    image = np.where(lung_any, 0.26 + texture, image)

    ribs = np.sin(2 * np.pi * (y * (6.5 + jitter(0.5)) + 0.9 * x**2 + jitter(1))) > 0.55
    image += np.where(ribs & body, 0.09, 0.0).astype(np.float32)
    mediastinum = (np.abs(x - jitter(0.03)) < 0.13) & (y > -0.75) & body
    heart = _ellipse(y, x, 0.42 + jitter(0.04), -0.12 + jitter(0.04), 0.3, 0.3) <= 1
    image = np.where(mediastinum | (heart & body), 0.72, image)

    regions: list[np.ndarray] = []
    if positive:
        sides = [int(rng.integers(2))] if rng.random() < 0.7 else [0, 1]
        contrast = 0.16 * (1 - difficulty) + 0.03
        for side in sides:
            cy, cx, ry, rx, lung = lungs[side]
            outward = -1 if side == 0 else 1
            shrink = rng.uniform(0.55, 0.8) + 0.15 * difficulty
            inner = _ellipse(
                y, x, cy + ry * (1 - shrink) * 0.8, cx - outward * rx * (1 - shrink) * 0.6, ry * shrink, rx * shrink
            )
            region = lung & (inner > 1) & (y < cy + ry * rng.uniform(0.0, 0.5))
            if region.sum() < (size // 64) ** 2:
                continue
            line = lung & (inner > 1) & (inner < 1 + 0.06 * (1 - 0.5 * difficulty)) & (y < cy + ry * 0.5)
            image = np.where(region, 0.26 - contrast + 0.015 * texture, image)
            image = np.where(line, image + 0.25 * (1 - 0.6 * difficulty), image)
            regions.append(region)
        if not regions:  # the drawn regions were too small: draw again rather than mislabel
            return _draw_half(rng, positive, difficulty, size)

    pixels = np.clip(image * 255, 0, 255).astype(np.uint8)
    patient = {
        "PatientID": f"synthetic-{int(rng.integers(10**9)):09d}",
        "PatientSex": "M" if rng.random() < 0.55 else "F",
        "PatientAge": f"{int(rng.integers(18, 90)):03d}Y",
        "ViewPosition": "PA" if rng.random() < 0.6 else "AP",
    }
    return SyntheticCase(pixels, regions, patient)


def iter_cases(
    n_positive: int, n_negative: int, *, seed: int = 0, difficulty: float = 0.5, size: int = SIZE
) -> Iterator[tuple[str, SyntheticCase]]:
    """The (image id, case) pairs of a synthetic download, in file order, from ``seed``."""
    rng = np.random.default_rng(seed)
    labels = np.array([True] * n_positive + [False] * n_negative)
    rng.shuffle(labels)
    for index, positive in enumerate(labels):
        yield (
            f"1.2.276.0.7230010.3.1.4.{seed}.{index}",
            draw_case(rng, bool(positive), difficulty=difficulty, size=size),
        )


def write_siim(
    out_dir: str | os.PathLike,
    *,
    n_positive: int,
    n_negative: int,
    seed: int = 0,
    difficulty: float = 0.5,
    csv_style: str = "stage2",
    progress: bool = False,
) -> Path:
    """Write a synthetic SIIM-ACR download to ``out_dir`` and return the CSV's path.

    ``csv_style="stage1"`` writes ``train-rle.csv`` with the header ``ImageId, EncodedPixels``
    and values ``' -1'``; ``"stage2"`` writes ``stage_2_train.csv`` (``ImageId,EncodedPixels``).
    """
    if csv_style not in ("stage1", "stage2"):
        raise ValueError(f"csv_style must be 'stage1' or 'stage2', got {csv_style!r}")
    out = Path(out_dir)
    rows: list[tuple[str, str]] = []
    cases = iter_cases(n_positive, n_negative, seed=seed, difficulty=difficulty)
    for image_id, case in tqdm(
        cases, total=n_positive + n_negative, desc="synthesize", unit="img", disable=not progress
    ):
        study, series = f"{image_id}.1", f"{image_id}.2"
        path = out / "dicom-images-train" / study / series / f"{image_id}.dcm"
        write_dicom(path, case.image, sop_instance_uid=image_id, patient=case.patient)
        rows.extend((image_id, encode(region)) for region in case.regions)
        if not case.regions:
            rows.append((image_id, EMPTY))
    if csv_style == "stage1":
        csv_path, header, empty = out / "train-rle.csv", ["ImageId", " EncodedPixels"], " -1"
    else:
        csv_path, header, empty = out / "stage_2_train.csv", ["ImageId", "EncodedPixels"], EMPTY
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for image_id, rle in rows:
            writer.writerow([image_id, empty if rle == EMPTY else (" " + rle if csv_style == "stage1" else rle)])
    marker = {
        "generator": GENERATOR_VERSION,
        "n_positive": n_positive,
        "n_negative": n_negative,
        "seed": seed,
        "difficulty": difficulty,
    }
    (out / SYNTHETIC_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return csv_path


def write_prepared(
    out_dir: str | os.PathLike,
    *,
    n_positive: int,
    n_negative: int,
    size: int,
    seed: int = 0,
    difficulty: float = 0.5,
    validation_fraction: float = 0.2,
    progress: bool = False,
):
    """A prepared dataset drawn straight at ``size`` (no DICOM round trip): a quick stand-in of
    the paper's data shape for throughput and timing checks. Split per class by ``seed``."""
    from pneumobench.data import prepared

    cases = list(
        tqdm(
            iter_cases(n_positive, n_negative, seed=seed, difficulty=difficulty, size=size),
            total=n_positive + n_negative,
            desc="synthesize",
            unit="img",
            disable=not progress,
        )
    )
    labels = np.array([bool(case.regions) for _, case in cases], np.uint8)
    split = np.full(len(cases), prepared.TRAIN, np.uint8)
    rng = np.random.default_rng(seed)
    for label in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == label))
        split[members[: round(validation_fraction * len(members))]] = prepared.VALIDATION
    parameters = {
        "n_positive": n_positive,
        "n_negative": n_negative,
        "size": size,
        "seed": seed,
        "difficulty": difficulty,
        "validation_fraction": validation_fraction,
    }
    prepared.save(
        out_dir,
        images=np.stack([case.image for _, case in cases]),
        masks=np.stack([case.mask for _, case in cases]).astype(np.uint8),
        labels=labels,
        split=split,
        ids=[image_id for image_id, _ in cases],
        parameters=parameters,
        source={"generator": GENERATOR_VERSION, "drawn_at": size},
        overwrite=True,
        synthetic={"generator": GENERATOR_VERSION, **parameters},
    )
    return prepared.load(out_dir, verify=False)
