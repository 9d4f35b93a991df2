"""DICOMweb on the API: STOW-RS in (`POST /dicomweb/studies`), WADO-RS out (the kept AI results).

STOW-RS (PS3.18 10.5): a `multipart/related; type="application/dicom"` body, one Part 10 instance
per part. Each instance goes through model_api.dicom_intake; the answer is a DICOM JSON Store
Instances Response: ReferencedSOPSequence for instances received (classified or not processed),
FailedSOPSequence with a FailureReason for the others; 200 when all were received, 202 when some
failed, 409 when all failed. A private block (creator "MLOPS-XRAY 1") says per instance what was done,
why, the decision, and the WADO-RS URL of each result.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.http import parse_options_header

from model_api import monitoring
from model_api.dicom_intake import CLASSIFIED, DEFER, FAILED, Intake, Outcome
from model_api.dicom_store import BadUid, ResultStore, check_uid
from model_api.images import ImageRejected, Limits
from model_api.routes import explain_requested  # ?explain=1: a saliency Secondary Capture beside each SR

bp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb")

DICOM_JSON = "application/dicom+json"
PRIVATE_CREATOR = "MLOPS-XRAY 1"
PRIVATE_GROUP = 0x0009
# Private elements (0009,10xx) of each response item: status, reason, decision, result URLs.
_STATUS, _REASON, _DECISION, _RESULTS = 0x01, 0x02, 0x03, 0x04
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")  # RFC 2046 5.1.1


def intake() -> Intake:
    """This app's DICOM pipeline (built on first use: results go to the monitoring store)."""
    found = current_app.extensions.get("mlops_dicom")
    if found is None:
        config = current_app.config
        settings = config["SETTINGS"]
        bundle = current_app.extensions["mlops_bundle"]
        from registry.store import open_store

        store = config.get("MONITOR_STORE") or open_store(settings.monitor_store_uri)
        limits = Limits(
            int(config["MAX_IMAGE_PIXELS"]),
            int(config["MAX_REQUEST_PIXELS"]),
            int(config["MAX_REQUEST_DECODED_BYTES"]),
        )
        results = ResultStore(store, bundle.name, settings.dicom.results_retention_days)
        found = Intake(bundle, settings.dicom, limits, int(config["MAX_BATCH"]), results)
        current_app.extensions["mlops_dicom"] = found
    return found


def log_outcomes(outcomes: list[Outcome]) -> None:
    """Log each classified instance as /predict logs a prediction (this request's id and traffic class)."""
    logged = [
        (o.finding, o.stats, o.header)
        for o in outcomes
        if o.status == CLASSIFIED and o.finding is not None and o.stats is not None and o.header is not None
    ]
    if not logged:
        return
    rows = np.array([finding.probabilities for finding, _, _ in logged], dtype=np.float64)
    inputs = monitoring.describe_inputs(
        np.stack([stats for _, stats, _ in logged]), [h for _, _, h in logged]
    )
    latency_ms = round((time.perf_counter() - g.started) * 1000, 3)
    # No image is sampled: a DICOM instance carries the patient's identity in its header.
    monitoring.record_predictions(rows, inputs, "dicomweb", latency_ms)


def split_related(body: bytes, content_type: str) -> list[bytes]:
    """The application/dicom parts of a multipart/related body; ImageRejected says what is wrong."""
    mimetype, options = parse_options_header(content_type)
    if mimetype != "multipart/related":
        raise ImageRejected(
            f"unsupported Content-Type {mimetype or 'none'!r}; STOW-RS takes "
            'multipart/related; type="application/dicom"; boundary=...',
            415,
        )
    kind = options.get("type", "application/dicom").lower()
    if kind != "application/dicom":
        raise ImageRejected(
            f'multipart/related type={kind!r} is not supported; send type="application/dicom"', 415
        )
    boundary = options.get("boundary", "")
    if not _BOUNDARY.match(boundary):
        raise ImageRejected("multipart/related needs a boundary parameter of 1 to 70 allowed characters")
    delimiter = b"--" + boundary.encode()
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ImageRejected("the multipart body is not closed by its boundary (--boundary--): truncated?")
    parts = []
    for i, chunk in enumerate(chunks[1:-1], start=1):
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ImageRejected(f"part {i} of the multipart body has no header/body separator")
        headers = dict(_header(line) for line in head.strip(b"\r\n").split(b"\r\n") if line.strip())
        part_type = parse_options_header(headers.get("content-type", "application/dicom"))[0]
        if part_type != "application/dicom":
            raise ImageRejected(f"part {i} is {part_type!r}; every part must be application/dicom", 415)
        parts.append(content[:-2] if content.endswith(b"\r\n") else content)
    if not parts:
        raise ImageRejected("the multipart body holds no instance")
    return parts


def _header(line: bytes) -> tuple[str, str]:
    name, _, value = line.decode("latin-1").partition(":")
    return name.strip().lower(), value.strip()


@bp.post("/studies")
@bp.post("/studies/<study>")
def store_instances(study: str | None = None) -> Response | tuple[Response, int]:
    """STOW-RS: classify each instance and answer with a Store Instances Response."""
    try:
        if study is not None:
            check_uid(study, "study UID in the path")
        explain = explain_requested()
        parts = split_related(request.get_data(cache=False), request.headers.get("Content-Type", ""))
        if len(parts) > int(current_app.config["MAX_BATCH"]) * 8:
            raise ImageRejected(
                f"{len(parts)} instances in one request; send at most "
                f"{int(current_app.config['MAX_BATCH']) * 8}",
                413,
            )
    except BadUid as exc:
        return jsonify(error=str(exc)), 400
    except ImageRejected as exc:
        return jsonify(error=str(exc)), exc.status
    outcomes = intake().process(parts, explain)
    metrics = current_app.extensions["mlops_metrics"]
    for outcome in outcomes:
        if outcome.finding is not None and outcome.finding.decision == DEFER:
            metrics.deferrals.labels("dicomweb", metrics.version).inc()
    if study is not None:  # PS3.18 10.5.1: an instance of another study is refused
        for outcome, data in zip(outcomes, parts, strict=True):
            if outcome.status != FAILED and not _in_study(data, study):
                outcome.status, outcome.failure_reason = FAILED, 0xA900
                outcome.reason = f"the instance is not of study {study} named in the path"
    log_outcomes(outcomes)
    failed = sum(o.status == FAILED for o in outcomes)
    status = 200 if failed == 0 else 409 if failed == len(outcomes) else 202
    body = response_dataset(outcomes, request.host_url.rstrip("/") + (bp.url_prefix or ""))
    return Response(_json(body), status=status, content_type=DICOM_JSON)


def _in_study(data: bytes, study: str) -> bool:
    import io

    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
    return str(ds.get("StudyInstanceUID", "")) == study


def response_dataset(outcomes: list[Outcome], base_url: str) -> Any:
    """The Store Instances Response (PS3.18 Table 10.5.3-1) as a pydicom Dataset."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    referenced, failed = Sequence(), Sequence()
    for outcome in outcomes:
        item = Dataset()
        item.ReferencedSOPClassUID = outcome.sop_class or "1.2.840.10008.5.1.4.1.1.7"
        item.ReferencedSOPInstanceUID = outcome.sop_instance or "0"
        block = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
        block.add_new(_STATUS, "LO", outcome.status)
        if outcome.reason:
            block.add_new(_REASON, "LT", outcome.reason[:10240])
        if outcome.status == FAILED:
            item.FailureReason = outcome.failure_reason
            failed.append(item)
            continue
        if outcome.status == CLASSIFIED and outcome.finding is not None:
            block.add_new(_DECISION, "LO", outcome.finding.decision[:64])
            urls = [f"{base_url}/studies/{a}/series/{b}/instances/{c}" for a, b, c in outcome.results]
            block.add_new(_RESULTS, "UT", "\\".join(urls))
            if urls:
                item.RetrieveURL = urls[0]  # the SR: the instance itself is not kept
        referenced.append(item)
    body = Dataset()
    if referenced:
        body.ReferencedSOPSequence = referenced
    if failed:
        body.FailedSOPSequence = failed
    return body


def _json(ds: Any) -> str:
    import json

    return json.dumps(ds.to_json_dict())


@bp.get("/studies/<study>/series/<series>/instances/<sop>")
def retrieve_instance(study: str, series: str, sop: str) -> Response | tuple[Response, int]:
    """WADO-RS: one kept result as multipart/related; type="application/dicom"."""
    try:
        for value, what in ((study, "study UID"), (series, "series UID"), (sop, "SOP instance UID")):
            check_uid(value, what)
    except BadUid as exc:
        return jsonify(error=str(exc)), 400
    accept = request.headers.get("Accept", "")
    if accept and not any(t in accept for t in ("application/dicom", "multipart/related", "*/*")):
        return jsonify(
            error=f'cannot answer Accept: {accept}; ask for multipart/related; type="application/dicom"'
        ), 406
    results = intake().results
    data = results.get(study, series, sop) if results is not None else None
    if data is None:
        days = current_app.config["SETTINGS"].dicom.results_retention_days
        return jsonify(error=f"no result {study}/{series}/{sop} here (results are kept {days:g} days)"), 404
    boundary = "mlops-xray-" + sop.replace(".", "")[-24:]
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return Response(body, status=200, content_type=content_type)
