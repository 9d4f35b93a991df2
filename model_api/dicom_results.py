"""AI results as DICOM objects that name the model (IHE AI Results): a TID 1500 SR and a Grad-CAM SC.

Both copy the patient and study of the source image, carry Contributing Equipment (manufacturer,
model name = registry model name, software version = registry version, Device UID derived from the
version's signed digest: a retrained version is a new device) and are marked UNVERIFIED: no
physician has checked them. The Secondary Capture holds the saliency overlay on the model's own
64x64..NxN input, never the source pixels, with "NOT FOR DIAGNOSTIC USE" burned in.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

NOT_DIAGNOSTIC = "NOT FOR DIAGNOSTIC USE"
# PS3.5 B.2: a UID under 2.25 is the decimal of a 128-bit number (here: the first 128 bits of a digest).
UUID_ROOT = "2.25."


@dataclass(frozen=True)
class ModelIdentity:
    """Who made a result: the served version and the device UID its signed digest gives it."""

    name: str
    version: str
    digest: str  # sha256 hex of the version (registry.chain.manifest_digest); see device_uid
    manufacturer: str

    @property
    def device_uid(self) -> str:
        """`2.25.<int of the digest's first 128 bits>`: changes whenever the model is retrained."""
        return derived_uid(self.digest)


@dataclass(frozen=True)
class Finding:
    """One classified instance: probabilities per class, the top class and the decision."""

    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    decision: str  # the label, or "defer to radiologist" below the version's threshold

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.classes[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        """The top probability."""
        return float(max(self.probabilities))


def derived_uid(hex_digest: str) -> str:
    """A DICOM UID from a sha256 hex digest (its first 32 hex digits as a 2.25 UUID-derived UID)."""
    return UUID_ROOT + str(int(hex_digest[:32], 16))


def result_uid(*parts: str) -> str:
    """A deterministic UID for a result: the same source and model give the same result UID."""
    return derived_uid(hashlib.sha256("\0".join(parts).encode()).hexdigest())


def _equipment(identity: ModelIdentity, now: datetime) -> Any:
    """Contributing Equipment naming the model (highdicom has no Device UID parameter: set it here)."""
    from highdicom.base_content import ContributingEquipment
    from pydicom.sr.codedict import codes

    item = ContributingEquipment(
        manufacturer=identity.manufacturer,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=identity.name,
        software_versions=identity.version,
        contribution_datetime=now,
        contribution_description="AI classification of the referenced image (unverified)",
    )
    item.DeviceUID = identity.device_uid
    return item


def structured_report(source: Any, finding: Finding, identity: ModelIdentity) -> Any:
    """A Comprehensive 3D SR (TID 1500 measurement report) of FINDING on SOURCE, UNVERIFIED."""
    import highdicom as hd
    from highdicom.sr import (
        AlgorithmIdentification,
        CodedConcept,
        DeviceObserverIdentifyingAttributes,
        Measurement,
        MeasurementReport,
        MeasurementsAndQualitativeEvaluations,
        ObservationContext,
        ObserverContext,
        QualitativeEvaluation,
        SourceImageForMeasurementGroup,
        TrackingIdentifier,
    )
    from pydicom.sr.codedict import codes

    now = datetime.now(UTC)
    algorithm = AlgorithmIdentification(name=identity.name, version=identity.version)
    device = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=identity.device_uid,
            name=identity.name,
            manufacturer_name=identity.manufacturer,
            model_name=f"{identity.name} {identity.version}",
        ),
    )

    def local(value: str, meaning: str) -> CodedConcept:
        # The model's classes have no standard code: a local coding scheme (99 prefix, PS3.16 8.2).
        return CodedConcept(value=value[:16], scheme_designator="99MLOPS", meaning=meaning[:64])

    measurements = [
        Measurement(
            name=local(f"P-{i}", f"Probability of {name}"),
            value=float(p),
            unit=codes.UCUM.NoUnits,
            algorithm_id=algorithm,
        )
        for i, (name, p) in enumerate(zip(finding.classes, finding.probabilities, strict=True))
    ]
    measurements.append(
        Measurement(
            name=codes.DCM.Probability,  # the top class's probability: the model's confidence
            value=finding.confidence,
            unit=codes.UCUM.NoUnits,
            algorithm_id=algorithm,
        )
    )
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=result_uid(source.SOPInstanceUID, identity.digest, "group"), identifier="AI classification"
        ),
        algorithm_id=algorithm,
        source_images=[SourceImageForMeasurementGroup.from_source_image(source)],
        measurements=measurements,
        qualitative_evaluations=[
            QualitativeEvaluation(codes.DCM.Finding, local(finding.label, finding.label)),
            QualitativeEvaluation(local("DECISION", "Decision"), local(finding.decision, finding.decision)),
        ],
    )
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=device),
        procedure_reported=CodedConcept(value="43468-8", scheme_designator="LN", meaning="XR Chest"),
        imaging_measurements=[group],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[source],
        content=report,
        series_instance_uid=result_uid(source.SeriesInstanceUID, identity.digest, "sr-series"),
        series_number=9901,
        sop_instance_uid=result_uid(source.SOPInstanceUID, identity.digest, "sr"),
        instance_number=1,
        manufacturer=identity.manufacturer,
        is_complete=True,
        is_verified=False,  # VerificationFlag UNVERIFIED: no physician has signed it
        contributing_equipment=[_equipment(identity, now)],
    )
    sr.SeriesDescription = f"AI result {identity.name} v{identity.version} (unverified)"
    return sr


def saliency_capture(source: Any, overlay_rgb: np.ndarray, identity: ModelIdentity) -> Any:
    """A Secondary Capture of the Grad-CAM overlay, NOT FOR DIAGNOSTIC USE burned in and declared."""
    import highdicom as hd

    pixels = _burn_label(overlay_rgb)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=("L", "F"),  # highdicom needs one; replaced below by what the source says
        series_instance_uid=result_uid(source.SeriesInstanceUID, identity.digest, "sc-series"),
        series_number=9902,
        sop_instance_uid=result_uid(source.SOPInstanceUID, identity.digest, "sc"),
        instance_number=1,
        manufacturer=identity.manufacturer,
        contributing_equipment=[_equipment(identity, datetime.now(UTC))],
    )
    # The overlay is the source resized, not flipped: its orientation, or empty (Type 2: unknown).
    # highdicom types PatientOrientation as list[str]; pydicom takes the string (or empty) as well.
    sc.PatientOrientation = source.get("PatientOrientation", "") or ""  # type: ignore[assignment]  # see above
    sc.BurnedInAnnotation = "YES"  # the label is in the pixels
    sc.ImageComments = f"Grad-CAM saliency map: {NOT_DIAGNOSTIC}"
    sc.DerivationDescription = f"Grad-CAM of {identity.name} v{identity.version}; {NOT_DIAGNOSTIC}"
    sc.SeriesDescription = f"AI saliency {identity.name} v{identity.version} ({NOT_DIAGNOSTIC})"
    sc.VerificationFlag = "UNVERIFIED"  # not a standard SC attribute, kept for the AI Results reader
    return sc


def overlay(input_png: bytes, heatmap_png: bytes) -> np.ndarray:
    """The model's input in gray with the heatmap blended over it, as uint8 RGB [H, W, 3]."""
    from PIL import Image

    base = Image.open(io.BytesIO(input_png)).convert("RGB")
    heat = Image.open(io.BytesIO(heatmap_png)).convert("RGB").resize(base.size)
    return np.asarray(Image.blend(base, heat, 0.45))


def _burn_label(rgb: np.ndarray) -> np.ndarray:
    """RGB with a band at the bottom saying NOT FOR DIAGNOSTIC USE (scaled up so the text is legible)."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(rgb).convert("RGB")
    scale = max(1, 256 // max(image.size))
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    band = 14
    canvas = Image.new("RGB", (image.width, image.height + band), (0, 0, 0))
    canvas.paste(image, (0, 0))
    ImageDraw.Draw(canvas).text((2, image.height + 2), NOT_DIAGNOSTIC, fill=(255, 255, 0))
    return np.asarray(canvas)


def to_bytes(dataset: Any) -> bytes:
    """A dataset as a Part 10 file."""
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()
