"""A single-image prediction through the serving path stays within the latency budget."""

from __future__ import annotations

import statistics
import time


def test_single_image_latency_within_budget(served, sample, settings):
    for img in sample[:3]:  # warm up: the first calls trace the compiled function
        served.predict_encoded([img.data])
    times_ms = []
    for img in sample:
        start = time.perf_counter()
        served.predict_encoded([img.data])
        times_ms.append((time.perf_counter() - start) * 1000.0)
    median = statistics.median(times_ms)
    budget = settings.model_tests.latency_budget_ms
    print(f"single-image latency: median {median:.1f} ms, max {max(times_ms):.1f} ms (budget {budget} ms)")
    assert median <= budget, f"median latency {median:.1f} ms > budget {budget} ms"
