"""A single-image prediction through the serving path stays within the latency budget."""

from __future__ import annotations

import statistics
import time


def test_single_image_latency_within_budget(served, sample, settings, record_property):
    for img in sample[:3]:  # warm up: the first calls trace the compiled function
        served.predict_encoded([img.data])
    times_ms = []
    for img in sample:
        start = time.perf_counter()
        served.predict_encoded([img.data])
        times_ms.append((time.perf_counter() - start) * 1000.0)
    median = statistics.median(times_ms)
    budget = settings.model_tests.latency_budget_ms
    record_property("latency_median_ms", round(median, 2))
    record_property("latency_max_ms", round(max(times_ms), 2))
    assert median <= budget, f"median latency {median:.1f} ms > budget {budget} ms"
