"""The prediction log under real gunicorn: a graceful stop flushes, a crash leaves only whole batches,
and a storage outage (fake-gcs-server stopped) never fails a prediction."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from api_testlib import MODEL_NAME, image_bytes
from gcs import running_fake_gcs
from live_server import Server, kill_server, start_serve, stop_server
from polling import wait_for

from registry.monitoring_log import decode_batch, read_records
from registry.store import open_store

pytestmark = pytest.mark.slow


def serve(model_dir: Path, folder: Path, store: str, **monitor: str) -> Server:
    env = {"MLOPS_MONITOR_STORE": store}
    env.update({f"MLOPS_MONITOR_{key.upper()}": value for key, value in monitor.items()})
    return start_serve(str(model_dir / "model.keras"), folder, env=env)


def predict_many(server: Server, count: int, threads: int = 4) -> list[requests.Response]:
    body = image_bytes(seed=3)

    def one(_: int) -> requests.Response:
        return requests.post(
            server.url + "/predict", data=body, headers={"Content-Type": "image/png"}, timeout=30
        )

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def logged_ids(store_uri: str) -> set[str]:
    return {
        r["id"] for r in read_records(open_store(store_uri), MODEL_NAME, "predictions", 0, time.time() + 60)
    }


def test_a_graceful_stop_flushes_every_queued_record(model_dir, tmp_path):
    """A minute-long flush interval: nothing is written until SIGTERM makes each worker flush."""
    store = f"file://{tmp_path / 'store'}"
    server = serve(model_dir, tmp_path, store, log_flush_interval_s="60", log_batch_size="10000")
    try:
        answers = predict_many(server, 60)
        assert all(r.status_code == 200 for r in answers)
        assert logged_ids(store) == set()  # still queued in the workers
    finally:
        stop_server(server)
    assert logged_ids(store) == {r.json()["request_id"] for r in answers}


def test_a_crash_leaves_every_flushed_record_readable_and_no_partial_object(model_dir, tmp_path):
    store_uri = f"file://{tmp_path / 'store'}"
    server = serve(model_dir, tmp_path, store_uri, log_flush_interval_s="0.2", log_batch_size="8")
    flushed = {r.json()["request_id"] for r in predict_many(server, 80)}
    wait_for("the 80 records to be flushed", lambda: logged_ids(store_uri) >= flushed)

    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            with contextlib.suppress(requests.RequestException):
                predict_many(server, 8)

    background = threading.Thread(target=traffic)
    background.start()
    # Workers busy predicting and writing batches: some of this traffic is already stored.
    wait_for("batches written under traffic", lambda: len(logged_ids(store_uri) - flushed) >= 8)
    kill_server(server)  # SIGKILL master and workers: no flush, no cleanup
    stop.set()
    background.join(timeout=60)

    store = open_store(store_uri)
    keys = store.list(f"monitoring/{MODEL_NAME}/predictions/")
    assert len(keys) > 10
    for key in keys:  # every visible object is a whole batch
        records = decode_batch(store.read(key), key)
        assert records and all(r["model"] == MODEL_NAME for r in records)
    assert flushed <= logged_ids(store_uri)


@pytest.mark.gcs
def test_a_storage_outage_never_fails_a_prediction(model_dir, tmp_path, monkeypatch):
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(running_fake_gcs(tmp_path))
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "mlops-test")
        store_uri = fake.new_bucket("monitoring-outage") + "/mlops"
        server = serve(model_dir, tmp_path, store_uri, log_flush_interval_s="0.2", log_queue_size="50")
        try:
            before = predict_many(server, 40)
            assert all(r.status_code == 200 for r in before)
            expected = {r.json()["request_id"] for r in before}
            wait_for("the 40 records to be flushed", lambda: logged_ids(store_uri) == expected)

            stack.close()  # fake-gcs-server stops: every write now fails or hangs in retries
            started = time.perf_counter()
            during = predict_many(server, 300)
            seconds = time.perf_counter() - started
            assert [r.status_code for r in during] == [200] * 300
            assert max(r.elapsed.total_seconds() for r in during) < 5  # nobody waited on storage
            assert seconds < 120
            metrics = server.get("/metrics").text
            dropped = next(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith('mlops_api_monitoring_records_dropped_total{kind="predictions"}')
            )
            assert dropped > 0, "a queue of 50 per worker cannot hold 300 records while storage is down"
        finally:
            started = time.perf_counter()
            stop_server(server)
            assert time.perf_counter() - started < 45  # the flush at shutdown gives up in time
