"""The manifest of a version as typed, frozen parts (docs/manifest.md), parsed from and written to JSON.

Every part is a frozen dataclass whose attribute names are the JSON keys, so the file stays what
readers in other languages know. Parsing checks each value's type and names the field it rejects
(`manifest.metrics.accuracy: expected a number, got 'x'`). Keys a part does not know are kept in its
`extra` mapping and written back unchanged: a stored manifest is signed and immutable, so a version
written by a newer (or older) writer must still load and round-trip instead of becoming unreadable.

Schema 1 is what registries wrote before `schema_version` existed; `migrate` lifts it to schema 2 in
memory (the stored, signed bytes are never rewritten). `Registry.register` writes schema 2 and refuses
a manifest without its lineage (`require_lineage`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Union

from registry.errors import RegistryError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SCHEMA_VERSION = 2  # what this code writes; schema 1 (no `schema_version` key) still loads
ROOT = "manifest"

T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")  # a manifest part (every part is a dataclass)


class ManifestError(RegistryError):
    """A manifest field has the wrong type, or a field registration needs is missing."""


def _empty() -> Mapping[str, Any]:
    return {}


# -- the parts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: its sha256 and size, checked on every fetch."""

    sha256: str
    size: int
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Preprocessing:
    """What the model expects (core.preprocessing.PreprocessSpec as stored)."""

    image_size: int
    channels: int
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Code:
    """The code that trained the version (git and Jenkins environment)."""

    commit: str | None = None
    repo: str | None = None
    build_url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class DatasetSource:
    """Where the dataset came from and at which revision (git adds repo, commit, requested...)."""

    kind: str | None = None
    uri: str | None = None
    given: str | None = None
    revision: str | None = None
    requested: str | None = None
    repo: str | None = None
    parents: tuple[str, ...] = ()
    generations_file: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Validation:
    """Data validation against the reference model's training data (training.data_validation)."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("label_issues",)

    reference: str | None = None
    passed: bool = True
    stops: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # training.label_check: {"method", "n", "flagged", "share", "pairs": [{given, suggested, count}], "files"}
    label_issues: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Dataset:
    """The dataset a version was trained on: where, which content, how it was split."""

    uri: str | None = None
    source: DatasetSource = field(default_factory=DatasetSource)
    fingerprint: str | None = None
    class_counts: Mapping[str, int] = field(default_factory=_empty)
    split: Mapping[str, int] = field(default_factory=_empty)
    split_rule: Mapping[str, Any] | None = None
    skipped: tuple[Any, ...] = ()
    statistics: Mapping[str, Any] | None = None  # training.dataset_stats: the next dataset's yardstick
    validation: Validation | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Params:
    """Training parameters actually used; the ones readers branch on are typed, the rest kept as given."""

    mode: str | None = None
    architecture: str | None = None
    strategy: str | None = None
    replicas: int | None = None
    workers: int | None = None
    devices: tuple[str, ...] = ()
    mixed_precision: bool | None = None
    global_batch_size: int | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class ClassMetrics:
    """One class's scores on the test split."""

    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    support: int | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class SubgroupMetrics:
    """Scores of one subgroup of the test split: a DICOM tag's band (sex, age band, view position) or
    a `<key>=<value>` folder of the dataset. Under `min_support` images no score is given (too few)."""

    attribute: str  # "sex", "age band", "view position", or the folder's key
    value: str
    n: int
    min_support: int
    source: str = "dicom"  # "dicom" (the file's tags) or "folder" (its path)
    accuracy: float | None = None  # None: fewer than min_support images
    recall: Mapping[str, float | None] = field(default_factory=_empty)  # per class; None: no such case
    support: Mapping[str, int] = field(default_factory=_empty)  # per class
    extra: Mapping[str, Any] = field(default_factory=_empty)

    @property
    def too_few(self) -> bool:
        """Whether the subgroup is too small to be scored."""
        return self.n < self.min_support


@dataclass(frozen=True)
class Metrics:
    """Scores on the test split."""

    accuracy: float | None = None
    n: int | None = None
    per_class: Mapping[str, ClassMetrics] = field(default_factory=_empty)
    confusion_matrix: tuple[tuple[int, ...], ...] = ()
    labels: tuple[str, ...] = ()
    subgroups: tuple[SubgroupMetrics, ...] = ()  # training/subgroups.py
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Criterion:
    """One gate criterion and how the version did on it."""

    # Fields added with the paired gate: absent (not null) when unset, so older manifests round-trip.
    OPTIONAL: ClassVar[tuple[str, ...]] = (
        "estimate", "low", "high", "support", "test", "p_value", "baseline_ref", "note", "direction",
    )  # fmt: skip
    name: str
    passed: bool
    value: Any = None  # what is compared with the threshold (a bound of the interval where there is one)
    threshold: Any = None
    estimate: float | None = None  # the point estimate (recall, or candidate - production)
    low: float | None = None  # the interval at the gate's confidence
    high: float | None = None
    support: int | None = None  # images behind the figure
    test: str | None = None  # wilson | paired_bootstrap_percentile
    p_value: float | None = None  # McNemar's exact test (the accuracy comparison)
    baseline_ref: str | None = None
    note: str | None = None  # e.g. "too few images to judge"
    direction: str | None = None  # "<=" where lower is better (ECE); absent: ">="
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Difference:
    """Candidate - production on one figure, with its bootstrap interval."""

    difference: float | None = None
    low: float | None = None
    high: float | None = None
    support: int | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Comparison:
    """The paired comparison of candidate and production on the same images (training/paired.py)."""

    on: str  # "test split", or the reference set's ref
    baseline_ref: str | None = None
    test: str = "mcnemar_exact"
    p_value: float | None = None
    candidate_only: int | None = None  # discordant pairs: images only the candidate gets right
    baseline_only: int | None = None
    bootstrap: str | None = None
    confidence: float | None = None
    resamples: int | None = None
    seed: int | None = None
    n: int | None = None
    accuracy: Difference = field(default_factory=Difference)
    recall: Mapping[str, Difference] = field(default_factory=_empty)
    verdict: str | None = None  # in words, as the approver reads it
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Calibration:
    """Temperature scaling fitted on the validation split: served probabilities are softmax(log p / T)."""

    temperature: float
    method: str = "temperature_scaling"
    fitted_on: str = "validation split"
    n: int | None = None
    ece_before: float | None = None  # on the test split, 10 equal-width confidence bins
    ece_after: float | None = None
    ece_noise: float | None = None  # the ECE a perfectly calibrated model reaches by chance (95th pct)
    test_n: int | None = None
    bins: int | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Baseline:
    """Production's scores on this version's test split (what the gate compared with)."""

    ref: str | None = None
    version: int | None = None
    accuracy: float | None = None
    metrics: Metrics | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class ReferenceCheck:
    """The candidate (and production) on the locked reference set in force (registry/reference_sets.py)."""

    version: int
    fingerprint: str | None = None
    n: int | None = None
    metrics: Metrics | None = None
    baseline: Baseline | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Gate:
    """The gate's decision with every reason and criterion."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("comparisons", "reference")

    passed: bool
    reasons: tuple[str, ...] = ()
    criteria: tuple[Criterion, ...] = ()
    notes: tuple[str, ...] = ()
    baseline: Baseline | None = None
    comparisons: tuple[Comparison, ...] = ()  # paired, on the test split and the reference set
    reference: ReferenceCheck | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Parent:
    """The version a retrained model was fine-tuned from."""

    ref: str | None = None
    version: int | None = None
    area: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Reference:
    """Summary of the reference profile monitoring compares live traffic with."""

    file: str = "reference_profile.json"
    split: str | None = None
    n: int | None = None
    class_shares: Mapping[str, float] = field(default_factory=_empty)
    confidence_mean: float | None = None
    intensity_mean: float | None = None
    formats: Mapping[str, float] = field(default_factory=_empty)
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class CoveragePoint:
    """One point of the accuracy-vs-coverage curve: keep cases at or above a confidence threshold."""

    threshold: float
    coverage: float
    accuracy: float | None = None  # None: nothing kept
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Deferral:
    """When the version defers to a radiologist: top probability below `threshold` (chosen on `split`).

    `reached` false: no threshold kept `target_accuracy` on the split, so every case is deferred.
    """

    threshold: float
    target_accuracy: float
    coverage: float
    accuracy_kept: float | None
    n: int
    split: str = "val"
    reached: bool = True
    curve: tuple[CoveragePoint, ...] = ()
    test_coverage: float | None = None  # the same threshold on the test split: what the report shows
    test_accuracy_kept: float | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)

    def defers(self, probabilities: Any) -> bool:
        """Whether a prediction with these probabilities goes to a radiologist instead."""
        return not self.reached or float(max(probabilities)) < self.threshold


# -- annotations: appended after registration, each through its typed constructor ----------------


@dataclass(frozen=True)
class TestSummary:
    """Counts of a model test run."""

    __test__: ClassVar[bool] = False  # not a pytest test class
    passed: int | None = None
    failed: int | None = None
    errors: int | None = None
    skipped: int | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class TestRun:
    """A model test suite run against the version (`mlops test-model`)."""

    __test__: ClassVar[bool] = False  # not a pytest test class
    KIND: ClassVar[str] = "tests"
    passed: bool
    suite: str | None = None
    suite_source: Mapping[str, Any] | None = None
    summary: TestSummary = field(default_factory=TestSummary)
    junit: str | None = None
    failures: tuple[Any, ...] = ()
    measurements: Mapping[str, Any] = field(default_factory=_empty)
    at: str | None = None  # the registry stamps at and actor when it stores the entry
    actor: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Approval:
    """An approval, written by `Registry.promote` in the production pointer's compare-and-swap."""

    KIND: ClassVar[str] = "approvals"
    approved_by: str | None = None
    identity: Mapping[str, Any] | None = None
    claimed_by: str | None = None
    expected_production: int | None = None
    reason: str = ""
    evidence: Mapping[str, Any] = field(default_factory=_empty)
    at: str | None = None
    actor: str | None = None
    id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class Deployment:
    """A rollout of the version and its result."""

    KIND: ClassVar[str] = "deployments"
    target: str
    result: str
    detail: Any = None
    at: str | None = None
    actor: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class MonitoringVerdict:
    """`mlops monitor`'s verdict on the version's live traffic."""

    KIND: ClassVar[str] = "monitoring"
    passed: bool | None = None
    alerts: tuple[Any, ...] = ()
    drifted: tuple[Any, ...] = ()
    window: Any = None
    records: int | None = None
    accuracy: Mapping[str, Any] | None = None
    thresholds: Mapping[str, Any] | None = None
    report: str | None = None
    at: str | None = None
    actor: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class CanaryVerdict:
    """A canary's figures and decision (`mlops deploy --canary`)."""

    KIND: ClassVar[str] = "canary"
    verdict: str | None = None
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    figures: Mapping[str, Any] = field(default_factory=_empty)
    at: str | None = None
    actor: str | None = None
    extra: Mapping[str, Any] = field(default_factory=_empty)


Annotation = TestRun | Deployment | MonitoringVerdict | CanaryVerdict  # what Registry.annotate takes
ANNOTATED = (TestRun, Deployment, MonitoringVerdict, CanaryVerdict)
ANNOTATION_TYPES: dict[str, type[Any]] = {
    t.KIND: t for t in (TestRun, Approval, Deployment, MonitoringVerdict, CanaryVerdict)
}


@dataclass(frozen=True)
class Annotations:
    """What was recorded about a version after registration, by kind, oldest first."""

    tests: tuple[TestRun, ...] = ()
    approvals: tuple[Approval, ...] = ()
    deployments: tuple[Deployment, ...] = ()
    monitoring: tuple[MonitoringVerdict, ...] = ()
    canary: tuple[CanaryVerdict, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=_empty)  # kinds this code does not know

    @property
    def latest_tests(self) -> TestRun | None:
        """The most recent model test run, or None when the version was never tested."""
        return self.tests[-1] if self.tests else None


@dataclass(frozen=True)
class Attestation:
    """A signed statement about the version (issue 23 fills these in); kept as written until then."""

    kind: str
    extra: Mapping[str, Any] = field(default_factory=_empty)


# -- the manifest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """A version's manifest: identity, files, lineage, evaluation, and (when handed out) annotations."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("calibration",)

    schema_version: int = SCHEMA_VERSION
    name: str | None = None
    version: int | None = None
    area: str | None = None
    created_at: str | None = None
    registered_by: str | None = None
    model_file: str = "model.keras"
    files: Mapping[str, FileEntry] = field(default_factory=_empty)
    classes: tuple[str, ...] = ()
    preprocessing: Preprocessing | None = None
    code: Code = field(default_factory=Code)
    dataset: Dataset = field(default_factory=Dataset)
    params: Params = field(default_factory=Params)
    frameworks: Mapping[str, str | None] = field(default_factory=_empty)
    metrics: Metrics = field(default_factory=Metrics)
    gate: Gate | None = None
    calibration: Calibration | None = None  # None: served probabilities are the model's own
    parent: Parent | None = None
    signed_by: str | None = None
    reference: Reference | None = None
    deferral: Deferral | None = None
    attestations: tuple[Attestation, ...] = ()
    annotations: Annotations = field(default_factory=Annotations)  # not stored: merged in on read
    extra: Mapping[str, Any] = field(default_factory=_empty)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Parse a manifest's JSON form (schema 1 is migrated first); ManifestError names a bad field."""
        return load(cls, migrate(data), ROOT)

    def to_dict(self, *, annotations: bool = True) -> dict[str, Any]:
        """The JSON form (same keys as the file); without `annotations` it is what the registry stores."""
        out: dict[str, Any] = to_json(self)
        if not annotations:
            out.pop("annotations", None)
        return out

    @property
    def ref(self) -> str:
        """`area:version`, as the refs name it."""
        return f"{self.area or 'testing'}:{self.version}"

    @property
    def gate_passed(self) -> bool:
        """Whether a gate decision was recorded and passed."""
        return self.gate is not None and self.gate.passed

    def evolve(self, **changes: Any) -> Manifest:
        """A copy with some fields replaced (the manifest itself is frozen)."""
        return replace(self, **changes)


# -- schema versions -------------------------------------------------------------------------------


def migrate(data: Any) -> dict[str, Any]:
    """The JSON form of a manifest lifted to the current schema (a new dict; schema 1 → 2)."""
    if not isinstance(data, dict):
        raise ManifestError(f"{ROOT}: expected an object, got {_show(data)}")
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ManifestError(f"{ROOT}.schema_version: expected an integer, got {_show(version)}")
    if version > SCHEMA_VERSION:
        raise ManifestError(
            f"{ROOT}.schema_version: {version} is newer than this mlops understands ({SCHEMA_VERSION}); "
            "upgrade mlops to read this version"
        )
    if version < 1:
        raise ManifestError(f"{ROOT}.schema_version: expected 1 or {SCHEMA_VERSION}, got {version}")
    out = dict(data)
    if version == 1:
        out = _from_schema_1(out)
    return out


def _from_schema_1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 → 2: the same fields; only the version number and a dataset source to name the data."""
    data["schema_version"] = 2
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and "source" not in dataset and isinstance(dataset.get("uri"), str):
        # The earliest manifests had only the uri; its scheme says the kind (no revision was recorded).
        uri = dataset["uri"]
        kind = "git" if uri.startswith("git+") else "gcs" if uri.startswith("gs://") else "folder"
        data["dataset"] = {**dataset, "source": {"kind": kind, "uri": uri, "revision": None}}
    return data


# The lineage registration needs (dotted paths); a value may be null only where the type allows it.
LINEAGE = (
    "classes",
    "preprocessing",
    "code",
    "dataset",
    "dataset.uri",
    "dataset.fingerprint",
    "dataset.class_counts",
    "dataset.split",
    "params",
    "parent",
    "metrics",
    "metrics.accuracy",
    "gate",
)


def require_lineage(data: Any) -> Manifest:
    """Parse what training hands the registry; ManifestError naming the first missing lineage field."""
    if not isinstance(data, dict):
        raise ManifestError(f"{ROOT}: expected an object, got {_show(data)}")
    for dotted in LINEAGE:
        node: Any = data
        parts = dotted.split(".")
        for depth, key in enumerate(parts):
            if not isinstance(node, dict) or key not in node:
                where = ".".join([ROOT, *parts[: depth + 1]])
                raise ManifestError(
                    f"{where}: required to register a version, missing "
                    "(training records the lineage: see docs/manifest.md)"
                )
            node = node[key]
    manifest = Manifest.from_dict(data)
    if not manifest.classes:
        raise ManifestError(f"{ROOT}.classes: required to register a version, got an empty list")
    if manifest.metrics.accuracy is None:
        raise ManifestError(f"{ROOT}.metrics.accuracy: expected a number, got None")
    return manifest


# -- parsing and writing, driven by the dataclasses' type hints -----------------------------------

_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(hint: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        return "a list"
    if origin in (Mapping, dict) or dataclasses.is_dataclass(hint):
        return "an object"
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _expected(a) for a in typing.get_args(hint))
    return str(hint)


def parse(hint: Any, value: Any, path: str) -> Any:
    """VALUE checked against the type HINT (recursively); ManifestError names PATH when it is not."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return parse(option, value, path)
            except ManifestError as exc:
                if not str(exc).startswith(f"{path}: expected "):
                    raise  # a field inside the value is wrong: name that one
        raise ManifestError(f"{path}: expected {_expected(hint)}, got {_show(value)}")
    if dataclasses.is_dataclass(hint):
        return _parse_part(typing.cast(type[Any], hint), value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ManifestError(f"{path}: expected a list, got {_show(value)}")
        item = typing.get_args(hint)[0]
        return tuple(parse(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict):
        if not isinstance(value, dict):
            raise ManifestError(f"{path}: expected an object, got {_show(value)}")
        item = typing.get_args(hint)[1]
        return {str(k): parse(item, v, f"{path}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ManifestError(f"{path}: expected true or false, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ManifestError(f"{path}: expected an integer, got {_show(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ManifestError(f"{path}: expected a number, got {_show(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ManifestError(f"{path}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"registry.manifest cannot parse {hint!r}")  # a programming error, not bad input


def _parse_part(cls: type[D], value: Any, path: str) -> D:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ManifestError(f"{path}: expected an object, got {_show(value)}")
    hints = _hints(cls)
    known = {f.name: f for f in fields(cls) if f.name != "extra"}
    kwargs: dict[str, Any] = {}
    for name, spec in known.items():
        if name in value:
            kwargs[name] = parse(hints[name], value[name], f"{path}.{name}")
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ManifestError(f"{path}.{name}: required, missing")
    extra = {k: v for k, v in value.items() if k not in known}
    if "extra" in value:
        raise ManifestError(f"{path}.extra: a reserved name, not a manifest field")
    kwargs["extra"] = extra  # every part keeps the keys it does not know
    return cls(**kwargs)


def to_json(value: Any) -> Any:
    """A part (or any value inside one) as plain JSON data: extra keys first, typed fields over them."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {k: to_json(v) for k, v in getattr(value, "extra", {}).items()}
        optional = getattr(value, "OPTIONAL", ())
        for f in fields(value):
            item = getattr(value, f.name)
            if f.name == "extra" or (f.name in optional and (item is None or item == ())):
                continue  # a newer optional field left unset: absent, as older writers wrote it
            out[f.name] = to_json(item)
        return out
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def load(cls: type[T], data: Any, where: str = "") -> T:
    """DATA (JSON) as the part CLS, e.g. `load(TestSummary, counts)`; ManifestError names a bad field."""
    return typing.cast(T, parse(cls, data, where or cls.__name__))


def annotation_from(kind: str, entry: Any, path: str) -> Any:
    """A stored annotation entry as its typed part (unknown kinds stay plain JSON)."""
    cls = ANNOTATION_TYPES.get(kind)
    return parse(cls, entry, path) if cls is not None else entry


def annotations_from(grouped: Mapping[str, list[Any]]) -> Annotations:
    """Annotations grouped by kind (as stored) as the typed Annotations."""
    return load(Annotations, dict(grouped), f"{ROOT}.annotations")
