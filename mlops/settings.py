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

from mlops.errors import UsageError

# Short names for the settings people set most; each maps to (section, field).
ENV_SHORTCUTS = {
    "MLOPS_REGISTRY": ("registry", "uri"),
    "MLOPS_MODEL_NAME": ("registry", "model_name"),
    "MLOPS_MODEL_REF": ("api", "model_ref"),
    "MLOPS_SMTP_PASSWORD": ("notify", "smtp_password"),
    "MLOPS_FEEDBACK_TOKEN": ("monitor", "feedback_token"),
}
SECRET_FIELDS = {("notify", "smtp_password"), ("monitor", "feedback_token")}


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


@dataclass(frozen=True)
class GateSettings:
    accuracy_threshold: float = 0.80
    recall_floor: float = 0.60
    regression_tolerance: float = 0.02


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
    max_batch: int = 16
    tf_threads: int = 1  # TensorFlow intra-op threads per worker; 0: TensorFlow's default (all cores)


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


@dataclass(frozen=True)
class DeploySettings:
    approvers: tuple[str, ...] = ("product-owner",)
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
    serve_command: str = ""  # local API launcher; empty: `python -m mlops.cli serve`
    ready_timeout_s: int = 180  # a new local server must answer /readyz within this
    stop_timeout_s: int = 60  # graceful stop of the old local server before SIGKILL


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
    trigger_data_pipeline: bool = False  # live accuracy below the gate runs `mlops pipeline data`
    data_uri: str = ""  # the dataset that triggered pipeline retrains on


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
    monitor: MonitorSettings = field(default_factory=MonitorSettings)

    @property
    def registry_uri(self) -> str:
        """The registry root, defaulting to a folder under home."""
        return self.registry.uri or f"file://{(self.home / 'registry').resolve()}"

    @property
    def monitor_store_uri(self) -> str:
        """The store holding the monitoring/ area: monitor.store, else the registry's."""
        return self.monitor.store or self.registry_uri

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"


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
