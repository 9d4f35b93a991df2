"""TensorFlow distribution strategies for train and retrain: which one, on which devices, with what precision.

TensorFlow's own machinery, nothing home-made: `tf.distribute.MirroredStrategy` over the local GPUs
(or logical CPU devices, for tests), `MultiWorkerMirroredStrategy` over the workers TF_CONFIG names.
`train.batch_size` is the global batch: each replica gets batch_size / replicas, so one device and
eight see the same batches per step and the same learning rate fits both.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from core.errors import MlopsError, UsageError
from core.settings import TrainSettings
from training.tf_config import Cluster, read_cluster

STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
MIXED_PRECISION = ("auto", "on", "off")

Log = Callable[[str], None]


@dataclass
class Distribution:
    """The strategy chosen for this process, and the facts the lineage records about it."""

    name: str  # one of STRATEGIES except auto
    strategy: Any  # tf.distribute.Strategy
    replicas: int
    devices: list[str]  # device kinds of this worker's replicas, e.g. ["GPU", "GPU"]
    mixed_precision: bool
    cluster: Cluster = field(default_factory=Cluster)
    collective_timeout_s: float = 0.0

    @property
    def is_chief(self) -> bool:
        """Only the chief evaluates on the test split, writes the candidate and registers."""
        return self.cluster.is_chief

    @property
    def multi_worker(self) -> bool:
        return self.name == "multi-worker"

    def scope(self) -> contextlib.AbstractContextManager:
        """Build and compile the model in here so its variables are mirrored."""
        return self.strategy.scope()

    def describe(self) -> str:
        """One line for the log: which worker, which strategy, how many replicas on what."""
        worker = (
            f"worker {self.cluster.index} of {self.cluster.workers}" if self.multi_worker else "1 process"
        )
        role = " (chief)" if self.multi_worker and self.is_chief else ""
        kinds = ", ".join(sorted(set(self.devices)))
        precision = "mixed_float16" if self.mixed_precision else "float32"
        return (
            f"strategy {self.name}: {worker}{role}, {self.replicas} replicas in sync on {kinds}, {precision}"
        )

    def params(self, batch_size: int) -> dict[str, Any]:
        """What the manifest's params record about the distribution."""
        return {
            "strategy": self.name,
            "replicas": self.replicas,
            "workers": self.cluster.workers,
            "devices": list(self.devices),
            "mixed_precision": self.mixed_precision,
            "global_batch_size": batch_size,
            "per_replica_batch_size": per_replica_batch(batch_size, self.replicas),
        }


def per_replica_batch(batch_size: int, replicas: int) -> int:
    """The share of the global batch each replica computes (the global batch must cover every replica)."""
    if batch_size < replicas:
        raise UsageError(
            f"batch size {batch_size} is smaller than the {replicas} replicas; raise --batch-size"
        )
    return math.ceil(batch_size / replicas)


def _split_cpu(count: int) -> None:
    """Make `count` logical CPU devices; only possible before TensorFlow's runtime starts."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise MlopsError(
                f"train.cpu_devices={count}: TensorFlow already started with "
                f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s); set it before the run starts"
            ) from None


def _choose(requested: str, cluster: Cluster, gpus: int) -> str:
    if requested != "auto":
        return requested
    if cluster.workers > 1:
        return "multi-worker"
    return "mirrored" if gpus > 1 else "one"


def _mixed_precision(setting: str, gpus: int) -> bool:
    """Set Keras' global dtype policy; mixed_float16 pays off on GPUs only (on CPU it is slower)."""
    import keras

    if setting not in MIXED_PRECISION:
        raise UsageError(f"unknown train.mixed_precision {setting!r}; choose {', '.join(MIXED_PRECISION)}")
    on = setting == "on" or (setting == "auto" and gpus > 0)
    keras.mixed_precision.set_global_policy("mixed_float16" if on else "float32")
    return on


def setup(cfg: TrainSettings, log: Log) -> Distribution:
    """The strategy for this run: call before any other TensorFlow work (devices are fixed then)."""
    if cfg.strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {cfg.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    cluster = read_cluster()
    if cluster.workers > 1 and cfg.strategy not in ("auto", "multi-worker"):
        # Every worker would train alone and register its own version.
        raise UsageError(
            f"TF_CONFIG names {cluster.workers} workers but the strategy is {cfg.strategy}: "
            "use --strategy multi-worker (or auto), or unset TF_CONFIG"
        )
    import tensorflow as tf

    if cfg.cpu_devices > 1:
        _split_cpu(cfg.cpu_devices)
    gpus = tf.config.list_physical_devices("GPU")
    name = _choose(cfg.strategy, cluster, len(gpus))
    if name == "multi-worker":
        if cluster.workers < 2:
            raise UsageError(
                "--strategy multi-worker needs TF_CONFIG naming at least 2 workers "
                "(an Indexed Job builds it: k8s/training/distributed/)"
            )
        implementation = (
            tf.distribute.experimental.CommunicationImplementation.NCCL
            if gpus
            else tf.distribute.experimental.CommunicationImplementation.RING
        )
        # The timeout is what turns a killed peer into an error instead of a hang.
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=cfg.collective_timeout_s, implementation=implementation
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        devices = list(strategy.extended.worker_devices)
    elif name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        if len(devices) < 2:
            raise UsageError(
                f"--strategy mirrored needs more than one device; this machine shows {len(devices)} "
                f"({', '.join(devices)}): use --strategy one"
            )
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    else:
        strategy = tf.distribute.get_strategy()  # the default: one device, exactly as before
        devices = [(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name]
    kinds = [tf.DeviceSpec.from_string(d).device_type or "CPU" for d in devices]
    distribution = Distribution(
        name=name,
        strategy=strategy,
        replicas=int(strategy.num_replicas_in_sync),
        devices=kinds,
        mixed_precision=_mixed_precision(cfg.mixed_precision, len(gpus)),
        cluster=cluster,
        collective_timeout_s=cfg.collective_timeout_s,
    )
    log(distribution.describe())
    return distribution


def for_workers(dataset, items: int, batch_size: int, file_sharded: bool) -> tuple[Any, int]:
    """A multi-worker input: repeated, sharded by file (or by data), and its steps per epoch.

    Every worker must run the same number of steps or the collectives wait forever, so the input
    repeats and an epoch is a fixed number of global batches.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.FILE
        if file_sharded
        else tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.repeat().with_options(options), max(1, math.ceil(items / batch_size))


def _float32(config: Any) -> Any:
    """A model config with every mixed_float16 dtype policy replaced by float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32(value) for value in config]
    return "float32" if config == "mixed_float16" else config


def plain_copy(model):
    """The trained model outside any strategy and in float32: what the chief evaluates and registers.

    Mixed precision is a training speed-up; the serving image runs on CPUs, where float16 is slow, so
    the version is a float32 model (its variables were float32 all along) and is evaluated as such.
    """
    copy = model.__class__.from_config(_float32(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


_CAUSES = re.compile(r"unavailable|deadline|timed? ?out|connection|peer|abort|cancel", re.IGNORECASE)


def _cause(text: str) -> str:
    """The line of a TensorFlow error that says what happened (they start with "Graph execution error")."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if _CAUSES.search(line)), lines[0] if lines else "")[:300]


@contextlib.contextmanager
def cluster_errors(distribution: Distribution) -> Iterator[None]:
    """A lost worker or a timed-out collective becomes one clear error (exit 1; nothing registered)."""
    import tensorflow as tf

    try:
        yield
    except (tf.errors.OpError, RuntimeError) as exc:
        if not distribution.multi_worker:
            raise
        first = _cause(str(exc)) or type(exc).__name__
        raise MlopsError(
            f"multi-worker training failed on worker {distribution.cluster.index} of "
            f"{distribution.cluster.workers}: a worker was lost or a collective timed out "
            f"(train.collective_timeout_s={distribution.collective_timeout_s:g}): "
            f"{type(exc).__name__}: {first}. Nothing was registered"
        ) from None


def _patch_keras_reduce() -> None:
    """Keras 3's multi-worker reduction of step logs takes a mean over axis 0 of scalars and fails.

    keras-team/keras#20585 (MultiWorkerMirroredStrategy and Keras 3's fit). Patched once, only on
    the multi-worker path, to reduce with axis=None: the same mean, over the replicas.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "mlops_patched", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    # A marker on the function object (read back by getattr above); mypy allows no attributes on functions.
    reduce_per_replica.mlops_patched = True  # type: ignore[attr-defined]  # the marker, see above
    trainer.reduce_per_replica = reduce_per_replica


def prepare_distributed_fit(model, train) -> None:
    """Build the compiled model on one local batch before fit (keras-team/keras#20585).

    Keras' own pre-fit build averages a distributed batch over the replicas, which
    MultiWorkerMirroredStrategy refuses and MirroredStrategy fails on when a batch splits unevenly
    (31 images on 2 replicas); building from a local batch creates the same variables (optimizer
    and metrics too) in the scope.
    """
    _patch_keras_reduce()
    model._symbolic_build(data_batch=next(iter(train.take(1))))
    model._maybe_symbolic_build = lambda *args, **kwargs: None  # already built, from a local batch
