"""Per-subgroup scores of the test split: where a model does worse for some patients or views.

Subgroups come from two places:
- DICOM tags, when the test files are DICOM: PatientSex (M/F/O), PatientAge as an age band
  (<18, 18-39, 40-64, >=65) and ViewPosition (PA, AP, LL, ...). A missing or empty tag puts the
  image in no group for that attribute.
- Dataset folders named `<key>=<value>` anywhere under a class folder, e.g. `COVID/sex=F/x.png` or
  `Normal/images/view=AP/y.png` (key: lower-case letters, digits, `_`; value: letters, digits, `._-`).
  Other folder names (the Kaggle layout's `images/`) make no subgroup.

Each subgroup gets its size, accuracy and per-class recall with support; under `min_support`
images no score is given ("too few images"): a handful of cases says nothing about a group.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from registry.manifest import SubgroupMetrics

MIN_SUPPORT = 30  # images a subgroup needs before its scores are shown
AGE_BANDS = ((18, "<18"), (40, "18-39"), (65, "40-64"))  # upper bounds (exclusive); the rest ">=65"
_FOLDER = re.compile(r"^([a-z][a-z0-9_]{0,31})=([A-Za-z0-9._-]{1,64})$")
_AGE = re.compile(r"^([0-9]{3})([DWMY])$")
_DAYS_PER = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}


def age_band(text: str) -> str | None:
    """A DICOM age string (AS: `045Y`, `006M`, `012W`, `030D`) as its band; None when unreadable."""
    match = _AGE.match(text.strip().upper())
    if not match:
        return None
    years = int(match.group(1)) * _DAYS_PER[match.group(2)] / 365.25
    for bound, band in AGE_BANDS:
        if years < bound:
            return band
    return ">=65"


def dicom_groups(path: Path) -> dict[str, str]:
    """The subgroups a DICOM file's tags put it in (empty for other files)."""
    import pydicom

    with path.open("rb") as handle:
        head = handle.read(132)
    if head[128:132] != b"DICM":
        return {}
    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["PatientSex", "PatientAge", "ViewPosition"]
        )
    except Exception:  # an unreadable header: the image simply joins no tag subgroup
        return {}
    out = {}
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    if sex in ("M", "F", "O"):
        out["sex"] = sex
    band = age_band(str(ds.get("PatientAge", "") or ""))
    if band is not None:
        out["age band"] = band
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    if re.fullmatch(r"[A-Z ]{1,16}", view):
        out["view position"] = view
    return out


def folder_groups(relative: str) -> dict[str, str]:
    """The `<key>=<value>` folders of a dataset-relative path."""
    out = {}
    for part in Path(relative).parts[:-1]:
        match = _FOLDER.match(part)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def subgroup_metrics(
    files: Sequence[Path],
    relative: Sequence[str],
    labels: Sequence[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
    min_support: int = MIN_SUPPORT,
) -> tuple[SubgroupMetrics, ...]:
    """The scores of every subgroup of the test split (files, their dataset paths, true labels, rows)."""
    predicted = [classes[int(i)] for i in np.asarray(probabilities).argmax(axis=1)] if len(files) else []
    members: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, (path, rel) in enumerate(zip(files, relative, strict=True)):
        for source, groups in (("dicom", dicom_groups(path)), ("folder", folder_groups(rel))):
            for attribute, value in groups.items():
                members[(source, attribute, value)].append(i)
    out = []
    for (source, attribute, value), rows in sorted(members.items()):
        n = len(rows)
        if n < min_support:
            out.append(SubgroupMetrics(attribute, value, n, min_support, source))
            continue
        support = {c: sum(labels[i] == c for i in rows) for c in classes}
        recall = {
            c: (sum(labels[i] == c and predicted[i] == c for i in rows) / support[c] if support[c] else None)
            for c in classes
        }
        accuracy = sum(labels[i] == predicted[i] for i in rows) / n
        out.append(SubgroupMetrics(attribute, value, n, min_support, source, accuracy, recall, support))
    return tuple(out)
