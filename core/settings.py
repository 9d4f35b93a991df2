"""All configuration, parsed to real types once.

Layers, later wins: code defaults → `mlops.toml` (or the file named by `MLOPS_CONFIG`) →
environment (`MLOPS_<SECTION>_<FIELD>`, e.g. `MLOPS_GATE_ACCURACY_THRESHOLD=0.9`, plus the
shortcuts below) → explicit overrides (CLI options). Secrets come from the environment only.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UsageError

# Short names for the settings people set most; each maps to (section, field).
ENV_SHORTCUTS = {
    "MLOPS_REGISTRY": ("registry", "uri"),
    "MLOPS_MODEL_NAME": ("registry", "model_name"),
    "MLOPS_MODEL_REF": ("api", "model_ref"),
    "MLOPS_SMTP_PASSWORD": ("notify", "smtp_password"),
    "MLOPS_FEEDBACK_TOKEN": ("monitor", "feedback_token"),
    "MLOPS_TRAFFIC_TOKEN": ("monitor", "traffic_token"),
    "MLOPS_REQUEST_ID_SECRET": ("monitor", "request_id_secret"),
}
SECRET_FIELDS = {
    ("notify", "smtp_password"),
    ("signing", "key_password"),
    ("monitor", "feedback_token"),
    ("monitor", "traffic_token"),
    ("monitor", "request_id_secret"),
}


@dataclass(frozen=True)
class RegistrySettings:
    uri: str = ""  # empty: file://<home>/registry
    model_name: str = "xray-classifier"


@dataclass(frozen=True)
class TrainSettings:
    image_size: int = 64
    channels: int = 1  # chest X-rays are grayscale
    architecture: str = "small_cnn"  # or mobilenet_v3_small, efficientnet_b0
    weights: str = ""  # local weights file for a keras.applications backbone; empty: random init
    batch_size: int = 32
    epochs: int = 30
    learning_rate: float = 1e-3
    fine_tune_epochs: int = 6
    fine_tune_learning_rate: float = 3e-4
    early_stopping_patience: int = 8  # BatchNorm val loss is noisy in the first epochs
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 1337
    # Distribution (training/distribute.py): auto | one | mirrored | multi-worker. auto: multi-worker
    # when TF_CONFIG names several workers, mirrored when more than one GPU is visible, else one device.
    strategy: str = "auto"
    mixed_precision: str = "auto"  # auto (on when GPUs are visible) | on | off
    # Split the one CPU into this many logical devices (0: as TensorFlow finds it). For tests and
    # simulation only: it lets MirroredStrategy run across "devices" on a machine with no GPU.
    cpu_devices: int = 0
    collective_timeout_s: float = 120.0  # a collective that waits longer (a lost worker) fails the run
    # An Indexed Job (k8s/training/distributed/) sets these; `mlops train` builds TF_CONFIG from them
    # and JOB_COMPLETION_INDEX (training/tf_config.py). workers <= 1: no cluster.
    workers: int = 1
    worker_service: str = ""  # the headless Service whose DNS names the worker pods
    worker_port: int = 2222


@dataclass(frozen=True)
class GateSettings:
    accuracy_threshold: float = 0.80
    recall_floor: float = 0.60
    regression_tolerance: float = 0.02  # a drop this small is not a regression, however certain
    confidence: float = 0.95  # of the Wilson and bootstrap intervals (training/paired.py)
    bootstrap_resamples: int = 2000
    bootstrap_seed: int = 0  # fixed: the same candidate and data give the same decision
    max_ece: float = 0.15  # expected calibration error after temperature scaling (10 bins)
    reference_set: str = "latest"  # the locked reference set in force: latest | none | its number


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    model_ref: str = "production:current"
    workers: int = 2
    threads: int = 4
    timeout_s: int = 60
    max_body_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    # The decode budget of one request, summed over its images from their headers before decoding.
    max_request_pixels: int = 100_000_000
    max_request_decoded_bytes: int = 200 * 1024 * 1024
    max_batch: int = 16
    tf_threads: int = 1  # TensorFlow intra-op threads per worker; 0: TensorFlow's default (all cores)
    # Deferral: each version's abstention threshold is chosen on its validation split so the cases it
    # keeps reach this accuracy; below it the API answers "defer to radiologist" (training/deferral.py).
    target_accuracy: float = 0.98
    grpc_port: int = 8081  # OIP v2 over gRPC beside REST (model_api/grpc_server.py); 0: off
    # Adaptive batching inside a worker (model_api/batching.py): concurrent requests share one graph
    # call of up to batch_max_size images, waiting at most batch_max_wait_ms for company; 1: off.
    batch_max_size: int = 1
    batch_max_wait_ms: float = 2.0


@dataclass(frozen=True)
class NotifySettings:
    product_owner: str = "product-owner@example.com"
    sender: str = "mlops@example.com"
    smtp_host: str = ""  # empty: write .eml files to <home>/outbox
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_starttls: bool = False
    smtp_timeout_s: float = 15.0
    attach_max_bytes: int = 5 * 1024 * 1024  # larger reports are linked, not attached


@dataclass(frozen=True)
class ModelTestSettings:
    latency_budget_ms: float = 100.0  # median single-image predict through the serving path
    robustness_min_agreement: float = 0.90  # share of variants (channels, resolution) keeping the label
    sample_size: int = 64  # test images used by the robustness, determinism and latency tests
    api_start_timeout_s: int = 180  # `test-model --with-api`: wait this long for /readyz
    golden_per_class: int = 3  # held-out test images per class kept with each version as golden examples
    golden_versions: int = 3  # a version must keep the golden labels of this many earlier versions


@dataclass(frozen=True)
class SigningSettings:
    """Signed versions (OpenSSF model-signing, elliptic-curve key pair): paths only, never key material."""

    private_key: str = ""  # PEM private key that signs at registration; empty: <home>/keys/ if there
    public_keys: tuple[str, ...] = ()  # PEM public keys that verify; empty: <home>/keys/ if there
    required: bool = False  # refuse unsigned versions (the k8s overlays and Jenkins set it)
    key_password: str = field(default="", repr=False)  # of an encrypted private key; environment only


@dataclass(frozen=True)
class TrustSettings:
    """Signed attestations (registry/trust.py): the policy file and the keys that sign, by path only."""

    policy: str = ""  # trust policy file outside the registry; empty: <home>/trust/policy.toml if there
    tester_key: str = ""  # private key that signs model test results; empty: <home>/keys/tester.pem if there
    approver_key: str = ""  # private key that signs approvals (Jenkins: the controller's credential file)


@dataclass(frozen=True)
class DeploySettings:
    approvers: tuple[str, ...] = ("product-owner",)
    # ACCOUNT=APPROVER pairs: an authenticated account (Jenkins user or OS login) that approves as
    # APPROVER. The account "@owner" is the OS user owning a local (file://) registry folder.
    approver_accounts: tuple[str, ...] = ()
    image: str = "mlops-xray-api"
    image_tag: str = "latest"
    namespace: str = "mlops"
    kubectl: str = "kubectl"
    rollout_timeout_s: int = 300
    smoke_timeout_s: int = 120
    kubernetes_version: str = "1.32.0"  # schemas kubernetes-validate checks the manifests against
    k8s_dir: str = "k8s"  # kustomize tree, relative to the working directory (the repo root)
    overlay: str = "production"  # k8s/overlays/<overlay>
    deployment: str = "xray-api"  # the Deployment and container the overlays define
    serve_command: str = ""  # local API launcher; empty: `python -m model_api` (mlops-serve)
    ready_timeout_s: int = 180  # a new local server must answer /readyz within this
    stop_timeout_s: int = 60  # graceful stop of the old local server before SIGKILL
    # When the local API's server dies on its own: "restart" it (up to max_restarts a minute, then
    # close) or "close" the port at once, so clients are refused instead of waiting on a dead port.
    on_server_exit: str = "restart"
    max_restarts: int = 3


@dataclass(frozen=True)
class UiSettings:
    host: str = "127.0.0.1"
    port: int = 8090
    workers: int = 2
    threads: int = 4
    page_size: int = 50  # versions or audit events per page


@dataclass(frozen=True)
class SourceSettings:
    git_timeout_s: float = 1800.0  # one git fetch or checkout of a dataset or test-suite repository


@dataclass(frozen=True)
class ValidationSettings:
    """Data validation before retraining, against the training data of the model retrained."""

    # More unusable files than this stops the data pipeline (train from scratch skips and reports them).
    max_bad_files: int = 0
    # Value skew (trained, with a warning in the lineage and the email) beyond any of these:
    class_balance_max_shift: float = 0.20  # total variation distance between the class shares
    size_max_ratio: float = 1.5  # median width or height, new / reference or reference / new
    channels_max_shift: float = 0.10  # total variation distance between the channel-count shares
    intensity_max_shift: float = 0.10  # mean pixel intensity in [0, 1]
    contrast_max_shift: float = 0.08  # mean per-image standard deviation of intensity in [0, 1]
    stats_sample: int = 300  # images per dataset whose statistics are computed (a content-hash sample)
    stop_on_value_skew: bool = False  # true: value skew stops the data pipeline like schema skew
    # Label checks (training/label_check.py): a larger share of pushed files that look mislabelled to
    # the production model stops the data pipeline; any flagged file is a warning naming the classes.
    max_label_issue_share: float = 0.10
    # A scorer below this test accuracy (its manifest's) is no judge of labels: the check is skipped
    # with a note rather than stopping good data on a weak model's say-so.
    label_check_min_accuracy: float = 0.90


@dataclass(frozen=True)
class MonitorSettings:
    # The API's prediction log (model_api/prediction_log.py) and ground-truth feedback.
    store: str = ""  # where the monitoring/ area lives: empty: the registry's store
    log_predictions: bool = True
    log_batch_size: int = 256  # records per stored object
    log_flush_interval_s: float = 5.0  # a batch is written at least this often while traffic flows
    log_queue_size: int = 10_000  # records waiting per worker; beyond it they are dropped and counted
    log_shutdown_timeout_s: float = 10.0  # a stopping worker waits this long to flush (< gunicorn's 20 s)
    sample_images: float = 0.0  # share of inputs stored as images: patient data, keep 0 unless approved
    feedback_token: str = field(default="", repr=False)  # bearer token of POST /feedback; empty: disabled
    # Signs the request ids the API issues, so /feedback takes only those (model_api/request_ids.py).
    # Empty: derived from feedback_token, which lets a token holder forge ids; set it apart in production.
    request_id_secret: str = field(default="", repr=False)
    feedback_rate_per_s: float = 10.0  # POST /feedback per token and worker: a token bucket refilled
    feedback_burst: int = 200  # at this rate, holding this many (429 with Retry-After beyond)
    # `mlops monitor`: live traffic against the version's reference profile, and live accuracy.
    model_ref: str = "production:current"
    window: str = "24h"  # default time window (90m, 24h, 7d)
    min_records: int = 200  # fewer predictions in the window: drift is not judged
    min_feedback: int = 50  # fewer labelled predictions: live accuracy is not judged
    psi_threshold: float = 0.2  # drift needs PSI at least this large ...
    p_value: float = 0.01  # ... and a two-sample test below this (both: size and significance)
    min_accuracy: float = 0.80  # live accuracy gate (the training gate's default)
    min_recall: float = 0.60  # every class's live recall ...
    min_class_feedback: int = 10  # ... judged for classes with at least this many labelled predictions
    # Against the version's own held-out figures (monitoring/accuracy.py, monitoring/estimate.py).
    alpha: float = 0.01  # one-sided tests: live accuracy/recall below held-out, estimate below reference
    accuracy_tolerance: float = 0.02  # H0: live >= held-out - this (a test split is a sample too)
    detect_drop: float = 0.05  # the report states how many labels a drop this large needs to be seen
    estimate_min_drop: float = 0.05  # the label-free estimate alerts on a significant drop at least this big
    # Smoke/test/canary traffic from the project's own clients: X-MLOps-Traffic-Class with this bearer
    # token (secret; empty: the API refuses the header). `mlops monitor` counts production only.
    traffic_token: str = field(default="", repr=False)
    trigger_data_pipeline: bool = False  # live accuracy below the gate runs `mlops pipeline data`
    data_uri: str = ""  # the dataset that triggered pipeline retrains on


@dataclass(frozen=True)
class DicomSettings:
    # DICOM in (DICOMweb STOW-RS under /dicomweb/, DIMSE C-STORE with `mlops serve --dicom-port`) and
    # DICOM results out (SR, Secondary Capture): model_api/dicom_intake.py and dicom_results.py.
    # An instance is classified only when every rule holds; the others are listed as not processed.
    modalities: tuple[str, ...] = ("CR", "DX")  # Modality (0008,0060) must be one of these
    photometric: tuple[str, ...] = ("MONOCHROME1", "MONOCHROME2")  # PhotometricInterpretation
    image_type_excluded: tuple[str, ...] = ("LOCALIZER", "SECONDARY")  # no ImageType value may be one
    manufacturer: str = "mlops-xray"  # Contributing Equipment of the results
    results_retention_days: float = 7.0  # DICOM results kept for WADO-RS this long
    port: int = 0  # the DIMSE Storage SCP's port (`mlops serve --dicom-port`); 0: no SCP
    ae_title: str = "MLOPS-XRAY"  # the Storage SCP's AE title
    destination: str = ""  # AE@host:port the SCP sends its results to (C-STORE SCU); empty: kept only


@dataclass(frozen=True)
class CanarySettings:
    # `mlops deploy --canary PCT`: the candidate serves a share of traffic beside production, and
    # its /metrics are compared with the baseline's over the same window (deploy/canary_analysis.py).
    requests: int = 300  # the analysis passes once the canary has served this many /predict requests ...
    duration_s: float = 600.0  # ... and takes a last look after this long (pulls unless it fails or passes)
    min_requests: int = 100  # no verdict before each side has served this many: small samples mislead
    interval_s: float = 2.0  # how often both sides' /metrics are read (and progress printed)
    max_error_rate_increase: float = 0.02  # canary 5xx share minus baseline's
    max_p99_ratio: float = 2.0  # canary p99 latency / baseline p99 ...
    min_p99_increase_s: float = 0.1  # ... and at least this much slower (histogram buckets are coarse)
    max_class_share_shift: float = 0.25  # total variation distance between the predicted class shares
    max_confidence_drop: float = 0.10  # baseline mean confidence minus canary's
    # Each rule is a one-sided test (deploy/canary_stats.py) taken only at `looks` planned looks
    # (min_requests .. requests, evenly); a candidate identical to production is pulled in at most
    # `alpha` of runs (Bonferroni over 4 rules x looks).
    alpha: float = 0.01
    looks: int = 3
    # At the last look, a rule over its limit with p <= this (suggestive, not proven) is
    # "inconclusive", which pulls too: a candidate within a rule's limit is pulled by that rule in
    # at most alpha / 4 + inconclusive_alpha of runs (4.25%).
    inconclusive_alpha: float = 0.04


@dataclass(frozen=True)
class Settings:
    home: Path = Path(".mlops")  # local state: registry, runs, outbox, pid files
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    model_tests: ModelTestSettings = field(default_factory=ModelTestSettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    ui: UiSettings = field(default_factory=UiSettings)
    signing: SigningSettings = field(default_factory=SigningSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
    sources: SourceSettings = field(default_factory=SourceSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    canary: CanarySettings = field(default_factory=CanarySettings)
    dicom: DicomSettings = field(default_factory=DicomSettings)

    # Every path under the home folder is defined here and nowhere else.
    @property
    def registry_dir(self) -> Path:
        """The default local registry folder (used when registry.uri is empty)."""
        return self.home / "registry"

    @property
    def registry_uri(self) -> str:
        """The registry root, defaulting to a folder under home."""
        return self.registry.uri or f"file://{self.registry_dir.resolve()}"

    @property
    def monitor_store_uri(self) -> str:
        """The store holding the monitoring/ area: monitor.store, else the registry's."""
        return self.monitor.store or self.registry_uri

    @property
    def cache_dir(self) -> Path:
        """Verified registry downloads and gs:// dataset mirrors."""
        return self.home / "cache"

    @property
    def runs_dir(self) -> Path:
        """One folder per training run (candidate, report, plots) and default JUnit files."""
        return self.home / "runs"

    @property
    def reports_dir(self) -> Path:
        """Where pipelines write JUnit XML and other evidence (the Jenkinsfile archives reports/)."""
        return self.home / "reports"

    @property
    def outbox(self) -> Path:
        """Emails as .eml files when no SMTP host is set."""
        return self.home / "outbox"

    @property
    def demo_data_dir(self) -> Path:
        """Where `mlops demo-data` writes and `mlops pipeline code` looks for demo data by default."""
        return self.home / "data" / "demo"

    @property
    def keys_dir(self) -> Path:
        """The local signing key pair `mlops keys init` writes (the laptop default)."""
        return self.home / "keys"

    @property
    def signing_key_path(self) -> Path | None:
        """The private key that signs at registration: signing.private_key, else the home one if present."""
        if self.signing.private_key:
            return Path(self.signing.private_key).expanduser()
        default = self.keys_dir / "signing-key.pem"
        return default if default.is_file() else None

    @property
    def public_key_paths(self) -> tuple[Path, ...]:
        """The public keys that verify: signing.public_keys, else the home one if present."""
        if self.signing.public_keys:
            return tuple(Path(p).expanduser() for p in self.signing.public_keys)
        default = self.keys_dir / "signing-key.pub"
        return (default,) if default.is_file() else ()

    @property
    def trust_policy_path(self) -> Path:
        """The laptop trust policy `mlops pipeline` and `mlops keys init --trust` write."""
        return self.home / "trust" / "policy.toml"

    @property
    def tester_key_path(self) -> Path | None:
        """The private key that signs model test results: trust.tester_key, else the home one if present."""
        if self.trust.tester_key:
            return Path(self.trust.tester_key).expanduser()
        default = self.keys_dir / "tester.pem"
        return default if default.is_file() else None

    @property
    def deploy_dir(self) -> Path:
        """The local deployment's state file, lock and server logs."""
        return self.home / "deploy"

    @property
    def deploy_state(self) -> Path:
        """The local deployment's state: socket holder, current and previous server."""
        return self.deploy_dir / "local.json"

    @property
    def deploy_logs(self) -> Path:
        """Logs of the local API servers and the socket holder."""
        return self.deploy_dir / "logs"

    @property
    def triggers_dir(self) -> Path:
        """Local push triggers: which repositories run which pipeline, the lock, runs and logs."""
        return self.home / "triggers"

    @property
    def triggers_config(self) -> Path:
        """The repositories `mlops triggers install` set up, and the branch each one triggers on."""
        return self.triggers_dir / "triggers.json"

    @property
    def triggers_lock(self) -> Path:
        """Held by the pipeline run going on: one run at a time, the others wait their turn."""
        return self.triggers_dir / "pipeline.lock"

    @property
    def trigger_runs(self) -> Path:
        """One JSON record per queued run: what was pushed, its state, exit code and log."""
        return self.triggers_dir / "runs"

    @property
    def trigger_logs(self) -> Path:
        """One log file per pipeline run started by a push."""
        return self.triggers_dir / "logs"


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as MLOPS_* variables, so a child process sees exactly what we see (secrets aside)."""
    env = {"MLOPS_HOME": str(settings.home.resolve()), "MLOPS_REGISTRY": settings.registry_uri}
    for section in dataclasses.fields(settings):
        value = getattr(settings, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        for item in dataclasses.fields(value):
            if (section.name, item.name) in SECRET_FIELDS:
                continue  # secrets stay in the environment they came from
            raw = getattr(value, item.name)
            text = ",".join(raw) if isinstance(raw, tuple) else str(raw)
            env[f"MLOPS_{section.name.upper()}_{item.name.upper()}"] = text
    env.pop("MLOPS_REGISTRY_URI", None)  # MLOPS_REGISTRY carries the resolved root
    return env


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Turn a TOML or environment value into the field's declared type."""
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(value)
        if typ in (int, float, str):
            if typ is int and isinstance(value, float | bool):
                raise ValueError(value)
            return typ(value)
        if typ is Path:
            return Path(value)
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if origin in (types.UnionType, typing.Union):
            return value
    except (TypeError, ValueError):
        raise UsageError(
            f"setting {where}: cannot read {value!r} as {getattr(typ, '__name__', typ)}"
        ) from None
    raise UsageError(f"setting {where}: unsupported type {typ}")


def _section_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply(settings: Settings, section: str, name: str, value: Any, where: str) -> Settings:
    top_types = _section_types(Settings)
    if section == "":
        if name not in top_types or dataclasses.is_dataclass(top_types[name]):
            raise UsageError(f"unknown setting {where}")
        return dataclasses.replace(settings, **{name: _coerce(value, top_types[name], where)})
    if section not in top_types or not dataclasses.is_dataclass(top_types[section]):
        raise UsageError(f"unknown settings section {where}")
    current = getattr(settings, section)
    field_types = _section_types(type(current))
    if name not in field_types:
        raise UsageError(f"unknown setting {where}; known: {', '.join(sorted(field_types))}")
    updated = dataclasses.replace(current, **{name: _coerce(value, field_types[name], where)})
    return dataclasses.replace(settings, **{section: updated})


def load_settings(
    overrides: dict[str, Any] | None = None,
    env: typing.Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build Settings from defaults, the config file, the environment and overrides.

    `overrides` keys are "section.field" (or "home"); a None value means "not given".
    """
    env = os.environ if env is None else env
    settings = Settings()

    path = config_file or (Path(env["MLOPS_CONFIG"]) if env.get("MLOPS_CONFIG") else Path("mlops.toml"))
    if config_file is not None or env.get("MLOPS_CONFIG") or path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
        for key, value in data.items():
            if isinstance(value, dict):
                for name, item in value.items():
                    if (key, name) in SECRET_FIELDS:
                        raise UsageError(f"{path}: {key}.{name} is a secret; set it in the environment")
                    settings = _apply(settings, key, name, item, f"{path}: {key}.{name}")
            else:
                settings = _apply(settings, "", key, value, f"{path}: {key}")

    if env.get("MLOPS_HOME"):
        settings = _apply(settings, "", "home", env["MLOPS_HOME"], "MLOPS_HOME")
    sections = [n for n, t in _section_types(Settings).items() if dataclasses.is_dataclass(t)]
    for key, value in sorted(env.items()):
        if key in ENV_SHORTCUTS:
            section, name = ENV_SHORTCUTS[key]
            settings = _apply(settings, section, name, value, key)
            continue
        for section in sections:
            prefix = f"MLOPS_{section.upper()}_"
            if key.startswith(prefix):
                settings = _apply(settings, section, key[len(prefix) :].lower(), value, key)

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, name = key.rpartition(".")
        settings = _apply(settings, section, name, value, f"option {key}")
    return settings
