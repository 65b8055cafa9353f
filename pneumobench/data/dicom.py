"""Reading (and, for synthetic data and tests, writing) single-frame grayscale DICOM files.

``read_dicom`` returns the image as uint8 plus the metadata that matters. JPEG Baseline
(what SIIM-ACR ships), uncompressed and RLE Lossless pixel data decode. MONOCHROME1 is
inverted so that air is always dark. Images stored with more than 8 bits are windowed to
uint8: with the file's first WindowCenter/WindowWidth when present (the DICOM linear VOI
function), otherwise linearly from the image's own minimum to maximum.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

__all__ = ["DicomError", "DicomInfo", "read_dicom", "write_dicom"]

SUPPORTED_TRANSFER_SYNTAXES = {
    ExplicitVRLittleEndian: "explicit VR little endian",
    "1.2.840.10008.1.2": "implicit VR little endian",
    JPEGBaseline8Bit: "JPEG Baseline",
    RLELossless: "RLE Lossless",
}


class DicomError(ValueError):
    """A DICOM file that cannot be used; the message names the file and the reason, ``code`` the
    kind of reason (the ingest's quarantine groups by it)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DicomInfo:
    """The metadata pneumobench keeps from a DICOM file."""

    image_id: str
    rows: int
    columns: int
    photometric: str
    transfer_syntax: str
    bits_stored: int
    sex: str
    age: str
    view: str


def read_dicom(path: str | os.PathLike) -> tuple[np.ndarray, DicomInfo]:
    """Read one DICOM file into a (rows, columns) uint8 image and its ``DicomInfo``."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:  # pydicom raises several types for unreadable files
        raise DicomError(f"{path}: not a readable DICOM file ({error})", "unreadable-file") from None
    if "PixelData" not in ds:
        raise DicomError(f"{path}: no pixel data", "no-pixel-data")
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        raise DicomError(f"{path}: unsupported transfer syntax {syntax or 'missing'}", "unsupported-syntax")
    samples = int(_header_number(ds, "SamplesPerPixel", 1, path))
    if samples != 1:
        raise DicomError(
            f"{path}: {samples} samples per pixel ({ds.get('PhotometricInterpretation')}); expected grayscale",
            "not-grayscale",
        )
    frames = int(_header_number(ds, "NumberOfFrames", 1, path, empty_means_default=True))
    if frames != 1:
        raise DicomError(f"{path}: {frames} frames; expected a single-frame image", "multi-frame")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(
            f"{path}: photometric interpretation {photometric or 'missing'}; expected MONOCHROME1/2", "not-monochrome"
        )
    try:  # Pillow is a dependency and the fastest JPEG Baseline decoder; others by pydicom
        plugin = "pillow" if syntax == JPEGBaseline8Bit else ""
        pixels = pydicom.pixels.pixel_array(ds, decoding_plugin=plugin)
    except Exception as error:
        raise DicomError(f"{path}: pixel data cannot be decoded ({error})", "undecodable-pixels") from None
    if pixels.ndim != 2:
        raise DicomError(f"{path}: pixel array of shape {pixels.shape}; expected 2-D", "not-2d")
    bits = int(_header_number(ds, "BitsStored", 8, path))
    image = _to_uint8(pixels, ds, bits, path)
    if photometric == "MONOCHROME1":
        image = 255 - image
    info = DicomInfo(
        image_id=path.stem,
        rows=int(image.shape[0]),
        columns=int(image.shape[1]),
        photometric=photometric,
        transfer_syntax=SUPPORTED_TRANSFER_SYNTAXES[syntax],
        bits_stored=bits,
        sex=str(ds.get("PatientSex", "")),
        age=str(ds.get("PatientAge", "")),
        view=str(ds.get("ViewPosition", "")),
    )
    return image, info


def _header_number(
    ds: Dataset, keyword: str, default: float, path: Path, *, empty_means_default: bool = False
) -> float:
    """A numeric header value (the first of several), ``default`` when absent; a value that is not
    a number (``abc``, ``1A``, or empty unless ``empty_means_default``) is a ``DicomError`` naming it."""
    if keyword not in ds:
        return default
    value = ds[keyword].value
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    if value in (None, "", b"") and empty_means_default:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DicomError(f"{path}: malformed {keyword} {value!r} (not a number)", "malformed-header") from None
    if not np.isfinite(number):
        raise DicomError(f"{path}: malformed {keyword} {value!r} (not finite)", "malformed-header")
    return number


def _to_uint8(pixels: np.ndarray, ds: Dataset, bits: int, path: Path) -> np.ndarray:
    if bits <= 8 and pixels.dtype == np.uint8:
        return pixels
    values = pixels.astype(np.float32)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center = _header_number(ds, "WindowCenter", 0, path)
        width = _header_number(ds, "WindowWidth", 0, path)
        low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    else:
        low, high = float(values.min()), float(values.max())
    scaled = (values - low) / max(high - low, 1e-6) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _chest_cr_header(uid: str, patient: dict[str, str] | None) -> Dataset:
    """File meta and the identifying tags of a chest CR image (new study and series UIDs)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = UID(uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.PixelSpacing = [0.168, 0.168]
    for key, value in (patient or {}).items():
        setattr(ds, key, value)
    return ds


def _set_image_pixel_module(ds: Dataset, pixels: np.ndarray, photometric: str) -> None:
    """Samples, frames, photometric interpretation, size and bit depth of ``pixels``."""
    rgb = pixels.ndim == 3 and pixels.shape[-1] == 3 and photometric == "RGB"
    ds.SamplesPerPixel = 3 if rgb else 1
    if rgb:
        ds.PlanarConfiguration = 0
    elif pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if rgb else pixels.shape[-2:]
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0


def _set_pixel_data(ds: Dataset, pixels: np.ndarray, transfer_syntax: str, jpeg_quality: int) -> None:
    """Pixel Data in ``transfer_syntax``: JPEG Baseline (8-bit grayscale), RLE Lossless or native."""
    if transfer_syntax == JPEGBaseline8Bit:
        if pixels.dtype != np.uint8 or pixels.ndim != 2:
            raise ValueError("JPEG Baseline needs a 2-D uint8 image")
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buffer, format="JPEG", quality=jpeg_quality)
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
        return
    ds.PixelData = pixels.tobytes()
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless, encoding_plugin="pydicom")
    elif transfer_syntax != ExplicitVRLittleEndian:
        raise ValueError(f"unsupported transfer syntax {transfer_syntax}")


def write_dicom(
    path: str | os.PathLike,
    pixels: np.ndarray,
    *,
    transfer_syntax: str = JPEGBaseline8Bit,
    photometric: str = "MONOCHROME2",
    sop_instance_uid: str | None = None,
    patient: dict[str, str] | None = None,
    jpeg_quality: int = 95,
) -> str:
    """Write ``pixels`` (uint8 or uint16, 2-D; or 3-D frames/RGB for tests) as a CR DICOM file.

    ``transfer_syntax`` is JPEG Baseline (8-bit grayscale only), RLE Lossless or explicit VR
    little endian. Returns the SOP Instance UID. Used by the synthetic generator and tests.
    """
    pixels = np.ascontiguousarray(pixels)
    uid = sop_instance_uid or generate_uid()
    ds = _chest_cr_header(uid, patient)
    _set_image_pixel_module(ds, pixels, photometric)
    _set_pixel_data(ds, pixels, transfer_syntax, jpeg_quality)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return uid
