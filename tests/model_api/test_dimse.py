"""The DIMSE Storage SCP against dcmtk's storescu / echoscu: accepted, classified, the SR kept."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from api_testlib import MODEL_NAME
from dicom_files import dicom_path

from core.processes import free_port, terminate

CR = "dicomdirtests/77654033/CR1/6154"
# Loads TensorFlow in a second process (~20 s): slow.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """dcmtk's storescp: the destination AE the results are sent to; yields (port, its folder)."""
    folder = tmp_path_factory.mktemp("pacs")
    port = free_port()
    assert shutil.which("storescp"), "storescp is missing: install Debian's dcmtk (scripts/bootstrap.sh test)"
    process = subprocess.Popen(
        ["storescp", "-aet", "PACS", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port, folder
    finally:
        terminate(process, 10)


@pytest.fixture(scope="module")
def scp(model_dir: Path, tmp_path_factory, pacs):
    """`python -m model_api.dimse` on a free loopback port, results in a local store and sent to PACS."""
    folder = tmp_path_factory.mktemp("dimse")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(
        MLOPS_HOME=str(folder / ".mlops"),
        MLOPS_DICOM_PORT=str(port),
        MLOPS_API_MODEL_REF=str(model_dir / "model.keras"),
        MLOPS_MONITOR_STORE=str(folder / "store"),
        MLOPS_API_TF_THREADS="1",
        MLOPS_DICOM_DESTINATION=f"PACS@127.0.0.1:{pacs[0]}",
        MLOPS_MONITOR_LOG_FLUSH_INTERVAL_S="0.2",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    log = (folder / "scp.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "model_api.dimse"], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while b"Storage SCP" not in (folder / "scp.log").read_bytes():
            assert process.poll() is None, (folder / "scp.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the SCP did not start in 120 s"
            time.sleep(0.3)
        yield port, folder
    finally:
        terminate(process, 10)
        log.close()


def dcmtk(*args: str) -> subprocess.CompletedProcess:
    """Run a dcmtk tool (an independent DICOM implementation, not ours)."""
    assert shutil.which(args[0]), f"{args[0]} is missing: install Debian's dcmtk (scripts/bootstrap.sh test)"
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def test_echoscu_is_answered(scp):
    port, _ = scp
    done = dcmtk("echoscu", "-aec", "MLOPS-XRAY", "127.0.0.1", str(port))
    assert done.returncode == 0, done.stderr


def test_storescu_image_is_classified_and_its_sr_kept_and_sent(scp, pacs):
    from model_api.dicom_store import ResultStore
    from registry.store import open_store

    port, folder = scp
    done = dcmtk("storescu", "-aec", "MLOPS-XRAY", "127.0.0.1", str(port), str(dicom_path(CR)))
    assert done.returncode == 0, done.stderr
    store = open_store(str(folder / "store"))
    keys = store.list(f"monitoring/{MODEL_NAME}/dicom-results/")
    assert len(keys) == 1, keys
    sr = pydicom.dcmread(io.BytesIO(store.read(keys[0])))
    source = pydicom.dcmread(dicom_path(CR))
    assert sr.Modality == "SR" and sr.VerificationFlag == "UNVERIFIED"
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    # What WADO-RS serves: the same object found by its UIDs.
    results = ResultStore(store, MODEL_NAME, 7)
    found = results.get(sr.StudyInstanceUID, sr.SeriesInstanceUID, sr.SOPInstanceUID)
    assert found == store.read(keys[0])
    # And sent to the destination AE (dcmtk's storescp wrote what it received).
    received = [pydicom.dcmread(path) for path in pacs[1].iterdir() if path.is_file()]
    assert [ds.SOPInstanceUID for ds in received] == [sr.SOPInstanceUID]
    # And logged as /predict logs a prediction, so `mlops monitor` sees it: production traffic.
    from polling import wait_for

    from registry.monitoring_log import read_records

    def logged() -> list[dict]:
        return list(read_records(store, MODEL_NAME, "predictions", 0, time.time() + 60))

    wait_for("the C-STORE's prediction record", logged, 30)
    (record,) = logged()
    assert (record["endpoint"], record["traffic_class"]) == ("dimse", "production")
    assert record["input"]["format"] == "DICOM" and record["label"] in record["probabilities"]
    assert isinstance(record["deferred"], bool)


def test_storescu_of_a_ct_is_accepted_but_not_classified(scp):
    port, folder = scp
    before = open_keys(folder)
    done = dcmtk("storescu", "-aec", "MLOPS-XRAY", "127.0.0.1", str(port), str(dicom_path("CT_small.dcm")))
    assert done.returncode == 0, done.stderr
    assert open_keys(folder) == before


def open_keys(folder: Path) -> list[str]:
    from registry.store import open_store

    return open_store(str(folder / "store")).list(f"monitoring/{MODEL_NAME}/dicom-results/")


def test_mlops_serve_dicom_port_runs_the_scp_beside_gunicorn_and_stops_it(model_dir: Path, tmp_path: Path):
    """`mlops-serve --dicom-port`: gunicorn's master starts the SCP when ready and stops it on exit."""
    from live_server import Server, stop_server, wait_ready

    api, dicom = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(MLOPS_HOME=str(tmp_path / ".mlops"), MLOPS_API_TF_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "model_api", "--model", str(model_dir / "model.keras")]
    command += ["--port", str(api), "--workers", "1", "--dicom-port", str(dicom)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{api}", process, log)
    try:
        wait_ready(server, deadline=time.monotonic() + 180)
        deadline = time.monotonic() + 120
        while dcmtk("echoscu", "-aec", "MLOPS-XRAY", "127.0.0.1", str(dicom)).returncode != 0:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
    finally:
        stop_server(server)
    # Stopped with gunicorn: nothing answers on the DICOM port any more.
    assert dcmtk("echoscu", "-to", "2", "127.0.0.1", str(dicom)).returncode != 0
