"""DICOM instances in, AI results out: the one pipeline behind DICOMweb STOW-RS and the DIMSE Storage SCP.

For each received Part 10 instance: read the header, check its UIDs, select it by the `[dicom]`
rules (modality, image type, photometric interpretation), check it against the decode budget of
the whole request (from the headers, before any pixel is decoded), render it exactly as /predict
does (core.dicom), classify the selected instances in batches, and keep a Structured Report (and,
when asked, a non-diagnostic Grad-CAM Secondary Capture) per classified instance for WADO-RS.
Every instance gets an Outcome: classified, not processed (a rule said no, with the reason) or
failed (with a PS3.18 STOW-RS failure reason code and the reason in words).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.image_stats import describe_image
from core.settings import DicomSettings
from model_api.bundle import BadImageError, ModelBundle
from model_api.dicom_results import (
    Finding,
    ModelIdentity,
    overlay,
    saliency_capture,
    structured_report,
    to_bytes,
)
from model_api.dicom_store import BadUid, ResultStore, check_uid
from model_api.images import ImageRejected, Limits, declared_size, prepare_image

# PS3.18 Table 10.5.3-? (Store Instances Response Module, Failure Reason) codes used here.
OUT_OF_RESOURCES = 0xA700  # the decode budget (per image or per request) would be exceeded
CANNOT_UNDERSTAND = 0xC000  # not a readable DICOM instance, bad UIDs, undecodable pixel data
SOP_CLASS_NOT_SUPPORTED = 0x0122  # no image in it (a report, a plan)
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122  # pixel data this server cannot decode
PROCESSING_FAILURE = 0x0110

CLASSIFIED, NOT_PROCESSED, FAILED = "classified", "not processed", "failed"
DEFER = "defer to radiologist"  # the decision below the abstention threshold (also /predict, v2)


@dataclass
class Outcome:
    """What became of one received instance."""

    sop_class: str
    sop_instance: str
    status: str = CLASSIFIED
    reason: str = ""
    failure_reason: int | None = None
    finding: Finding | None = None
    results: list[tuple[str, str, str]] = field(default_factory=list)  # (study, series, sop) kept
    input: dict[str, Any] | None = None  # the image's statistics for the prediction log (None: explained)
    # The same as the graph returned them (a pixel_statistics row) with the header: the API's log path.
    stats: np.ndarray | None = None
    header: tuple[str, int, int] | None = None


@dataclass
class _Selected:
    """An instance that passed the rules and the budget: its header and the PNG the graph decodes."""

    outcome: Outcome
    dataset: Any
    png: bytes
    header: tuple[str, int, int]  # format, width, height


def identity(bundle: ModelBundle, settings: DicomSettings) -> ModelIdentity:
    """The served version as a device: its signed digest, or for an unregistered file its bytes' digest."""
    digest = getattr(bundle, "digest", "") or _file_digest(bundle)
    return ModelIdentity(bundle.name, str(bundle.version), digest, settings.manufacturer)


def _file_digest(bundle: ModelBundle) -> str:
    """sha256 over the model file and its manifest (a local model file has no signed digest)."""
    hasher = hashlib.sha256(bundle.model_path.read_bytes())
    hasher.update(repr(bundle.manifest.to_dict(annotations=False)).encode())
    return hasher.hexdigest()


def _read_header(data: bytes) -> Any:
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tolerated oddities, as core.dicom
        return pydicom.dcmread(io.BytesIO(data))  # pixel data read as bytes, never decoded here


def rule_problem(ds: Any, rules: DicomSettings) -> str | None:
    """Why the `[dicom]` selection rules leave this instance out, or None when they select it."""
    modality = str(ds.get("Modality", "") or "")
    if modality not in rules.modalities:
        return f"Modality {modality or 'none'} is not one this model reads ({', '.join(rules.modalities)})"
    image_type = [str(v).strip().upper() for v in (ds.get("ImageType") or [])]
    excluded = sorted(set(image_type) & {t.upper() for t in rules.image_type_excluded})
    if excluded:
        shown = "\\".join(image_type)
        return f"ImageType {shown} is {', '.join(excluded)}: not a diagnostic radiograph"
    photometric = str(ds.get("PhotometricInterpretation", "") or "")
    if photometric not in rules.photometric:
        return (
            f"PhotometricInterpretation {photometric or 'none'} is not one this model reads "
            f"({', '.join(rules.photometric)})"
        )
    return None


class Intake:
    """Classify received instances and keep their results: one per app (or SCP)."""

    def __init__(
        self,
        bundle: ModelBundle,
        rules: DicomSettings,
        limits: Limits,
        max_batch: int,
        results: ResultStore | None,
    ) -> None:
        self.bundle = bundle
        self.rules = rules
        self.limits = limits
        self.max_batch = max(1, max_batch)
        self.results = results
        self.identity = identity(bundle, rules)

    def process(self, files: list[bytes], explain: bool = False) -> list[Outcome]:
        """An Outcome per file, in order; one request's decode budget spans all of them."""
        outcomes: list[Outcome] = []
        selected: list[_Selected] = []
        pixels = decoded = 0
        for data in files:
            outcome, ds = self._check(data)
            outcomes.append(outcome)
            if outcome.status != CLASSIFIED:
                continue
            try:
                size = declared_size(data, self.limits.image_pixels, "the instance")
                more_pixels, more_bytes = pixels + size.pixels, decoded + size.decoded_bytes
                if more_pixels > self.limits.request_pixels or more_bytes > self.limits.request_bytes:
                    raise ImageRejected(
                        f"the instance ({size.width}x{size.height}) would bring this request to "
                        f"{more_pixels} decoded pixels and {more_bytes} bytes; the budget is "
                        f"{self.limits.request_pixels} pixels and {self.limits.request_bytes} bytes "
                        "(checked from the header, nothing was decoded): send fewer or smaller images",
                        413,
                    )
                # Counted before decoding, as /predict does: the budget bounds what is decoded.
                pixels, decoded = more_pixels, more_bytes
                png, header = prepare_image(data, self.limits.image_pixels, "the instance")
            except ImageRejected as exc:
                _fail(outcome, _code(exc), str(exc))
                continue
            selected.append(_Selected(outcome, ds, png, header))
        for start in range(0, len(selected), self.max_batch):
            self._classify(selected[start : start + self.max_batch], explain)
        return outcomes

    def _check(self, data: bytes) -> tuple[Outcome, Any]:
        """The instance's header, its UIDs checked, and whether the rules select it."""
        try:
            ds = _read_header(data)
        except Exception as exc:  # untrusted bytes through pydicom fail in many ways
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            return _failed("", "", CANNOT_UNDERSTAND, f"not a readable DICOM instance: {reason}"), None
        sop_class = str(ds.get("SOPClassUID", "") or "")
        sop_instance = str(ds.get("SOPInstanceUID", "") or "")
        try:
            for tag in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
                check_uid(str(ds.get(tag, "") or ""), tag)
        except BadUid as exc:
            return _failed(sop_class, sop_instance, CANNOT_UNDERSTAND, str(exc)), None
        outcome = Outcome(sop_class, sop_instance)
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            return _fail(
                outcome, SOP_CLASS_NOT_SUPPORTED, "holds no image (no Pixel Data): not a radiograph"
            ), ds
        why = rule_problem(ds, self.rules)
        if why is not None:
            outcome.status, outcome.reason = NOT_PROCESSED, why
        return outcome, ds

    def _classify(self, batch: list[_Selected], explain: bool) -> None:
        """One graph call for BATCH (one per instance when a file fails to decode), then the results."""
        images = [item.png for item in batch]
        heatmaps: list[tuple[bytes, bytes]] | None = None
        stats = None
        try:
            if explain and self.bundle.explainer is not None:
                probabilities, heat, seen = self.bundle.explain_encoded(images)
                heatmaps = list(zip(heat, seen, strict=True))
            else:
                # Statistics as /predict logs them (the graph computes them beside the classes).
                probabilities, stats = self.bundle.predict_encoded_with_stats(images)
        except BadImageError:
            if len(batch) > 1:
                for item in batch:
                    self._classify([item], explain)
                return
            _fail(batch[0].outcome, CANNOT_UNDERSTAND, "pixel data could not be decoded")
            return
        for i, item in enumerate(batch):
            row = np.asarray(probabilities[i], dtype=np.float64)
            finding = Finding(
                tuple(self.bundle.classes), tuple(float(p) for p in row), decide(self.bundle, row)
            )
            item.outcome.finding = finding
            if stats is not None:
                fmt, width, height = item.header
                item.outcome.input = describe_image(stats[i], fmt=fmt, width=width, height=height)
                item.outcome.stats, item.outcome.header = stats[i], (fmt, width, height)
            try:
                self._keep(item, finding, heatmaps[i] if heatmaps else None)
            except Exception as exc:  # a result we could not build or store fails this instance only
                _fail(
                    item.outcome,
                    PROCESSING_FAILURE,
                    f"the result could not be kept: {type(exc).__name__}: {exc}",
                )

    def _keep(self, item: _Selected, finding: Finding, heatmap: tuple[bytes, bytes] | None) -> None:
        """Build the SR (and the SC), store them, and name them on the outcome."""
        made = [structured_report(item.dataset, finding, self.identity)]
        if heatmap is not None:
            made.append(saliency_capture(item.dataset, overlay(heatmap[1], heatmap[0]), self.identity))
        for ds in made:
            uids = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
            if self.results is not None:
                self.results.put(*uids, to_bytes(ds))
            item.outcome.results.append(uids)


def decide(bundle: ModelBundle, probabilities: np.ndarray) -> str:
    """The decision for one row of probabilities: the top class, or a referral below the threshold."""
    deferral = bundle.manifest.deferral
    if deferral is not None and deferral.defers(probabilities):
        return DEFER
    return bundle.classes[int(np.argmax(probabilities))]


def _code(exc: ImageRejected) -> int:
    """The STOW-RS failure reason of a refused image (images.py answers 413 / 415 / 400)."""
    if exc.status == 413:
        return OUT_OF_RESOURCES
    if exc.status == 415:
        return TRANSFER_SYNTAX_NOT_SUPPORTED if "transfer syntax" in str(exc) else SOP_CLASS_NOT_SUPPORTED
    return CANNOT_UNDERSTAND


def _fail(outcome: Outcome, code: int, reason: str) -> Outcome:
    outcome.status, outcome.failure_reason, outcome.reason = FAILED, code, reason
    return outcome


def _failed(sop_class: str, sop_instance: str, code: int, reason: str) -> Outcome:
    return _fail(Outcome(sop_class, sop_instance), code, reason)
