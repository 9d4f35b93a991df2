"""The model card of a version (Mitchell et al., 2019), written into the run folder before registration.

It is one of the version's files, so the registry checksums and signs it with the model: what the card
says is what was registered. Everything comes from the manifest (lineage, metrics, gate, deferral,
calibration when the evaluation adds one) and the settings that trained it; the fixed parts (intended
use, out-of-scope uses, limitations, change protocol) say what this system is and is not for.
"""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from registry.manifest import Manifest

FILE = "model_card.md"

INTENDED_USE = (
    "Triage support for frontal chest radiographs (CR/DX, PA or AP): a second reader that flags "
    "COVID-19, pneumonia or a normal appearance for a radiologist, who makes every diagnosis. "
    "Intended users: radiologists and reporting radiographers in a department that has validated the "
    "version on its own images."
)
OUT_OF_SCOPE = (
    "Diagnosis without a radiologist; lateral views, CT, paediatric or portable images unless validated; "
    "any other finding (nodules, fractures, lines and tubes); deciding treatment; use on images that the "
    "DICOM selection rules (`[dicom]`) leave out."
)
LIMITATIONS = (
    "Trained on the dataset named below only: performance on other scanners, populations and "
    "acquisition protocols is unknown until measured. The Grad-CAM saliency map is not a localisation "
    "and is NOT FOR DIAGNOSTIC USE (saliency localises worse than radiologists: Saporta et al., 2022). "
    "Probabilities are the model's own unless a calibration is listed. Subgroup performance (sex, age "
    "band, view position) is reported only where the dataset records those subgroups."
)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _subgroups(manifest: Manifest) -> list[str]:
    """The per-subgroup table (training/subgroups.py), or why there is none."""
    groups = manifest.metrics.subgroups
    if not groups:
        return [
            "Subgroups: the dataset records no sex, age band or view position (DICOM tags) and has no "
            "`<key>=<value>` folders; none are reported."
        ]
    classes = list(manifest.metrics.per_class) or list(manifest.classes)
    lines = [
        "### Subgroups",
        "",
        "| subgroup | from | images | accuracy | " + " | ".join(f"recall {c} (n)" for c in classes) + " |",
        "|---|---|---|---|" + "---|" * len(classes),
    ]
    for g in groups:
        if g.too_few:
            scores = [f"too few images (< {g.min_support})"] + [""] * len(classes)
        else:
            scores = [_pct(g.accuracy)] + [
                f"{_pct(g.recall.get(c))} ({g.support.get(c, 0)})" for c in classes
            ]
        lines.append(f"| {g.attribute} = {g.value} | {g.source} | {g.n} | " + " | ".join(scores) + " |")
    return lines


def render(manifest: Manifest, settings: Settings) -> str:
    """The card as Markdown."""
    m, ds, gate = manifest.metrics, manifest.dataset, manifest.gate
    source = ds.source
    lines = [
        f"# Model card: {manifest.name}",
        "",
        "This card is one of the version's signed files: it describes exactly the version that carries it.",
        "",
        "## Intended use",
        INTENDED_USE,
        "",
        "## Out-of-scope uses",
        OUT_OF_SCOPE,
        "",
        "## Training data provenance",
        f"- dataset: {ds.uri} (fingerprint {ds.fingerprint})",
        f"- source: {source.kind or 'folder'} {source.repo or source.uri or ''} at revision "
        f"{source.revision or 'none (a plain folder: the fingerprint names it)'}",
        f"- classes and counts: {', '.join(f'{k} {v}' for k, v in ds.class_counts.items())}",
        f"- split (by content hash): {', '.join(f'{k} {v}' for k, v in ds.split.items())}",
        f"- code: {manifest.code.commit or 'unknown commit'} {manifest.code.build_url or ''}".rstrip(),
        f"- parent version: {manifest.parent.ref if manifest.parent else 'none (first training)'}",
        "",
        "## Performance on the held-out test split",
        f"Accuracy {_pct(m.accuracy)} on {m.n} images.",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label, c in m.per_class.items():
        lines.append(f"| {label} | {_pct(c.precision)} | {_pct(c.recall)} | {_pct(c.f1)} | {c.support} |")
    lines += ["", *_subgroups(manifest), ""]
    lines += ["## Calibration"]
    # Added by the evaluation work (temperature scaling); a manifest without it has none.
    calibration = getattr(manifest, "calibration", None) or manifest.extra.get("calibration")
    lines.append(
        f"{calibration}" if calibration else "None: the probabilities are the model's own (uncalibrated)."
    )
    lines += ["", "## Deferral"]
    d = manifest.deferral
    if d is None:
        lines.append("None: every case is answered.")
    elif not d.reached:
        lines.append(
            f"No threshold reached {d.target_accuracy:.0%} on the {d.split} split: every case is deferred."
        )
    else:
        lines.append(
            f"Cases with a top probability below {d.threshold:.3f} are deferred to a radiologist "
            f"(chosen on the {d.split} split for {d.target_accuracy:.0%} accuracy on the kept cases: "
            f"coverage {_pct(d.coverage)}, accuracy {_pct(d.accuracy_kept)}; on the test split "
            f"coverage {_pct(d.test_coverage)}, accuracy {_pct(d.test_accuracy_kept)})."
        )
    lines += ["", "## Release gate"]
    if gate is not None:
        lines.append(
            f"{'Passed' if gate.passed else 'Failed'}: " + "; ".join(gate.reasons or ("no reasons",))
        )
    g = settings.gate
    lines += [
        "",
        "## Limitations",
        LIMITATIONS,
        "",
        "## Change protocol",
        "Every retraining follows the same controlled path: data validation against the previous "
        "version's data, training in a pinned container, evaluation on a held-out split chosen by "
        f"content hash, the gate (accuracy at least {g.accuracy_threshold:.0%}, every class's recall at "
        f"least {g.recall_floor:.0%}, no regression beyond {g.regression_tolerance:.0%} against "
        "production), the model test suite, a signed registration (this card is one of the signed "
        "files), a product owner's approval, and a canary before promotion. A retrained version is a "
        "new device: its DICOM results carry a new Device UID.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(folder: Path, manifest: Manifest, settings: Settings) -> Path:
    """Write model_card.md into the run folder (before registration, so it is signed with the version)."""
    path = folder / FILE
    path.write_text(render(manifest, settings))
    return path
