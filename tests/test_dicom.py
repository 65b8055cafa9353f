"""DICOM reading: the transfer syntaxes SIIM and others use, photometric handling, bad files."""

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from pneumobench.data.dicom import DicomError, read_dicom, write_dicom


@pytest.fixture
def gradient():
    return np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8) * 2


def test_jpeg_baseline_decodes_close_to_the_original(tmp_path, gradient):
    path = tmp_path / "a.dcm"
    write_dicom(path, gradient, patient={"PatientSex": "F", "PatientAge": "045Y", "ViewPosition": "AP"})
    image, info = read_dicom(path)
    assert image.dtype == np.uint8 and image.shape == (64, 64)
    assert np.abs(image.astype(int) - gradient).max() <= 4  # lossy, quality 95
    assert info.transfer_syntax == "JPEG Baseline" and info.photometric == "MONOCHROME2"
    assert (info.image_id, info.sex, info.age, info.view) == ("a", "F", "045Y", "AP")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless])
def test_lossless_syntaxes_decode_exactly(tmp_path, gradient, syntax):
    path = tmp_path / "b.dcm"
    write_dicom(path, gradient, transfer_syntax=syntax)
    image, _ = read_dicom(path)
    assert np.array_equal(image, gradient)


def test_16_bit_monochrome1_is_windowed_by_min_max_and_inverted(tmp_path):
    pixels = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    path = tmp_path / "m1.dcm"
    write_dicom(path, pixels, transfer_syntax=ExplicitVRLittleEndian, photometric="MONOCHROME1")
    image, info = read_dicom(path)
    # min-max to 0..255 gives 0, 64, 128, 255; MONOCHROME1 inverts (air dark).
    assert image.tolist() == [[255, 191], [127, 0]]
    assert info.bits_stored == 16


def test_16_bit_uses_the_window_tags_when_present(tmp_path):
    pixels = np.array([[0, 100], [200, 4000]], dtype=np.uint16)
    path = tmp_path / "w.dcm"
    write_dicom(path, pixels, transfer_syntax=ExplicitVRLittleEndian)
    ds = pydicom.dcmread(path)
    ds.WindowCenter, ds.WindowWidth = 100.5, 201  # maps 0..200 onto 0..255
    ds.save_as(path)
    image, _ = read_dicom(path)
    assert image.tolist() == [[0, 128], [255, 255]]


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: write_dicom(p, np.zeros((8, 8, 3), np.uint8), transfer_syntax=ExplicitVRLittleEndian, photometric="RGB"),
         "3 samples per pixel"),
        (lambda p: write_dicom(p, np.zeros((2, 8, 8), np.uint8), transfer_syntax=ExplicitVRLittleEndian), "2 frames"),
        (lambda p: p.write_bytes(b"this is not a DICOM file"), "not a readable DICOM file"),
    ],
    ids=["rgb", "multi-frame", "not-dicom"],
)
def test_unusable_files_name_the_file_and_reason(tmp_path, make, reason):
    path = tmp_path / "bad.dcm"
    make(path)
    with pytest.raises(DicomError) as info:
        read_dicom(path)
    assert str(path) in str(info.value) and reason in str(info.value)


def test_no_pixel_data(tmp_path, gradient):
    path = tmp_path / "nopix.dcm"
    write_dicom(path, gradient, transfer_syntax=ExplicitVRLittleEndian)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(DicomError, match="no pixel data"):
        read_dicom(path)


def test_truncated_file(tmp_path, gradient):
    path = tmp_path / "cut.dcm"
    write_dicom(path, gradient)
    path.write_bytes(path.read_bytes()[:-600])
    with pytest.raises(DicomError, match=str(path)):
        read_dicom(path)
