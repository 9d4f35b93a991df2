"""DICOMweb against the real dicomweb-client: STOW-RS of pydicom's files, WADO-RS of the SR and SC."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from api_testlib import CLASSES, MODEL_NAME, in_thread
from dicom_files import dicom_path, flat_bomb

CR = "dicomdirtests/77654033/CR1/6154"  # CR, MONOCHROME1, 16x16, explicit little endian
CT = "CT_small.dcm"
NO_PIXELS = "rtplan.dcm"
NOT_DIAGNOSTIC = "NOT FOR DIAGNOSTIC USE"
DIGEST = hashlib.sha256(b"the signed version digest of this test").hexdigest()


def as_cr(ds: pydicom.Dataset, sop: str, **changes) -> pydicom.Dataset:
    """DS relabelled as a chest radiograph of the CR file's study, with a new SOP instance UID."""
    cr = pydicom.dcmread(dicom_path(CR))
    ds.StudyInstanceUID, ds.PatientID, ds.PatientName = cr.StudyInstanceUID, cr.PatientID, cr.PatientName
    ds.SeriesInstanceUID = cr.SeriesInstanceUID
    ds.Modality = "CR"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
    for key, value in changes.items():
        setattr(ds, key, value)
    return ds


@pytest.fixture(scope="module")
def dicomweb(bundle, tmp_path_factory) -> Iterator[str]:
    """The app on a loopback werkzeug server (a real HTTP socket), results in a local store."""
    from model_api import create_app
    from registry.store import open_store

    bundle.digest = DIGEST  # as app._load sets it from the registry's verified fetch
    store = open_store(str(tmp_path_factory.mktemp("store")))
    app = create_app(
        {
            "TESTING": True,
            "MODEL_BUNDLE": bundle,
            "MONITOR_STORE": store,
            "PREDICTION_LOG": False,
            # A budget the 6000x6000 bomb breaks, which the small test files do not.
            "MAX_REQUEST_PIXELS": 1_000_000,
        }
    )
    try:
        with in_thread(app) as url:
            yield f"{url}/dicomweb"
    finally:
        bundle.digest = ""


def instances() -> dict[str, pydicom.Dataset]:
    """CR, DX (the CR relabelled), CT, a plan, an unsupported transfer syntax and a decode bomb."""
    cr = pydicom.dcmread(dicom_path(CR))
    dx = as_cr(pydicom.dcmread(dicom_path(CR)), "1.2.3.4.5.6.7.2", Modality="DX")
    mpeg = as_cr(pydicom.dcmread(dicom_path(CR)), "1.2.3.4.5.6.7.3")
    mpeg.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder anywhere
    mpeg.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64])
    mpeg["PixelData"].VR = "OB"
    bomb = as_cr(pydicom.dcmread(io.BytesIO(flat_bomb())), "1.2.3.4.5.6.7.4")
    return {
        "cr": cr,
        "dx": dx,
        "ct": pydicom.dcmread(dicom_path(CT)),
        "plan": pydicom.dcmread(dicom_path(NO_PIXELS)),
        "mpeg": mpeg,
        "bomb": bomb,
    }


def private(item: pydicom.Dataset, element: int) -> str | None:
    block = item.private_block(0x0009, "MLOPS-XRAY 1")
    return str(block[element].value) if element in block else None


def test_stow_rs_classifies_selects_and_fails_each_with_its_reason(dicomweb):
    from dicomweb_client.api import DICOMwebClient

    sent = instances()
    client = DICOMwebClient(url=dicomweb)
    answer = client.store_instances(datasets=list(sent.values()))

    referenced = {item.ReferencedSOPInstanceUID: item for item in answer.get("ReferencedSOPSequence", [])}
    failed = {item.ReferencedSOPInstanceUID: item for item in answer.get("FailedSOPSequence", [])}
    uid = {name: str(ds.SOPInstanceUID) for name, ds in sent.items()}
    assert set(referenced) == {uid["cr"], uid["dx"], uid["ct"]}
    assert set(failed) == {uid["plan"], uid["mpeg"], uid["bomb"]}
    assert private(referenced[uid["cr"]], 0x01) == "classified"
    assert private(referenced[uid["dx"]], 0x01) == "classified"
    assert private(referenced[uid["ct"]], 0x01) == "not processed"
    assert "Modality CT" in private(referenced[uid["ct"]], 0x02)
    # PS3.18 failure reasons: SOP class not supported, transfer syntax not supported, out of resources.
    assert failed[uid["plan"]].FailureReason == 0x0122
    assert failed[uid["mpeg"]].FailureReason == 0xC122
    assert failed[uid["bomb"]].FailureReason == 0xA700
    assert "budget" in private(failed[uid["bomb"]], 0x02)


def test_the_sr_names_the_model_and_is_unverified(dicomweb):
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=dicomweb)
    source = pydicom.dcmread(dicom_path(CR))
    answer = client.store_instances(datasets=[source])
    item = answer.ReferencedSOPSequence[0]
    decision = private(item, 0x03)
    assert decision in CLASSES
    study, series, sop = item.RetrieveURL.split("/studies/")[1].split("/")[0::2]
    sr = client.retrieve_instance(study, series, sop)

    assert sr.Modality == "SR" and sr.VerificationFlag == "UNVERIFIED"
    assert (sr.PatientID, sr.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
    # The source's own equipment may come first (highdicom carries it over): the model's is ours.
    ours = [e for e in sr.ContributingEquipmentSequence if e.get("ManufacturerModelName") == MODEL_NAME]
    assert len(ours) == 1
    equipment = ours[0]
    assert equipment.Manufacturer == "mlops-xray"
    assert str(equipment.SoftwareVersions) == "7"
    assert equipment.DeviceUID == "2.25." + str(int(DIGEST[:32], 16))
    # The finding: the measurement group's qualitative evaluation named Finding.
    evaluations = [
        item
        for item in sr.ContentSequence
        for item in getattr(item, "ContentSequence", [])
        for item in getattr(item, "ContentSequence", [])
        if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodeMeaning == "Finding"
    ]
    assert [e.ConceptCodeSequence[0].CodeMeaning for e in evaluations] == [decision]
    # The source's pixels are not in the result, and never stored.
    assert "PixelData" not in sr
    assert source.SOPInstanceUID in {
        ref.ReferencedSOPInstanceUID
        for study_ref in sr.CurrentRequestedProcedureEvidenceSequence
        for series_ref in study_ref.ReferencedSeriesSequence
        for ref in series_ref.ReferencedSOPSequence
    }


def test_explain_adds_a_non_diagnostic_secondary_capture(dicomweb):
    import requests
    from dicomweb_client.api import DICOMwebClient

    source = pydicom.dcmread(dicom_path(CR))
    out = io.BytesIO()
    source.save_as(out, enforce_file_format=True)
    body = b"--b1\r\nContent-Type: application/dicom\r\n\r\n" + out.getvalue() + b"\r\n--b1--\r\n"
    answer = requests.post(
        dicomweb + "/studies?explain=1",
        data=body,
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b1'},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    item = pydicom.Dataset.from_json(answer.json()).ReferencedSOPSequence[0]
    urls = private(item, 0x04).split("\\")
    assert len(urls) == 2
    study, series, sop = urls[1].split("/studies/")[1].split("/")[0::2]
    sc = DICOMwebClient(url=dicomweb).retrieve_instance(study, series, sop)
    assert sc.BurnedInAnnotation == "YES"
    assert NOT_DIAGNOSTIC in sc.ImageComments
    device_uids = {e.get("DeviceUID") for e in sc.ContributingEquipmentSequence}
    assert "2.25." + str(int(DIGEST[:32], 16)) in device_uids
    assert sc.PatientID == source.PatientID
    # The SC holds the model-sized overlay plus its label band, not the source's 16x16 pixels.
    assert sc.pixel_array.shape[2] == 3 and sc.Rows > source.Rows


@pytest.mark.parametrize(
    "path",
    [
        "/studies/1.2.3/series/1.2.3/instances/..",
        "/studies/1.2.3/series/01.2/instances/1.2",
        "/studies/1.2.3/series/1.2/instances/1.2.x",
        "/studies/" + "1." * 40 + "1/series/1.2/instances/1.2",
    ],
)
def test_wado_rs_refuses_what_is_not_a_uid(dicomweb, path):
    import requests

    answer = requests.get(dicomweb + path, timeout=30)
    assert answer.status_code in (400, 404)
    assert "error" in answer.json()
    if ".." not in path:  # werkzeug may normalise '..' itself; every other one is ours to refuse
        assert answer.status_code == 400 and "not a DICOM UID" in answer.json()["error"]


def test_stow_rs_refuses_a_body_that_is_not_multipart_related(dicomweb):
    import requests

    answer = requests.post(
        dicomweb + "/studies", data=b"x", headers={"Content-Type": "application/dicom"}, timeout=30
    )
    assert answer.status_code == 415 and "multipart/related" in answer.json()["error"]


def test_an_unknown_result_is_404(dicomweb):
    import requests

    answer = requests.get(dicomweb + "/studies/1.2.3/series/1.2.4/instances/1.2.5", timeout=30)
    assert answer.status_code == 404


def test_result_store_forgets_results_past_retention(tmp_path: Path):
    from model_api.dicom_store import ResultStore
    from registry.store import open_store

    results = ResultStore(open_store(str(tmp_path)), MODEL_NAME, retention_days=2)
    day = 86400.0
    results.put("1.2", "1.3", "1.4", b"old", t=10 * day)
    assert results.get("1.2", "1.3", "1.4", now=11 * day) == b"old"
    assert results.get("1.2", "1.3", "1.4", now=13 * day) is None
    assert results.prune(now=13 * day) == 1
