"""Golden examples: held-out images each version got right at registration keep their true labels.

Every version keeps, with its files, a few test-split images per class that it classified right most
surely (training/golden.py). The version under test must still get its own right through the serving
path, and must get right those of the earlier versions with the same classes (no regression on what
an earlier model already knew).
"""

from __future__ import annotations

import pytest

from unit_testing.golden import GoldenExample, earlier_golden, own_golden


def _wrong(served, classes: list[str], examples: list[GoldenExample]) -> dict[str, str]:
    """{owner file: 'predicted (true: label)'} for every example the model labels wrongly."""
    probs = served.predict_encoded([e.data for e in examples])
    wrong = {}
    for example, row in zip(examples, probs, strict=True):
        predicted = classes[int(row.argmax())]
        if predicted != example.label:
            wrong[f"{example.owner} {example.file}"] = f"{predicted} (true: {example.label})"
    return wrong


def test_own_golden_examples_keep_their_labels(served, classes, local_model, model_ref, record_property):
    examples = own_golden(local_model.dir, model_ref)
    if examples is None:
        pytest.skip(f"{model_ref} kept no golden examples (registered before versions kept them)")
    assert examples, f"{model_ref} kept an empty golden set: it classified no test image right"
    record_property("golden_own", len(examples))
    wrong = _wrong(served, classes, examples)
    assert not wrong, f"own golden examples changed label (file: predicted): {wrong}"


def test_earlier_versions_golden_examples_keep_their_labels(
    served, classes, manifest, settings, record_property
):
    from registry import open_registry

    count = settings.model_tests.golden_versions
    examples, notes = earlier_golden(open_registry(settings), manifest, count)
    if not examples:
        why = f" ({'; '.join(notes)})" if notes else ""
        pytest.skip(
            "no earlier approved version with these classes kept golden examples: "
            f"nothing to compare with{why}"
        )
    record_property("golden_earlier", len(examples))
    wrong = _wrong(served, classes, examples)
    assert not wrong, f"earlier versions' golden examples changed label (version file: predicted): {wrong}"
