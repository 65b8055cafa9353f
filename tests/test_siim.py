"""SIIM ingest: the synthetic round trip, every bad input, accounting, prepared-dataset checks."""

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from pneumobench.cli import main as cli_main
from pneumobench.data import prepared, siim
from pneumobench.data.cache import synthetic_dataset
from pneumobench.data.dicom import read_dicom, write_dicom
from pneumobench.data.rle import encode
from pneumobench.data.siim import IngestError, downsample_mask, prepare
from pneumobench.data.synthetic import iter_cases, write_siim
from pneumobench.experiment.config import SyntheticSpec

SMALL = (64, 64)


def square_mask(top=8, size=16):
    mask = np.zeros(SMALL, bool)
    mask[top : top + size, 8:24] = True
    return mask


class SiimTree:
    """Builds a small SIIM-layout download: 64x64 DICOMs and a stage-2 CSV."""

    def __init__(self, root):
        self.root = root
        self.rows = []

    def dicom(self, image_id, pixels=None, subdir="s", **kwargs):
        path = self.root / "dicom-images-train" / subdir / "series" / f"{image_id}.dcm"
        pixels = np.full(SMALL, 100, np.uint8) if pixels is None else pixels
        write_dicom(path, pixels, transfer_syntax=ExplicitVRLittleEndian, **kwargs)
        return path

    def row(self, image_id, rle):
        self.rows.append((image_id, rle))

    def image(self, image_id, mask=None):
        self.dicom(image_id)
        self.row(image_id, "-1" if mask is None else encode(mask))

    def write_csv(self, header="ImageId,EncodedPixels"):
        lines = [header] + [f"{image_id},{rle}" for image_id, rle in self.rows]
        (self.root / "stage_2_train.csv").write_text("\n".join(lines) + "\n")

    def prepare(self, out=None, **kwargs):
        self.write_csv()
        kwargs = {"size": 32, "per_class": None, "expected_shape": SMALL, "progress": False, "workers": 1, **kwargs}
        return prepare(self.root, out or self.root.parent / "prepared", **kwargs)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "siim").mkdir()
    return SiimTree(tmp_path / "siim")


def reasons(report):
    return {entry["id"]: entry["reason"] for entry in report.quarantined}


def test_synthetic_round_trip_gives_the_drawn_masks(tmp_path):
    write_siim(tmp_path / "raw", n_positive=4, n_negative=3, seed=5, csv_style="stage1")
    dataset, report = prepare(tmp_path / "raw", tmp_path / "out", size=256, per_class=None, progress=False)
    assert report.ingested == 7 and not report.quarantined
    drawn = dict(iter_cases(4, 3, seed=5))
    assert sorted(drawn) == sorted(dataset.ids)
    for index, image_id in enumerate(dataset.ids):
        case = drawn[image_id]
        assert np.array_equal(dataset.masks[index], downsample_mask(case.mask, 256))
        assert dataset.labels[index] == bool(case.regions)
        # JPEG is lossy, block averaging 4x4 removes most of the error.
        small = case.image.reshape(256, 4, 256, 4).mean(axis=(1, 3))
        assert np.abs(dataset.images[index].astype(float) - small).mean() < 2.0


def test_positives_with_two_regions_have_two_rows(tmp_path):
    csv_path = write_siim(tmp_path / "raw", n_positive=12, n_negative=0, seed=1)
    drawn = dict(iter_cases(12, 0, seed=1))
    rows = csv_path.read_text().splitlines()[1:]
    assert len(rows) == sum(len(c.regions) for c in drawn.values())
    assert any(len(c.regions) == 2 for c in drawn.values())


def test_stage1_and_stage2_csvs_have_their_published_headers(tmp_path):
    stage1 = write_siim(tmp_path / "a", n_positive=1, n_negative=1, seed=0, csv_style="stage1")
    stage2 = write_siim(tmp_path / "b", n_positive=1, n_negative=1, seed=0, csv_style="stage2")
    assert stage1.name == "train-rle.csv" and stage1.read_text().startswith("ImageId, EncodedPixels\n")
    assert ", -1" in stage1.read_text()
    assert stage2.name == "stage_2_train.csv" and stage2.read_text().startswith("ImageId,EncodedPixels\n")


def test_union_of_rows_and_downsampling_rule(tree):
    upper, lower = square_mask(top=4, size=8), square_mask(top=30, size=10)
    tree.dicom("two")
    tree.row("two", encode(upper))
    tree.row("two", encode(lower))
    tree.image("neg")
    dataset, report = tree.prepare()
    index = dataset.ids.index("two")
    expected = (upper | lower).reshape(32, 2, 32, 2).mean(axis=(1, 3)) >= 0.5
    assert np.array_equal(dataset.masks[index], expected)
    assert report.labels == {"positive": 1, "negative": 1}


def test_small_mask_keeps_its_label_and_is_counted(tree):
    speck = np.zeros(SMALL, bool)
    speck[10, 10] = True  # one pixel: a quarter of a 2x2 block, lost at 32x32
    tree.image("speck", speck)
    tree.image("neg")
    dataset, report = tree.prepare()
    index = dataset.ids.index("speck")
    assert dataset.labels[index] == 1 and not dataset.masks[index].any()
    assert report.masks_lost_to_downsampling == 1


def test_every_bad_input_is_quarantined_with_a_reason_and_accounted_for(tree):
    tree.image("good_pos", square_mask())
    tree.image("good_neg")
    tree.dicom("truncated")
    path = tree.root / "dicom-images-train" / "s" / "series" / "truncated.dcm"
    path.write_bytes(path.read_bytes()[:-1000])  # cut inside the pixel data
    tree.row("truncated", "-1")
    (tree.root / "dicom-images-train" / "fake.dcm").write_text("not dicom")
    tree.row("fake", "-1")
    tree.dicom("rgb", np.zeros((64, 64, 3), np.uint8), photometric="RGB")
    tree.row("rgb", "-1")
    tree.dicom("mono1", np.full(SMALL, 4000, np.uint16), photometric="MONOCHROME1")
    tree.row("mono1", "-1")
    tree.dicom("wrong_size", np.zeros((48, 48), np.uint8))
    tree.row("wrong_size", "-1")
    tree.image("bad_rle")
    tree.rows[-1] = ("bad_rle", "1 2 3")
    tree.image("past_end")
    tree.rows[-1] = ("past_end", "4000 200")
    tree.image("mixed", square_mask())
    tree.row("mixed", "-1")
    tree.row("../etc/passwd", "-1")
    tree.row("a/b", "-1")
    tree.row("row_only", "-1")
    tree.dicom("file_only")
    tree.dicom("dup", subdir="one")
    tree.dicom("dup", subdir="two")
    tree.row("dup", "-1")
    tree.image("huge_rle")
    tree.rows[-1] = ("huge_rle", "9223372036854775000 9223372036854775000")  # once a segfault
    for image_id, (keyword, value, _) in MALFORMED_HEADERS.items():  # once a traceback that stopped the ingest
        header_path = tree.dicom(image_id, np.full(SMALL, 1000, np.uint16) if keyword == "WindowCenter" else None)
        tree.row(image_id, "-1")
        if keyword == "WindowCenter":
            _with_header_value(header_path, "WindowWidth", "400")
        _with_header_value(header_path, keyword, value)
    os.mkfifo(tree.root / "dicom-images-train" / "pipe.dcm")  # once a hang
    tree.row("pipe", "-1")

    dataset, report = tree.prepare()
    why = reasons(report)
    assert "larger than any image" in why["huge_rle"]
    assert all(reason in why[image_id] for image_id, (_, _, reason) in MALFORMED_HEADERS.items())
    assert why["pipe"].endswith("pipe.dcm: not a regular file")
    assert "truncated.dcm: pixel data cannot be decoded" in why["truncated"]
    assert "fake.dcm" in why["fake"] and "not a readable DICOM file" in why["fake"]
    assert "3 samples per pixel" in why["rgb"]
    assert "image is 48x48, expected 64x64" in why["wrong_size"]
    assert "malformed RLE" in why["bad_rle"] and "odd number of tokens" in why["bad_rle"]
    assert "past the image end" in why["past_end"]
    assert "both '-1' and RLE rows" in why["mixed"]
    assert "unsafe ImageId '../etc/passwd'" in why["csv line 13"]
    assert "unsafe ImageId 'a/b'" in why["csv line 14"]
    assert why["row_only"] == "no DICOM file for CSV row"
    assert "no CSV row for DICOM file" in why["file_only"]
    assert "duplicate DICOM id: 2 files" in why["dup"]
    assert sorted(dataset.ids) == ["good_neg", "good_pos", "mono1"]  # 16-bit MONOCHROME1 is valid
    assert report.ingested + len(report.quarantined) == report.found
    saved = json.loads((tree.root.parent / "prepared" / "ingest-report.json").read_text())
    assert saved["quarantined"] == report.quarantined and saved["found"] == report.found


def test_csv_without_needed_columns(tree):
    tree.image("a")
    tree.write_csv(header="Image,Pixels")
    with pytest.raises(IngestError, match=r"missing column\(s\) \['EncodedPixels', 'ImageId'\]"):
        prepare(tree.root, tree.root.parent / "out", progress=False)


def test_no_csv_and_nothing_usable(tree, capsys):
    tree.dicom("a")
    with pytest.raises(IngestError, match="no label CSV"):
        prepare(tree.root, tree.root.parent / "out", progress=False)
    tree.row("a", "1 2 3")
    tree.write_csv()
    assert cli_main(["data", "prepare", str(tree.root), str(tree.root.parent / "out"), "--quiet"]) == 2
    assert "nothing usable" in capsys.readouterr().err


def test_sampling_and_stratified_split(tree):
    for i in range(7):
        tree.image(f"p{i}", square_mask())
    for i in range(9):
        tree.image(f"n{i}")
    dataset, report = tree.prepare(per_class=5, seed=3)
    assert report.sampled == {"positive": 5, "negative": 5}
    counts = dataset.manifest["counts"]
    assert counts["train_positive"] + counts["train_negative"] == 5
    assert {counts["train_positive"], counts["validation_positive"]} == {2, 3}
    assert {counts["train_negative"], counts["validation_negative"]} == {2, 3}
    again, _ = tree.prepare(out=tree.root.parent / "again", per_class=5, seed=3)
    assert again.fingerprint == dataset.fingerprint  # the seed fixes sample and split
    other, _ = tree.prepare(out=tree.root.parent / "other", per_class=5, seed=4)
    assert other.fingerprint != dataset.fingerprint
    short, report = tree.prepare(out=tree.root.parent / "short", per_class=8)
    assert report.shortfall == {"positive": 1} and report.sampled == {"positive": 7, "negative": 8}


def test_train_per_class_trains_that_many_and_validates_the_rest(tree):
    for i in range(7):
        tree.image(f"p{i}", square_mask())
    for i in range(9):
        tree.image(f"n{i}")
    dataset, report = tree.prepare(per_class=6, seed=3, train_per_class=2)
    counts = dataset.manifest["counts"]
    assert (counts["train_positive"], counts["train_negative"]) == (2, 2)
    assert (counts["validation_positive"], counts["validation_negative"]) == (4, 4)
    assert report.split == {"train": 4, "validation": 8}
    assert dataset.manifest["parameters"]["train_per_class"] == 2
    with pytest.raises(IngestError, match="train_per_class 0: give a positive count"):
        tree.prepare(out=tree.root.parent / "none", train_per_class=0)


@pytest.fixture
def small_prepared(tree):
    tree.image("p", square_mask())
    tree.image("n")
    dataset, _ = tree.prepare()
    return dataset.path


def test_tampered_or_truncated_dataset_is_refused(small_prepared):
    images = small_prepared / "images.npy"
    original = images.read_bytes()
    images.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(prepared.DatasetError, match="contents changed since preparation"):
        prepared.load(small_prepared)
    images.write_bytes(original[:-100])
    with pytest.raises(prepared.DatasetError, match="truncated or corrupt"):
        prepared.load(small_prepared)
    images.write_bytes(b"")  # once a bare EOFError
    with pytest.raises(prepared.DatasetError, match="truncated or corrupt"):
        prepared.load(small_prepared)
    images.write_bytes(original)
    manifest = small_prepared / "manifest.json"
    original_manifest = manifest.read_text()
    manifest.write_text("[1, 2]")  # JSON, but not a manifest
    with pytest.raises(prepared.DatasetError, match="not a manifest of format 1 or 2"):
        prepared.load(small_prepared)
    manifest.write_text(original_manifest)
    images.unlink()
    with pytest.raises(prepared.DatasetError, match="images.npy is missing"):
        prepared.load(small_prepared)


def test_existing_output_is_not_overwritten_silently(tree, small_prepared):
    with pytest.raises(IngestError, match="already exists: pass --overwrite"):
        tree.prepare(out=small_prepared)
    dataset, _ = tree.prepare(out=small_prepared, overwrite=True)
    assert dataset.path == small_prepared
    assert not [p for p in small_prepared.parent.iterdir() if ".tmp-" in p.name]


def test_cli_synth_then_prepare(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "out"
    assert cli_main(["data", "synth", str(raw), "--positive", "3", "--negative", "3", "--quiet"]) == 0
    assert cli_main(["data", "prepare", str(raw), str(out), "--size", "64", "--per-class", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "6 ingested, 0 quarantined" in printed and "prepared dataset" in printed
    dataset = prepared.load(out)
    assert dataset.images.shape == (4, 64, 64) and dataset.manifest["parameters"]["per_class"] == 2


def test_cached_synthetic_dataset_is_reused_and_safe_under_concurrency(tmp_path):
    env = {**os.environ, "PNEUMOBENCH_CACHE": str(tmp_path)}
    code = (
        "from pneumobench.experiment.config import SyntheticSpec; from pneumobench.data.cache import synthetic_dataset;"
        "print(synthetic_dataset(SyntheticSpec(n_positive=3, n_negative=3, size=32)).fingerprint)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate()[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outputs[0] == outputs[1] != ""
    datasets = tmp_path / "datasets"
    assert len([p for p in datasets.iterdir() if p.is_dir()]) == 1  # no leftover raw or temp dirs
    os.environ["PNEUMOBENCH_CACHE"], previous = str(tmp_path), os.environ.get("PNEUMOBENCH_CACHE")
    try:
        assert synthetic_dataset(SyntheticSpec(n_positive=3, n_negative=3, size=32)).fingerprint == outputs[0]
    finally:
        if previous is None:
            del os.environ["PNEUMOBENCH_CACHE"]
        else:
            os.environ["PNEUMOBENCH_CACHE"] = previous


def _with_header_value(path, keyword, value):
    """Rewrite one header element of ``path`` with a raw (unvalidated) value, as broken archives hold."""
    import pydicom
    from pydicom.dataelem import RawDataElement

    dataset = pydicom.dcmread(path)
    tag = pydicom.datadict.tag_for_keyword(keyword)
    vr = pydicom.datadict.dictionary_VR(tag)
    raw = value.encode()
    dataset[tag] = RawDataElement(pydicom.tag.Tag(tag), vr, len(raw), raw, 0, True, True)
    dataset.save_as(path)


MALFORMED_HEADERS = {
    "frames-abc": ("NumberOfFrames", "abc", "malformed NumberOfFrames 'abc' (not a number)"),
    "frames-1a": ("NumberOfFrames", "1A", "malformed NumberOfFrames '1A' (not a number)"),
    "samples-empty": ("SamplesPerPixel", "", "malformed SamplesPerPixel"),
    "window-abc": ("WindowCenter", "abc", "malformed WindowCenter 'abc' (not a number)"),
}


def test_a_malformed_header_value_quarantines_its_file_and_the_ingest_goes_on(tree):
    """Once a traceback that stopped the whole ingest with no report."""
    tree.image("good-1")
    tree.image("good-2", square_mask())
    for image_id, (keyword, value, _) in MALFORMED_HEADERS.items():
        pixels = np.full(SMALL, 1000, np.uint16) if keyword == "WindowCenter" else None  # 16 bits: windowed
        path = tree.dicom(image_id, pixels)
        tree.row(image_id, "-1")
        if keyword == "WindowCenter":
            _with_header_value(path, "WindowWidth", "400")
        _with_header_value(path, keyword, value)
    dataset, report = tree.prepare()
    assert sorted(dataset.ids) == ["good-1", "good-2"]
    found = reasons(report)
    assert sorted(found) == sorted(MALFORMED_HEADERS)
    for image_id, (_, _, reason) in MALFORMED_HEADERS.items():
        assert reason in found[image_id] and str(tree.root) in found[image_id]


def _dies_on_marked_files(path, *args, **kwargs):
    if "crash" in str(path):
        os._exit(3)  # a decoder crash kills the whole worker process
    return read_dicom(path, *args, **kwargs)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_that_dies_on_a_file_costs_only_that_file(tree, monkeypatch, workers):
    monkeypatch.setattr(siim, "POOL_CONTEXT", multiprocessing.get_context("fork"))  # workers inherit the patch
    monkeypatch.setattr(siim, "read_dicom", _dies_on_marked_files)
    good = [f"good-{i:02d}" for i in range(40)]
    for image_id in good:
        tree.image(image_id)
    for image_id in ("crash-a", "crash-b"):
        tree.image(image_id)
    dataset, report = tree.prepare(workers=workers)
    assert sorted(dataset.ids) == good
    assert reasons(report) == {
        image_id: f"{tree.root}/dicom-images-train/s/series/{image_id}.dcm: the decoding process died on this file"
        for image_id in ("crash-a", "crash-b")
    }


def test_synth_then_prepare_is_marked_synthetic_and_real_layout_data_is_not(tmp_path, tree):
    """Once `data synth` + `data prepare` gave an unmarked dataset: a --pb-data session on it failed
    CONTRADICTED claims as if they were evidence about the paper."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    assert cli_main(["data", "synth", str(raw), "--positive", "2", "--negative", "2", "--seed", "3", "--quiet"]) == 0
    assert cli_main(["data", "prepare", str(raw), str(out), "--size", "32", "--all", "--quiet"]) == 0
    dataset = prepared.load(out)
    assert dataset.synthetic
    assert dataset.manifest["synthetic"] == {"generator": 2, "n_positive": 2, "n_negative": 2, "seed": 3,
                                             "difficulty": 0.5}
    tree.image("a")
    tree.image("b", square_mask())
    real_layout, _ = tree.prepare()
    assert not real_layout.synthetic


@pytest.mark.parametrize(
    "edit",
    [
        lambda manifest: manifest["counts"].update(images=999),
        lambda manifest: manifest["parameters"].update(per_class=7),
        lambda manifest: manifest.pop("synthetic"),
        lambda manifest: manifest.update(synthetic={"generator": 2}),
        lambda manifest: manifest.update(size=64),
    ],
    ids=["counts", "parameters", "synthetic-removed", "synthetic-changed", "size"],
)
def test_an_edited_manifest_field_is_detected(tmp_path, edit):
    """Once only the arrays and ids were covered: edits to counts, parameters or the mark went unnoticed."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_siim(raw, n_positive=2, n_negative=2, seed=0)
    prepare(raw, out, size=32, per_class=None, progress=False)
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(prepared.DatasetError, match="the manifest was edited since preparation"):
        prepared.load(out, verify=False)


def test_a_fifo_is_quarantined_and_linked_folders_are_followed_once(tree, tmp_path):
    """Once a FIFO named *.dcm hung the ingest and files under a linked folder were skipped."""
    tree.image("plain")
    elsewhere = tmp_path / "elsewhere"
    linked = SiimTree(elsewhere)
    linked.dicom("linked")
    tree.row("linked", "-1")
    (tree.root / "dicom-images-train" / "more").symlink_to(elsewhere / "dicom-images-train", target_is_directory=True)
    (elsewhere / "dicom-images-train" / "loop").symlink_to(tree.root, target_is_directory=True)  # a cycle
    fifo = tree.root / "dicom-images-train" / "s" / "series" / "pipe.dcm"
    os.mkfifo(fifo)
    tree.row("pipe", "-1")
    dataset, report = tree.prepare()
    assert sorted(dataset.ids) == ["linked", "plain"]
    assert report.quarantined == [{"id": "pipe", "code": "not-a-file", "reason": f"{fifo}: not a regular file"}]


def test_quarantine_reasons_carry_a_code_and_the_summary_groups_by_it(tree):
    tree.image("good")
    for image_id in ("orphan-1", "orphan-2"):
        tree.dicom(image_id)  # no CSV row
    tree.row("ghost", "-1")  # no DICOM file
    tree.dicom("bad-rle")
    tree.row("bad-rle", "1 2 3")
    _, report = tree.prepare()
    assert sorted((q["id"], q["code"]) for q in report.quarantined) == [
        ("bad-rle", "malformed-rle"), ("ghost", "no-dicom"), ("orphan-1", "no-csv-row"), ("orphan-2", "no-csv-row")]
    summary = report.summary()
    assert "  quarantined 2: no-csv-row (a DICOM file without a CSV row)" in summary
    assert "  quarantined 1: no-dicom (a CSV row without a DICOM file)" in summary
    saved = json.loads((tree.root.parent / "prepared" / "ingest-report.json").read_text())
    assert {q["code"] for q in saved["quarantined"]} == {"malformed-rle", "no-dicom", "no-csv-row"}
    with pytest.raises(ValueError, match="unknown quarantine code"):
        report.quarantine("x", "made-up", "")


def test_the_data_docs_list_every_quarantine_code():
    readme = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    assert all(f"| `{code}` | {text} |" in readme for code, text in siim.QUARANTINE_CODES.items())


def _round_half_up(values):
    return np.floor(values + 0.5).astype(np.uint8)


def test_bilinear_resize_at_factor_four_is_the_mean_of_each_blocks_centre():
    image = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    expected = np.array(
        [[_round_half_up(np.mean(image[4 * r + 1 : 4 * r + 3, 4 * c + 1 : 4 * c + 3])) for c in range(2)] for r in range(2)]
    )
    assert np.array_equal(siim.bilinear_image(image, 2), expected)


@pytest.mark.parametrize(("source", "size"), [(1024, 256), (100, 48), (37, 32)])
def test_bilinear_and_nearest_resize_match_torch_without_antialiasing(source, size):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(source)
    image = rng.integers(0, 256, (source, source), dtype=np.uint8)
    reference = F.interpolate(
        torch.from_numpy(image).double()[None, None], size=(size, size), mode="bilinear", align_corners=False, antialias=False
    )[0, 0].numpy()
    assert np.array_equal(siim.bilinear_image(image, size), _round_half_up(reference))
    mask = rng.random((source, source)) < 0.3
    nearest = F.interpolate(torch.from_numpy(mask).float()[None, None], size=(size, size), mode="nearest")[0, 0].numpy()
    assert np.array_equal(siim.nearest_mask(mask, size), nearest.astype(np.uint8))


def test_first_row_masks_drop_exactly_the_extra_rows_and_count_them(tree):
    upper, lower = square_mask(top=4, size=8), square_mask(top=40, size=8)
    tree.dicom("two")
    tree.row("two", encode(upper))
    tree.row("two", encode(lower))
    tree.image("one", square_mask(top=20))
    tree.image("neg")
    union, union_report = tree.prepare(out=tree.root.parent / "union")
    first, first_report = tree.prepare(out=tree.root.parent / "first", mask_rows="first")
    two = union.ids.index("two")
    assert np.array_equal(union.masks[two], downsample_mask(upper | lower, 32))
    assert np.array_equal(first.masks[first.ids.index("two")], downsample_mask(upper, 32))
    for image_id in ("one", "neg"):
        assert np.array_equal(union.masks[union.ids.index(image_id)], first.masks[first.ids.index(image_id)])
    assert (union_report.mask_rows_left_out, first_report.mask_rows_left_out) == (0, 1)
    assert "RLE rows left out (first-row masks): 1" in first_report.summary()
    assert union.preparation == {"mask_rows": "union", "resize": "area"}
    assert first.preparation == {"mask_rows": "first", "resize": "area"}


def test_the_rules_enter_the_fingerprint_and_default_rules_keep_the_old_one(tree):
    tree.image("one", square_mask(top=20))
    tree.image("neg")
    default, _ = tree.prepare(out=tree.root.parent / "default")
    first, _ = tree.prepare(out=tree.root.parent / "first", mask_rows="first")  # the same arrays: one row each
    bilinear, _ = tree.prepare(out=tree.root.parent / "bilinear", resize="bilinear")
    assert np.array_equal(default.masks, first.masks) and np.array_equal(default.images, first.images)
    assert len({default.fingerprint, first.fingerprint, bilinear.fingerprint}) == 3
    arrays = (default.images, default.masks, default.labels, default.split, list(default.ids))
    assert default.fingerprint == prepared.fingerprint(*arrays)  # what the format computed before the rules
    assert prepared.load(first.path).fingerprint == first.fingerprint  # verified on load with its rules
    with pytest.raises(IngestError, match="resize 'cubic': give one of area, bilinear"):
        tree.prepare(out=tree.root.parent / "x", resize="cubic")


def test_cli_prepare_takes_the_authors_rules(tmp_path, capsys):
    write_siim(tmp_path / "raw", n_positive=2, n_negative=2, seed=3)
    out = tmp_path / "authors"
    args = ["data", "prepare", str(tmp_path / "raw"), str(out), "--size", "32", "--all", "--quiet", "--workers", "1"]
    assert cli_main([*args, "--mask-rows", "first", "--resize", "bilinear"]) == 0
    assert prepared.load(out).preparation == {"mask_rows": "first", "resize": "bilinear"}
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*args, "--resize", "cubic"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cubic'" in capsys.readouterr().err
