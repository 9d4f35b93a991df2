"""Per-subgroup scores of the test split (DICOM tags, `<key>=<value>` folders), in the card and report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest
from html_text import table_rows
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from core.settings import GateSettings, load_settings
from registry.manifest import Manifest
from training.evaluate import compute_metrics
from training.gate import decide
from training.model_card import render
from training.report import write_report
from training.subgroups import age_band, subgroup_metrics

CLASSES = ["A", "B"]


def dicom_file(path: Path, **tags: str) -> Path:
    """A tiny 4x4 DICOM radiograph with TAGS (PatientSex, PatientAge, ViewPosition)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "DX", 4, 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(range(16))
    for key, value in tags.items():
        setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def test_split(tmp_path):
    """40 DICOM images: men (30Y) and women (70Y), PA and AP views, 5 of each class per group; the
    labels of the women's AP images are swapped (mislabelled), so the model is wrong on all 10.
    One more image, a lateral (LL) of unknown sex and age, is a subgroup too small to score."""
    files, relative, labels, rows = [], [], [], []
    for sex, age in (("M", "030Y"), ("F", "070Y")):
        for view in ("PA", "AP"):
            for i in range(10):
                truth = CLASSES[i % 2]
                rel = f"{truth}/images/{sex}{view}{i}.dcm"
                files.append(dicom_file(tmp_path / rel, PatientSex=sex, PatientAge=age, ViewPosition=view))
                relative.append(rel)
                wrong = sex == "F" and view == "AP"
                labels.append(CLASSES[(i + 1) % 2] if wrong else truth)
                rows.append([0.9, 0.1] if truth == "A" else [0.2, 0.8])  # the model sees the truth
    files.append(dicom_file(tmp_path / "A/images/lateral.dcm", ViewPosition="LL"))
    relative.append("A/images/lateral.dcm")
    labels.append("A")
    rows.append([0.7, 0.3])
    return files, relative, labels, np.array(rows)


def test_a_mislabelled_subgroup_scores_worse_and_a_small_one_is_not_scored(test_split):
    groups = subgroup_metrics(*test_split, CLASSES, min_support=10)
    found = {(g.attribute, g.value): g for g in groups}
    assert set(found) == {
        ("sex", "M"), ("sex", "F"), ("age band", "18-39"), ("age band", ">=65"),
        ("view position", "PA"), ("view position", "AP"), ("view position", "LL"),
    }  # fmt: skip
    assert all(g.source == "dicom" for g in groups)  # the Kaggle layout's images/ folder is no subgroup
    # Men: 20 right. Women: their 10 PA right, their 10 AP wrong (5 A, 5 B): 0.5, each class 5 of 10.
    men, women = found[("sex", "M")], found[("sex", "F")]
    assert (men.n, men.accuracy, dict(men.recall), dict(men.support)) == (
        20,
        1.0,
        {"A": 1.0, "B": 1.0},
        {"A": 10, "B": 10},
    )
    assert (women.n, women.accuracy, dict(women.recall)) == (20, 0.5, {"A": 0.5, "B": 0.5})
    assert found[("age band", ">=65")].accuracy == 0.5 and found[("age band", "18-39")].accuracy == 1.0
    # PA: 20 right. AP: the men's 10 right, the women's 10 wrong.
    assert found[("view position", "PA")].accuracy == 1.0 and found[("view position", "AP")].accuracy == 0.5
    lateral = found[("view position", "LL")]
    assert lateral.n == 1 and lateral.too_few and lateral.accuracy is None and not lateral.recall


def test_folders_named_key_value_are_subgroups(tmp_path):
    relative = ["A/site=north/1.png", "B/site=north/2.png", "A/images/site=south/3.png", "B/images/4.png"]
    files = []
    for rel in relative:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"\x89PNG\r\n\x1a\n")  # not DICOM: no tag subgroups
        files.append(tmp_path / rel)
    rows = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])  # the B at north is wrong
    groups = subgroup_metrics(files, relative, ["A", "B", "A", "B"], rows, CLASSES, min_support=1)
    found = {(g.source, g.attribute, g.value): g for g in groups}
    assert set(found) == {("folder", "site", "north"), ("folder", "site", "south")}
    north = found[("folder", "site", "north")]
    assert (north.n, north.accuracy, dict(north.recall)) == (2, 0.5, {"A": 1.0, "B": 0.0})
    assert dict(found[("folder", "site", "south")].recall) == {"A": 1.0, "B": None}  # no B there


@pytest.mark.parametrize(
    ("text", "band"),
    [("017Y", "<18"), ("018Y", "18-39"), ("039Y", "18-39"), ("040Y", "40-64"), ("065Y", ">=65"),
     ("006M", "<18"), ("030D", "<18"), ("45", None), ("", None)],
)  # fmt: skip
def test_age_bands(text, band):
    assert age_band(text) == band


def test_the_card_and_the_report_show_them_and_the_manifest_keeps_them(test_split, tmp_path):
    groups = subgroup_metrics(*test_split, CLASSES, min_support=10)
    labels = test_split[2]
    predicted = [CLASSES[i] for i in test_split[3].argmax(axis=1)]
    metrics = compute_metrics(labels, predicted, CLASSES)
    manifest = Manifest.from_dict(
        {"name": "xray-classifier", "params": {"mode": "train"}, "metrics": metrics,
         "gate": decide(metrics, GateSettings(), None)}
    )  # fmt: skip
    manifest = manifest.evolve(metrics=dataclasses.replace(manifest.metrics, subgroups=groups))
    again = Manifest.from_dict(manifest.to_dict())
    assert again.metrics.subgroups == groups
    card = render(again, load_settings())
    assert "| sex = F | dicom | 20 | 50.0% | 50.0% (10) | 50.0% (10) |" in card
    assert "| view position = LL | dicom | 1 | too few images (< 10) |" in card
    page = write_report(
        tmp_path, again, {"loss": [1.0], "val_loss": [1.0], "accuracy": [0.5], "val_accuracy": [0.5]}
    )
    rows = {row[0]: row for row in table_rows(page.read_text(), "subgroups")}
    assert rows["sex = M"][1:] == ["dicom", "20", "1.000", "1.000 (10)", "1.000 (10)"]
    assert rows["view position = AP"][3] == "0.500"
    assert rows["view position = LL"][3] == "too few images (< 10)"
