"""The prediction log: a bounded queue, batches from a background thread, drops counted, flushed on close."""

from __future__ import annotations

import io
import threading
import time

import pytest
from api_testlib import CLASSES, MODEL_NAME, image_bytes
from polling import wait_for

from core.settings import load_settings
from model_api.prediction_log import BatchWriter
from registry.manifest import Reference
from registry.monitoring_log import read_records
from registry.store import open_store


class Sink:
    """Collects batches; can be made to fail or to block until released."""

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []
        self.failures_left = 0
        self.gate = threading.Event()
        self.gate.set()
        self.called = threading.Event()

    def __call__(self, batch) -> None:
        self.called.set()
        self.gate.wait()
        if self.failures_left:
            self.failures_left -= 1
            raise OSError("storage is down")
        self.batches.append(list(batch))

    @property
    def ids(self) -> list[int]:
        return [r["n"] for b in self.batches for r in b]


def test_records_are_written_in_batches_of_the_configured_size():
    sink = Sink()
    writer = BatchWriter("t", sink, batch_size=4, flush_interval_s=30, queue_size=100)
    for n in range(10):
        assert writer.put({"n": n})
    wait_for("two batches", lambda: len(sink.batches) == 2, 10)
    assert [len(b) for b in sink.batches] == [4, 4]
    assert writer.close(5) == 0
    assert sink.ids == list(range(10)) and [len(b) for b in sink.batches] == [4, 4, 2]


def test_a_partial_batch_is_written_after_the_flush_interval():
    sink = Sink()
    writer = BatchWriter("t", sink, batch_size=100, flush_interval_s=0.2, queue_size=100)
    writer.put({"n": 1})
    wait_for("a batch", lambda: sink.batches, 10)
    assert sink.ids == [1]
    writer.close(5)


def test_a_full_queue_drops_and_counts_and_never_blocks():
    sink, dropped = Sink(), []
    sink.gate.clear()  # storage hangs
    writer = BatchWriter(
        "t", sink, batch_size=2, flush_interval_s=30, queue_size=5, on_dropped=dropped.append
    )
    started = time.perf_counter()
    accepted = [writer.put({"n": n}) for n in range(50)]
    assert time.perf_counter() - started < 0.5  # the request path never waits on storage
    # The writer holds whole batches in the hung call; the buffer holds 5 more; the rest are dropped.
    assert 5 <= accepted.count(True) < 50
    assert sum(dropped) == writer.stats.dropped == accepted.count(False)
    sink.gate.set()
    assert writer.close(5) == 0
    assert len(sink.ids) == accepted.count(True)


def test_a_failed_write_is_retried_and_counted():
    sink, failures = Sink(), []
    sink.failures_left = 2
    writer = BatchWriter(
        "t", sink, batch_size=3, flush_interval_s=30, queue_size=10, on_failure=lambda: failures.append(1)
    )
    for n in range(3):
        writer.put({"n": n})
    wait_for("a batch after the retries", lambda: sink.batches, 15)  # backoff 1 s, then 2 s
    assert sink.ids == [0, 1, 2] and len(failures) == 2
    writer.close(5)


def test_close_flushes_within_its_timeout_and_reports_what_storage_never_took():
    sink = Sink()
    writer = BatchWriter("t", sink, batch_size=100, flush_interval_s=30, queue_size=100)
    for n in range(7):
        writer.put({"n": n})
    assert writer.close(5) == 0 and sink.ids == list(range(7))
    assert writer.put({"n": 99}) is False  # closed: dropped, counted

    stuck = Sink()
    stuck.gate.clear()
    writer = BatchWriter("t", stuck, batch_size=100, flush_interval_s=30, queue_size=100)
    for n in range(3):
        writer.put({"n": n})
    started = time.perf_counter()
    assert writer.close(0.5) == 3
    assert time.perf_counter() - started < 2
    stuck.gate.set()


@pytest.fixture
def logged_app(bundle, tmp_path):
    """An app whose prediction log writes to a local store quickly (flush every 0.1 s)."""
    from model_api import create_app

    settings = load_settings(overrides={"monitor.log_flush_interval_s": 0.1})
    store = open_store(f"file://{tmp_path / 'store'}")
    app = create_app({"TESTING": True, "MODEL_BUNDLE": bundle, "SETTINGS": settings, "MONITOR_STORE": store})
    yield app, store
    app.extensions["mlops_monitoring"].close()


def stored(store, kind: str = "predictions") -> list[dict]:
    return list(read_records(store, MODEL_NAME, kind, 0, time.time() + 60))


def test_each_prediction_is_logged_with_its_statistics_and_no_image(logged_app):
    app, store = logged_app
    client = app.test_client()
    one = client.post("/predict", data=image_bytes(size=(120, 90), seed=1), content_type="image/png")
    files = [(io.BytesIO(image_bytes(seed=s, fmt="JPEG", mode="RGB")), f"{s}.jpg") for s in (2, 3)]
    two = client.post("/predict", data={"file": files})
    assert one.status_code == two.status_code == 200
    assert one.headers["X-Request-Id"] == one.json["request_id"]
    request_id = two.headers["X-Request-Id"]
    assert [item["request_id"] for item in two.json] == [f"{request_id}-0", f"{request_id}-1"]
    app.extensions["mlops_monitoring"].close()

    records = {r["id"]: r for r in stored(store)}
    assert set(records) == {one.json["request_id"], f"{request_id}-0", f"{request_id}-1"}
    first = records[one.json["request_id"]]
    assert first["model"] == MODEL_NAME and first["version"] == 7 and first["endpoint"] == "predict"
    assert first["label"] == one.json["label"] and list(first["probabilities"]) == CLASSES
    assert first["confidence"] == pytest.approx(max(one.json["probabilities"].values()), abs=1e-4)
    assert (first["input"]["format"], first["input"]["width"], first["input"]["height"]) == ("PNG", 120, 90)
    assert 0 <= first["input"]["mean"] <= 1 and len(first["input"]["hist"]) == 8
    assert sum(first["input"]["hist"]) == pytest.approx(1, abs=1e-3)
    assert records[f"{request_id}-1"]["input"]["format"] == "JPEG"
    assert all("image" not in r and "_image" not in r for r in records.values())  # no patient data
    assert store.list(f"monitoring/{MODEL_NAME}/images/") == []


def test_v2_infer_is_logged_with_prediction_ids(logged_app):
    import base64

    app, store = logged_app
    client = app.test_client()
    images = [base64.b64encode(image_bytes(seed=s)).decode() for s in (4, 5)]
    body = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2], "data": images}]}
    response = client.post(f"/v2/models/{MODEL_NAME}/infer", json=body)
    assert response.status_code == 200, response.json
    params = response.json["parameters"]
    assert params["request_id"] == response.headers["X-Request-Id"]
    pixels = {
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64, 64, 1], "data": [0.25] * 4096}]
    }
    fp32 = client.post(f"/v2/models/{MODEL_NAME}/infer", json=pixels)
    app.extensions["mlops_monitoring"].close()
    records = {r["id"]: r for r in stored(store)}
    assert set(params["prediction_ids"]) < set(records)
    tensor = records[fp32.json["parameters"]["prediction_ids"][0]]
    assert tensor["endpoint"] == "v2" and tensor["input"]["width"] is None
    assert tensor["input"]["mean"] == pytest.approx(0.25) and tensor["input"]["std"] == pytest.approx(0.0)


def test_image_sampling_is_explicit_and_stores_the_upload(bundle, tmp_path):
    from model_api import create_app

    settings = load_settings(overrides={"monitor.log_flush_interval_s": 0.1, "monitor.sample_images": 1.0})
    store = open_store(f"file://{tmp_path / 'store'}")
    app = create_app({"TESTING": True, "MODEL_BUNDLE": bundle, "SETTINGS": settings, "MONITOR_STORE": store})
    data = image_bytes(seed=6)
    response = app.test_client().post("/predict", data=data, content_type="image/png")
    app.extensions["mlops_monitoring"].close()
    (record,) = stored(store)
    assert record["image"].endswith(f"/{response.json['request_id']}.png")
    assert store.read(record["image"]) == data


def test_logging_off_writes_nothing_and_still_gives_request_ids(bundle, tmp_path):
    from model_api import create_app

    store = open_store(f"file://{tmp_path / 'store'}")
    app = create_app(
        {"TESTING": True, "MODEL_BUNDLE": bundle, "PREDICTION_LOG": False, "MONITOR_STORE": store}
    )
    response = app.test_client().post("/predict", data=image_bytes(seed=7), content_type="image/png")
    assert response.status_code == 200 and len(response.json["request_id"]) == 32
    assert app.extensions["mlops_monitoring"].predictions is None
    assert store.list("monitoring/") == []


def test_metrics_export_live_histograms_reference_gauges_and_log_counters(bundle, tmp_path):
    from model_api import create_app

    reference = Reference(class_shares=dict(zip(CLASSES, (0.2, 0.5, 0.3), strict=True)), confidence_mean=0.81)
    manifest = bundle.manifest.evolve(reference=reference)
    reference_bundle = type(bundle)(**{**bundle.__dict__, "manifest": manifest})
    store = open_store(f"file://{tmp_path / 'store'}")
    app = create_app({"TESTING": True, "MODEL_BUNDLE": reference_bundle, "MONITOR_STORE": store})
    client = app.test_client()
    for seed in range(3):
        client.post("/predict", data=image_bytes(seed=seed, size=(300, 200)), content_type="image/png")
    text = client.get("/metrics").get_data(as_text=True)
    app.extensions["mlops_monitoring"].close()
    assert f'mlops_api_prediction_confidence_count{{version="{reference_bundle.version}"}} 3.0' in text
    assert "mlops_api_input_intensity_mean_count 3.0" in text
    assert "mlops_api_input_intensity_std_count 3.0" in text
    assert 'mlops_api_input_width_pixels_bucket{le="256.0"} 0.0' in text
    assert 'mlops_api_input_width_pixels_bucket{le="512.0"} 3.0' in text
    assert 'mlops_api_reference_class_share{label="Normal"} 0.5' in text
    assert "mlops_api_reference_confidence_mean 0.81" in text
    assert 'mlops_api_monitoring_records_dropped_total{kind="predictions"} 0.0' in text


def test_the_api_describes_an_image_exactly_as_the_reference_profile_does(logged_app, bundle, tmp_path):
    """One statistics module: the live log and registration describe the same file identically."""
    from training.reference_profile import build_reference_profile

    app, store = logged_app
    paths = []
    for seed, (size, mode, fmt) in enumerate(
        [((64, 64), "L", "PNG"), ((300, 120), "RGB", "JPEG"), ((33, 90), "L", "PNG")]
    ):
        path = tmp_path / f"{seed}.{fmt.lower()}"
        path.write_bytes(image_bytes(size=size, mode=mode, fmt=fmt, seed=seed))
        paths.append(path)
    profile = build_reference_profile(bundle._model, CLASSES, paths, bundle.spec)
    client = app.test_client()
    ids = [
        client.post("/predict", data=p.read_bytes(), content_type="image/png").json["request_id"]
        for p in paths
    ]
    app.extensions["mlops_monitoring"].close()
    records = {r["id"]: r for r in stored(store)}
    for i, request_id in enumerate(ids):
        live = records[request_id]["input"]
        for name in ("width", "height"):
            assert live[name] == profile["features"][name][i]
        for name in ("mean", "std"):
            assert live[name] == pytest.approx(profile["features"][name][i], abs=2e-5)
        assert records[request_id]["confidence"] == pytest.approx(
            profile["features"]["confidence"][i], abs=1e-4
        )
    assert profile["formats"] == {"PNG": pytest.approx(2 / 3), "JPEG": pytest.approx(1 / 3)}
    live_hist = [sum(records[i]["input"]["hist"][b] for i in ids) / 3 for b in range(8)]
    assert live_hist == pytest.approx(profile["intensity_hist"], abs=2e-5)


def test_a_writer_closed_while_storage_hangs_stores_what_it_holds_once_storage_returns():
    sink = Sink()
    sink.gate.clear()
    writer = BatchWriter("t", sink, batch_size=2, flush_interval_s=30, queue_size=3)
    writer.put({"n": 0})
    writer.put({"n": 1})  # a full batch wakes the writer, which hangs in storage holding 0 and 1
    assert sink.called.wait(5)
    for n in range(2, 6):
        writer.put({"n": n})  # 2, 3, 4 fill the buffer; 5 is dropped
    assert writer.stats.dropped == 1
    assert writer.close(0.3) == 5  # none stored yet
    sink.gate.set()  # storage comes back
    writer._thread.join(10)
    assert not writer._thread.is_alive()
    assert sorted(sink.ids) == [0, 1, 2, 3, 4]


@pytest.fixture
def traffic_app(bundle, tmp_path):
    """An app with a traffic token: the project's own clients may mark their requests."""
    from model_api import create_app

    settings = load_settings(overrides={"monitor.log_flush_interval_s": 0.1})
    store = open_store(f"file://{tmp_path / 'store'}")
    config = {"TESTING": True, "MODEL_BUNDLE": bundle, "SETTINGS": settings, "MONITOR_STORE": store}
    app = create_app({**config, "TRAFFIC_TOKEN": "traffic-secret"})
    yield app, store
    app.extensions["mlops_monitoring"].close()


def test_the_traffic_class_is_logged_only_from_holders_of_the_traffic_token(traffic_app):
    app, store = traffic_app
    client = app.test_client()
    image = image_bytes(seed=3)
    plain = client.post("/predict", data=image, content_type="image/png")
    marked = client.post(
        "/predict",
        data=image,
        content_type="image/png",
        headers={"X-MLOps-Traffic-Class": "smoke", "Authorization": "Bearer traffic-secret"},
    )
    assert plain.status_code == marked.status_code == 200
    # Without (or with a wrong) token the header is refused, nothing predicted, nothing logged.
    for headers in (
        {"X-MLOps-Traffic-Class": "smoke"},
        {"X-MLOps-Traffic-Class": "test", "Authorization": "Bearer wrong"},
    ):
        refused = client.post("/predict", data=image, content_type="image/png", headers=headers)
        assert refused.status_code == 401 and "MLOPS_TRAFFIC_TOKEN" in refused.json["error"]
    odd = client.post(
        "/predict",
        data=image,
        content_type="image/png",
        headers={"X-MLOps-Traffic-Class": "staff", "Authorization": "Bearer traffic-secret"},
    )
    assert odd.status_code == 400 and "not one of" in odd.json["error"]
    wait_for("2 records", lambda: len(stored(store)) == 2, 10)
    classes = {r["id"]: r["traffic_class"] for r in stored(store)}
    assert classes == {plain.json["request_id"]: "production", marked.json["request_id"]: "smoke"}
