"""Deferral in the API: below the version's threshold /predict, v2 and DICOMweb defer to a radiologist."""

from __future__ import annotations

import dataclasses
import io

import pydicom
import pytest
from api_testlib import CLASSES, image_bytes
from dicom_files import dicom_path

from registry.manifest import Deferral

DEFER = "defer to radiologist"


def app_with(bundle, tmp_path, threshold: float | None, **config):
    """The app serving BUNDLE with a deferral threshold in its manifest (None: the version has none)."""
    from model_api import create_app
    from registry.store import open_store

    deferral = None if threshold is None else Deferral(threshold, 0.98, 0.5, 0.98, 100)
    served = dataclasses.replace(bundle, manifest=bundle.manifest.evolve(deferral=deferral))
    return create_app(
        {
            "TESTING": True,
            "MODEL_BUNDLE": served,
            "PREDICTION_LOG": False,
            "MONITOR_STORE": open_store(str(tmp_path)),
            **config,
        }
    )


def stow_body(*datasets: pydicom.Dataset) -> bytes:
    """A STOW-RS multipart/related body (boundary b) of DATASETS as Part 10 files."""
    body = b""
    for ds in datasets:
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        body += b"--b\r\nContent-Type: application/dicom\r\n\r\n" + out.getvalue() + b"\r\n"
    return body + b"--b--\r\n"


def deferrals(client, source: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith("mlops_api_deferrals_total{") and f'source="{source}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize(("threshold", "deferred"), [(1.01, True), (0.0, False), (None, False)])
def test_predict_says_defer_below_the_threshold(bundle, tmp_path, threshold, deferred):
    client = app_with(bundle, tmp_path, threshold).test_client()
    answer = client.post("/predict", data=image_bytes(), content_type="image/png")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["label"] in CLASSES and set(body["probabilities"]) == set(CLASSES)  # still shown
    assert body["decision"] == (DEFER if deferred else body["label"])
    assert deferrals(client, "predict") == (1.0 if deferred else 0.0)


def test_v2_carries_the_decisions(bundle, tmp_path):
    import base64

    client = app_with(bundle, tmp_path, 1.01).test_client()
    data = [base64.b64encode(image_bytes(seed=s)).decode() for s in (1, 2)]
    request = {"inputs": [{"name": "images", "shape": [2], "datatype": "BYTES", "data": data}]}
    answer = client.post(f"/v2/models/{bundle.name}/infer", json=request)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["parameters"]["decisions"] == [DEFER, DEFER]
    assert deferrals(client, "v2") == 2.0


def test_the_dicom_result_defers_too(bundle, tmp_path):
    client = app_with(bundle, tmp_path, 1.01).test_client()
    out = io.BytesIO()
    pydicom.dcmread(dicom_path("dicomdirtests/77654033/CR1/6154")).save_as(out, enforce_file_format=True)
    body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + out.getvalue() + b"\r\n--b--\r\n"
    answer = client.post(
        "/dicomweb/studies", data=body, content_type='multipart/related; type="application/dicom"; boundary=b'
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    item = pydicom.Dataset.from_json(answer.get_json(force=True)).ReferencedSOPSequence[0]
    assert item.private_block(0x0009, "MLOPS-XRAY 1")[0x03].value == DEFER
    url = item.RetrieveURL.split("/dicomweb", 1)[1]
    sr_part = client.get("/dicomweb" + url).get_data()
    sr = pydicom.dcmread(io.BytesIO(sr_part[sr_part.index(b"\r\n\r\n") + 4 :]))
    meanings = {
        c.ConceptCodeSequence[0].CodeMeaning
        for g in sr.ContentSequence
        for m in getattr(g, "ContentSequence", [])
        for c in getattr(m, "ContentSequence", [])
        if c.ValueType == "CODE"
    }
    assert DEFER in meanings
    assert deferrals(client, "dicomweb") == 1.0


def test_model_card_is_served_or_said_missing(bundle, tmp_path):
    import shutil

    from model_api import create_app

    plain = create_app({"TESTING": True, "MODEL_BUNDLE": bundle, "PREDICTION_LOG": False}).test_client()
    missing = plain.get("/model/card")
    assert missing.status_code == 404 and "no model card" in missing.get_json()["error"]
    folder = tmp_path / "version"
    folder.mkdir()
    shutil.copy(bundle.model_path, folder / "model.keras")
    (folder / "model_card.md").write_text("# Model card: test\n## Intended use\ntriage\n")
    served = dataclasses.replace(bundle, model_path=folder / "model.keras")
    client = create_app({"TESTING": True, "MODEL_BUNDLE": served, "PREDICTION_LOG": False}).test_client()
    answer = client.get("/model/card")
    assert answer.status_code == 200 and answer.mimetype == "text/markdown"
    assert answer.get_data(as_text=True) == "# Model card: test\n## Intended use\ntriage\n"


@pytest.mark.parametrize("threshold", [1.01, 0.0])
def test_stow_rs_and_predict_are_logged_alike_saying_whether_they_deferred(bundle, tmp_path, threshold):
    from core.settings import load_settings
    from registry.monitoring_log import read_records
    from registry.store import open_store

    settings = load_settings(overrides={"monitor.log_flush_interval_s": 0.1})
    app = app_with(bundle, tmp_path, threshold, PREDICTION_LOG=True, SETTINGS=settings, TRAFFIC_TOKEN="t0k")
    client = app.test_client()
    predicted = client.post("/predict", data=image_bytes(), content_type="image/png")
    cr = pydicom.dcmread(dicom_path("dicomdirtests/77654033/CR1/6154"))
    ct = pydicom.dcmread(dicom_path("CT_small.dcm"))  # received, not processed: no prediction to log
    related = 'multipart/related; type="application/dicom"; boundary=b'
    stored = client.post("/dicomweb/studies", data=stow_body(cr, ct), content_type=related)
    smoke = client.post(
        "/dicomweb/studies",
        data=stow_body(cr),
        content_type=related,
        headers={"X-MLOps-Traffic-Class": "smoke", "Authorization": "Bearer t0k"},
    )
    assert predicted.status_code == stored.status_code == smoke.status_code == 200, stored.get_data()
    app.extensions["mlops_monitoring"].close()

    logged = {r["id"]: r for r in read_records(open_store(str(tmp_path)), bundle.name, "predictions", 0, 2e9)}
    stow_id, smoke_id = stored.headers["X-Request-Id"], smoke.headers["X-Request-Id"]
    assert set(logged) == {predicted.get_json()["request_id"], stow_id, smoke_id}
    record, plain = logged[stow_id], logged[predicted.get_json()["request_id"]]
    assert (record["endpoint"], record["traffic_class"]) == ("dicomweb", "production")
    assert logged[smoke_id]["traffic_class"] == "smoke"
    assert set(record) == set(plain) and set(record["input"]) == set(plain["input"])  # the same shape
    assert (record["input"]["format"], record["input"]["width"], record["input"]["height"]) == (
        "DICOM",
        16,
        16,
    )
    # A threshold above 1 defers everything, 0 nothing: the log says so for every endpoint.
    assert {r["deferred"] for r in logged.values()} == {threshold > 1}
