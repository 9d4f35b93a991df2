"""The abstention threshold: chosen on validation for a target accuracy of the kept cases."""

from __future__ import annotations

import numpy as np
import pytest

from registry.manifest import Deferral, Manifest
from training.deferral import choose_threshold, on_split

CLASSES = ("covid", "normal", "pneumonia")


def rows(*confident: tuple[float, str]) -> tuple[np.ndarray, list[str]]:
    """Probability rows whose top class is covid with the given confidence, and each case's truth."""
    probabilities = [[p, (1 - p) / 2, (1 - p) / 2] for p, _ in confident]
    return np.array(probabilities), [truth for _, truth in confident]


def test_the_lowest_threshold_whose_kept_cases_reach_the_target():
    # Ranked by confidence: right, right, right, wrong, right, wrong. Kept accuracy for the top k:
    # 1, 1, 1, 3/4, 4/5, 4/6. A target of 0.8 keeps five cases (threshold 0.6), not four.
    probabilities, truth = rows(
        (0.95, "covid"), (0.9, "covid"), (0.85, "covid"), (0.7, "normal"), (0.6, "covid"), (0.5, "normal")
    )
    chosen = choose_threshold(probabilities, CLASSES, truth, 0.8)
    assert chosen.reached
    assert chosen.threshold == pytest.approx(0.6)
    assert chosen.coverage == pytest.approx(5 / 6)
    assert chosen.accuracy_kept == pytest.approx(0.8)
    assert chosen.defers([0.59, 0.21, 0.2]) and not chosen.defers([0.6, 0.2, 0.2])
    # A stricter target keeps only the three sure cases.
    assert choose_threshold(probabilities, CLASSES, truth, 0.9).threshold == pytest.approx(0.85)


def test_ties_are_kept_or_deferred_together():
    # Two cases at 0.7, one right one wrong: keeping only one of them is no threshold at all.
    probabilities, truth = rows((0.9, "covid"), (0.7, "covid"), (0.7, "normal"))
    chosen = choose_threshold(probabilities, CLASSES, truth, 0.7)
    assert chosen.threshold == pytest.approx(0.9) and chosen.coverage == pytest.approx(1 / 3)


def test_an_unreachable_target_defers_everything():
    probabilities, truth = rows((0.9, "normal"), (0.8, "normal"))
    chosen = choose_threshold(probabilities, CLASSES, truth, 0.5)
    assert not chosen.reached and chosen.coverage == 0
    assert chosen.defers([1.0, 0.0, 0.0])


def test_the_test_split_point_and_the_manifest_round_trip():
    probabilities, truth = rows((0.95, "covid"), (0.6, "normal"), (0.4, "covid"))
    chosen = choose_threshold(probabilities, CLASSES, truth, 0.9)
    test_probabilities, test_truth = rows((0.99, "covid"), (0.97, "normal"), (0.5, "covid"), (0.3, "covid"))
    reported = on_split(chosen, test_probabilities, CLASSES, test_truth)
    assert reported.test_coverage == pytest.approx(0.5) and reported.test_accuracy_kept == pytest.approx(0.5)
    manifest = Manifest(name="m", deferral=reported)
    back = Manifest.from_dict(manifest.to_dict())
    assert isinstance(back.deferral, Deferral) and back.deferral == reported


@pytest.mark.slow
def test_on_the_demo_model_the_kept_test_cases_reach_the_target(cli, settings):
    """`mlops train` on the demo data: the threshold chosen on val keeps test cases at the target.

    The same trained version (one training run for both) carries its model card as a signed file.
    """
    import json

    from registry import open_registry

    assert cli("demo-data").code == 0
    trained = cli("train", "--data", str(settings.home / "data" / "demo"), "--json")
    assert trained.code == 0, trained.err
    local = open_registry(settings).fetch(json.loads(trained.out)["ref"])
    deferral = local.manifest.deferral
    assert deferral is not None and deferral.reached, deferral
    assert deferral.target_accuracy == settings.api.target_accuracy == 0.98
    # Independently of training's own numbers: the served model on the version's test split.
    from model_api.bundle import load_bundle

    served = load_bundle(local.model_path, local.manifest)
    rows = json.loads((local.dir / "test_split.json").read_text())
    data = settings.home / "data" / "demo"
    probabilities = served.predict_encoded([(data / row["path"]).read_bytes() for row in rows])
    kept = [
        served.classes[int(np.argmax(p))] == row["label"]
        for p, row in zip(probabilities, rows, strict=True)
        if not deferral.defers(p)
    ]
    assert len(kept) / len(rows) > 0.5, deferral  # a useful share of cases is still answered
    assert sum(kept) / len(kept) >= deferral.target_accuracy, (sum(kept), len(kept))
    assert deferral.test_coverage == pytest.approx(len(kept) / len(rows), abs=0.02)
    # The model card: a file of the version, checksummed in its manifest (so signed with it).
    import hashlib

    card = (local.dir / "model_card.md").read_text()
    assert hashlib.sha256(card.encode()).hexdigest() == local.manifest.files["model_card.md"].sha256
    for heading in ("Intended use", "Out-of-scope uses", "Training data provenance", "Limitations",
                    "Change protocol", "Deferral", "Calibration"):  # fmt: skip
        assert f"## {heading}" in card
    assert str(local.manifest.dataset.fingerprint) in card
    for label in served.classes:
        assert f"| {label} |" in card
    assert f"below {deferral.threshold:.3f}" in card
    # The approval email attaches it.
    from mlops.notify import build_message

    msg = build_message(local.manifest, "trained", settings, report=local.dir / "report.html")
    assert "model_card.md" in [part.get_filename() for part in msg.iter_attachments()]
    print(
        f"deferral: threshold {deferral.threshold:.3f}; val coverage {deferral.coverage:.3f} "
        f"accuracy {deferral.accuracy_kept:.3f}; test coverage {deferral.test_coverage:.3f} "
        f"accuracy {deferral.test_accuracy_kept:.3f} (n val {deferral.n})"
    )
