"""The optional DIMSE Storage SCP: modalities and PACS C-STORE images, the same pipeline classifies them.

`mlops serve --dicom-port N` has gunicorn's master start `python -m model_api.dimse` beside its
workers (gunicorn_conf.when_ready) and stop it with them (on_exit). It loads the very version the
workers serve (MLOPS_API_MODEL_REF, pinned by `mlops serve`), answers C-ECHO, and runs each received
instance through model_api.dicom_intake: the results are kept for WADO-RS and, when `[dicom]
destination` names an AE (`AE@host:port`), sent there by C-STORE.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

from core.errors import UsageError
from core.settings import Settings, load_settings
from model_api.dicom_intake import CLASSIFIED, FAILED, Intake, Outcome
from model_api.dicom_store import ResultStore
from model_api.images import Limits
from model_api.monitoring import prediction_record
from model_api.prediction_log import BatchWriter
from model_api.request_ids import unsigned_id
from registry.monitoring_log import DEFAULT_TRAFFIC_CLASS, write_batch
from registry.store import open_store

log = logging.getLogger("model_api.dimse")
_DESTINATION = re.compile(r"^([ -~]{1,16})@([A-Za-z0-9.\-]+):([0-9]{1,5})$")

# C-STORE statuses (PS3.4 B.2.3) for the intake's STOW-RS failure reasons.
_STATUS = {0xA700: 0xA700, 0x0122: 0xA900, 0xC122: 0xC122, 0xC000: 0xC000, 0x0110: 0xC000}


def destination(text: str) -> tuple[str, str, int] | None:
    """`AE@host:port` → (AE, host, port); None when empty; UsageError when malformed."""
    if not text:
        return None
    match = _DESTINATION.match(text)
    if not match or not 0 < int(match.group(3)) < 65536:
        raise UsageError(f"dicom.destination {text!r} is not AE@host:port (e.g. PACS@10.0.0.5:104)")
    return match.group(1).strip(), match.group(2), int(match.group(3))


def c_store_status(outcome: Outcome) -> int:
    """The C-STORE status for an outcome: success unless it failed."""
    if outcome.status != FAILED:
        return 0x0000
    return _STATUS.get(outcome.failure_reason or 0xC000, 0xC000)


def build_intake(settings: Settings, ref: str) -> Intake:
    """Load the version REF names (verified, as a worker does) and the pipeline around it."""
    from model_api.bundle import configure_threads, load_bundle
    from model_api.loading import fetch_verified

    api = settings.api
    configure_threads(api.tf_threads)
    model_path, manifest, digest = fetch_verified(settings, ref)
    bundle = load_bundle(model_path, manifest)
    bundle.digest = digest
    results = ResultStore(
        open_store(settings.monitor_store_uri), bundle.name, settings.dicom.results_retention_days
    )
    limits = Limits(api.max_image_pixels, api.max_request_pixels, api.max_request_decoded_bytes)
    return Intake(bundle, settings.dicom, limits, api.max_batch, results)


def prediction_writer(settings: Settings, intake: Intake) -> BatchWriter | None:
    """The prediction log's writer, as the API's (None when `monitor.log_predictions` is off)."""
    monitor = settings.monitor
    if not monitor.log_predictions:
        return None
    store = open_store(settings.monitor_store_uri)
    name = intake.bundle.name
    return BatchWriter(
        "predictions",
        lambda batch: write_batch(store, name, "predictions", batch),
        batch_size=monitor.log_batch_size,
        flush_interval_s=monitor.log_flush_interval_s,
        queue_size=monitor.log_queue_size,
    )


def log_outcome(predictions: BatchWriter, intake: Intake, outcome: Outcome, latency_ms: float) -> None:
    """Log a classified instance as the API logs a prediction: production traffic (DIMSE has no traffic
    token), a fresh request id; no image is sampled (its header names the patient)."""
    if outcome.status != CLASSIFIED or outcome.finding is None or outcome.input is None:
        return
    row = np.asarray(outcome.finding.probabilities, dtype=np.float64)
    predictions.put(
        prediction_record(
            intake.bundle,
            row,
            outcome.input,
            unsigned_id(),
            "dimse",
            DEFAULT_TRAFFIC_CLASS,
            latency_ms,
            time.time(),
        )
    )


def make_ae(
    settings: Settings, intake: Intake, predictions: BatchWriter | None = None
) -> tuple[Any, list[Any]]:
    """The application entity (every storage SOP class, and verification) and its event handlers."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # made at import time

    ae = AE(ae_title=settings.dicom.ae_title)
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)
    send_to = destination(settings.dicom.destination)

    def on_store(event: Any) -> int:
        started = time.perf_counter()
        outcome = intake.process([event.encoded_dataset()])[0]
        if predictions is not None:
            log_outcome(predictions, intake, outcome, round((time.perf_counter() - started) * 1000, 3))
        log.info(
            "C-STORE %s from %s: %s %s",
            outcome.sop_instance,
            event.assoc.requestor.ae_title,
            outcome.status,
            outcome.reason,
        )
        if send_to is not None and outcome.results:
            try:
                _send(settings, send_to, intake, outcome)
            except Exception:  # the instance was received and classified; only forwarding failed
                log.exception(
                    "results of %s not sent to %s", outcome.sop_instance, settings.dicom.destination
                )
        return c_store_status(outcome)

    return ae, [(evt.EVT_C_STORE, on_store), (evt.EVT_C_ECHO, lambda event: 0x0000)]


def _send(settings: Settings, send_to: tuple[str, str, int], intake: Intake, outcome: Outcome) -> None:
    """C-STORE the outcome's results to the destination AE (a failure is logged; the results stay kept)."""
    import io

    import pydicom
    from pynetdicom import AE

    found = [intake.results.get(*uids) for uids in outcome.results] if intake.results is not None else []
    datasets = [pydicom.dcmread(io.BytesIO(data)) for data in found if data is not None]
    if not datasets:
        return
    ae = AE(ae_title=settings.dicom.ae_title)
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):  # SR (Comprehensive 3D), SC
        ae.add_requested_context(sop_class)
    title, host, port = send_to
    assoc = ae.associate(host, port, ae_title=title)
    if not assoc.is_established:
        log.warning("results of %s not sent: no association with %s@%s:%d", outcome.sop_instance, *send_to)
        return
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            log.info("sent %s to %s: status 0x%04X", ds.SOPInstanceUID, title, getattr(status, "Status", -1))
    finally:
        assoc.release()


def main() -> int:
    """Serve C-STORE/C-ECHO on dicom.port until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dimse %(levelname)s %(message)s")
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # a line per copied module otherwise
    settings = load_settings()
    port = settings.dicom.port
    if port <= 0:
        print("mlops-dimse: dicom.port (MLOPS_DICOM_PORT) is 0; nothing to serve", file=sys.stderr)
        return 2
    intake = build_intake(settings, settings.api.model_ref)
    predictions = prediction_writer(settings, intake)
    ae, handlers = make_ae(settings, intake, predictions)
    server = ae.start_server((settings.api.host, port), block=False, evt_handlers=handlers)
    log.info("Storage SCP %s on %s:%d", settings.dicom.ae_title, settings.api.host, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        if predictions is not None:
            lost = predictions.close(settings.monitor.log_shutdown_timeout_s)
            if lost:
                log.warning("prediction log: %d records lost at shutdown", lost)
    return 0


if __name__ == "__main__":
    sys.exit(main())
