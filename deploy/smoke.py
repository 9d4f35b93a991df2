"""Smoke test of a running model API: ready, serving the expected version, and predicting."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import requests

from core.traffic import traffic_headers


@dataclass
class SmokeResult:
    """What the smoke test saw; `failures` empty means it passed."""

    url: str
    failures: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    prediction: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures


def probe_image(size: int = 64) -> bytes:
    """A small grayscale PNG (a bright disc on dark ground, like a chest outline), made here."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), 20)
    ImageDraw.Draw(image).ellipse((size // 8, size // 8, size - size // 8, size - size // 8), fill=200)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _version(model: dict[str, Any]) -> Any:
    """The version in a /model answer: top level, or under "model" as /predict reports it."""
    if "version" in model:
        return model["version"]
    return (model.get("model") or {}).get("version")


def smoke_test(url: str, expected_version: int | None, timeout_s: float = 30.0) -> SmokeResult:
    """GET /readyz, GET /model (version == expected), one POST /predict with a generated image."""
    result = SmokeResult(url=url)
    try:
        ready = requests.get(f"{url}/readyz", timeout=timeout_s)
        if ready.status_code != 200:
            result.failures.append(f"/readyz answered {ready.status_code}")
        model = requests.get(f"{url}/model", timeout=timeout_s)
        if model.status_code != 200:
            result.failures.append(f"/model answered {model.status_code}")
        else:
            result.model = model.json()
            seen = _version(result.model)
            if expected_version is not None and str(seen) != str(expected_version):
                result.failures.append(f"/model reports version {seen}, expected {expected_version}")
        predict = requests.post(
            f"{url}/predict",
            files={"file": ("probe.png", probe_image(), "image/png")},
            headers=traffic_headers("smoke"),  # kept out of production's monitoring window
            timeout=timeout_s,
        )
        if predict.status_code != 200:
            result.failures.append(f"/predict answered {predict.status_code}: {predict.text[:200]}")
        else:
            result.prediction = predict.json()
            probabilities = result.prediction.get("probabilities")
            if not isinstance(probabilities, dict) or not probabilities:
                result.failures.append("/predict returned no probabilities")
            elif abs(sum(probabilities.values()) - 1.0) > 1e-3:
                result.failures.append(f"/predict probabilities sum to {sum(probabilities.values()):.4f}")
    except (requests.RequestException, ValueError) as exc:
        result.failures.append(f"{url} failed: {type(exc).__name__}: {exc}")
    return result
