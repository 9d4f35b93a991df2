"""Training throughput (images/s): tf.data pipeline vs naive per-file Python loader vs in-memory tensors.

All three feed the same small_cnn the same demo images, stored larger than the model input (like
real X-rays: 256 px files, 64 px model) so decoding and resizing cost what they cost in practice.
Two measurements per loader:
- input only: images/s delivered by the loader alone (no model), over all epochs;
- training: images/s of model.fit, steady state (the first epoch, which traces the graph, is
  left out; tf.data decodes in that epoch and serves later ones from its cache).
The naive loader (PIL open + resize per file in a Python generator, every epoch) is the baseline.

Then, in the same run:
- a TFRecord snapshot (`mlops dataset snapshot`: images stored already preprocessed) against the
  image files, cold: a fresh pipeline's first pass, the one that decodes (later epochs of both come
  from tf.data's cache, so they are the same);
- `mlops train` with 1 worker against 2 MultiWorkerMirroredStrategy workers on loopback: accuracy
  and wall time. On a 2-core machine the two workers share the cores, so this is a correctness check
  (same accuracy, one version), not a speed-up.

    .venv/bin/python benchmarks/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _naive_batches(paths, labels, image_size: int, batch_size: int, epochs: int):
    """PIL open + resize per file, numpy batches, in one Python thread: what people write first."""
    import numpy as np
    from PIL import Image

    for _ in range(epochs):
        for start in range(0, len(paths), batch_size):
            chunk = range(start, min(start + batch_size, len(paths)))
            images = []
            for i in chunk:
                with Image.open(paths[i]) as im:
                    im = im.convert("L").resize((image_size, image_size), Image.Resampling.BILINEAR)
                    images.append(np.asarray(im, dtype="float32")[..., None] / 255.0)
            yield np.stack(images), np.asarray([labels[i] for i in chunk], dtype="int32")


def _fit_rate(make_input, n: int, epochs: int, image_size: int, classes: int) -> float:
    """Steady-state training images/s over epochs 2..epochs+1 of a fresh small_cnn."""
    import keras

    from training.model import build_model, compile_model

    keras.utils.set_random_seed(7)
    model = build_model("small_cnn", image_size, 1, classes)
    compile_model(model, 1e-3)
    times: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter() - self.started)

    x, fit_kwargs = make_input(epochs + 1)
    model.fit(x, epochs=epochs + 1, verbose=0, shuffle=False, callbacks=[EpochTimer()], **fit_kwargs)
    return n * epochs / sum(times[1:])


def run(
    per_class: int, epochs: int, image_size: int, batch_size: int, file_size: int
) -> list[tuple[str, float, float]]:
    """(loader name, input-only images/s, training images/s) for each loader."""
    import numpy as np
    import tensorflow as tf

    from core.preprocessing import PreprocessSpec
    from training.data import scan_folder
    from training.demo_data import write_demo_data
    from training.inputs import image_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        write_demo_data(root, per_class=per_class, size=file_size)
        ds = scan_folder(root)
        index = {c: i for i, c in enumerate(ds.classes)}
        paths = [ds.path_of(i) for i in ds.items]
        labels = [index[i.label] for i in ds.items]
        n, classes = len(paths), len(ds.classes)
        spec = PreprocessSpec(image_size, 1)
        steps = -(-n // batch_size)
        x = np.stack([np.asarray(img) for img, _ in image_dataset(paths, labels, spec, n).unbatch()])
        y = np.asarray(labels, dtype="int32")

        loaders = {
            "naive Python loader (PIL per file)": lambda e: (
                _naive_batches(paths, labels, image_size, batch_size, e),
                {"steps_per_epoch": steps},
            ),
            "tf.data (parallel decode, cache, prefetch)": lambda e: (
                image_dataset(paths, labels, spec, batch_size, shuffle_seed=1),
                {},
            ),
            "in-memory tensors (upper bound)": lambda e: (
                tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size),
                {},
            ),
        }
        results = []
        for name, make_input in loaders.items():
            source, _ = make_input(epochs)
            started = time.perf_counter()
            if isinstance(source, tf.data.Dataset):
                for _ in range(epochs):
                    for _batch in source:
                        pass
            else:
                for _batch in source:
                    pass
            input_rate = n * epochs / (time.perf_counter() - started)
            fit_rate = _fit_rate(make_input, n, epochs, image_size, classes)
            print(f"  {name}: input {input_rate:.0f} images/s, training {fit_rate:.0f} images/s", flush=True)
            results.append((name, input_rate, fit_rate))
    return results


def run_snapshot(per_class: int, image_size: int, batch_size: int, file_size: int, passes: int) -> dict:
    """Cold images/s of one pass: image files (decode + preprocess) vs their TFRecord snapshot."""
    from core.preprocessing import PreprocessSpec
    from training.data import scan_folder
    from training.demo_data import write_demo_data
    from training.inputs import image_dataset
    from training.snapshot import Records, write_local
    from training.split import split_rule

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        write_demo_data(root, per_class=per_class, size=file_size)
        ds = scan_folder(root)
        spec = PreprocessSpec(image_size, 1)
        rule = split_rule(0.15, 0.15)
        meta = write_local(
            ds,
            Path(tmp) / "snap",
            spec=spec,
            rule=rule,
            statistics={},
            validation=None,
            shards=4,
            log=lambda m: None,
        )
        records = Records(Path(tmp) / "snap", meta)
        index = {c: i for i, c in enumerate(ds.classes)}
        train = [i for i in meta["items"] if i["split"] == "train"]
        paths = [root / i["path"] for i in train]
        labels = [index[i["label"]] for i in train]

        def cold_rate(make) -> float:
            best = 0.0
            for _ in range(passes):  # a fresh pipeline each time: nothing cached yet
                started = time.perf_counter()
                count = sum(int(images.shape[0]) for images, _ in make())
                best = max(best, count / (time.perf_counter() - started))
            return best

        files = cold_rate(lambda: image_dataset(paths, labels, spec, batch_size, shuffle_seed=1))
        snapshot = cold_rate(lambda: records.dataset("train", batch_size, 1))
        size = sum((Path(tmp) / "snap" / s["file"]).stat().st_size for s in meta["shards"]["train"])
    return {"images": len(train), "files": files, "snapshot": snapshot, "snapshot_mib": size / 2**20}


def run_workers(per_class: int, epochs: int) -> list[tuple[str, float, float, int]]:
    """(run, test accuracy, wall seconds, versions registered): mlops train, 1 process vs 2 workers."""
    import json
    import subprocess
    import sys

    from core.processes import free_port

    train = [
        "--epochs",
        str(epochs),
        "--image-size",
        "32",
        "--accuracy-threshold",
        "0",
        "--recall-floor",
        "0",
    ]
    mlops = [sys.executable, "-m", "mlops.cli"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "demo"
        demo = ["demo-data", "--out", str(data), "--per-class", str(per_class), "--size", "32"]
        subprocess.run([*mlops, *demo], check=True, capture_output=True)
        for workers in (1, 2):
            home = Path(tmp) / f"home{workers}"
            env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_TRAIN_EARLY_STOPPING_PATIENCE": "100"}
            ports = [free_port() for _ in range(workers)]
            cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
            started = time.perf_counter()
            procs = []
            for index in range(workers):
                strategy = ["--strategy", "multi-worker" if workers > 1 else "one"]
                env_i = dict(env)
                if workers > 1:
                    env_i["TF_CONFIG"] = json.dumps(
                        {"cluster": cluster, "task": {"type": "worker", "index": index}}
                    )
                cmd = [*mlops, "train", "--data", str(data), *train, *strategy, "--json"]
                procs.append(
                    subprocess.Popen(cmd, env=env_i, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                )
            outs = [proc.communicate()[0] for proc in procs]
            wall = time.perf_counter() - started
            if any(proc.returncode for proc in procs):
                raise SystemExit(f"{workers} worker(s): exit codes {[p.returncode for p in procs]}")
            chief = json.loads(outs[0])
            versions = len([d for d in (home / "registry" / "testing").rglob("manifest.json")])
            label = "1 process (strategy one)" if workers == 1 else "2 workers (multi-worker, loopback)"
            results.append((label, chief["metrics"]["accuracy"], wall, versions))
            print(f"  {label}: accuracy {chief['metrics']['accuracy']:.3f}, {wall:.1f} s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (fewer images, epochs)")
    args = parser.parse_args()
    per_class, epochs = (60, 2) if args.quick else (200, 4)
    image_size, batch_size, file_size = 64, 32, 256
    print(
        f"training throughput: small_cnn at {image_size}x{image_size}, {3 * per_class} PNGs "
        f"{file_size}x{file_size}, "
        f"batch {batch_size}, {epochs} timed epochs, {os.cpu_count()} CPUs"
    )
    results = run(per_class, epochs, image_size, batch_size, file_size)
    base_in, base_fit = results[0][1], results[0][2]
    print(f"\n{'loader':<44} {'input img/s':>12} {'vs naive':>9} {'train img/s':>12} {'vs naive':>9}")
    for name, input_rate, fit_rate in results:
        print(
            f"{name:<44} {input_rate:>12.0f} {input_rate / base_in:>8.2f}x "
            f"{fit_rate:>12.0f} {fit_rate / base_fit:>8.2f}x"
        )

    snap = run_snapshot(per_class, image_size, batch_size, file_size, passes=2 if args.quick else 3)
    print(f"\nfirst (decoding) pass over the train split, {snap['images']} images, best of the passes:")
    print(f"{'input':<44} {'img/s':>12} {'vs files':>9}")
    print(f"{'image files (decode + preprocess)':<44} {snap['files']:>12.0f} {1:>8.2f}x")
    ratio = snap["snapshot"] / snap["files"]
    print(f"{'TFRecord snapshot (stored tensors)':<44} {snap['snapshot']:>12.0f} {ratio:>8.2f}x")
    print(f"(the snapshot's train shards: {snap['snapshot_mib']:.1f} MiB of float32 tensors)")

    workers = run_workers(60, 20)  # fewer epochs stop before convergence: accuracies would differ by chance
    print(f"\nmlops train on 180 demo images (32 px), 1 vs 2 workers on loopback, {os.cpu_count()} CPUs:")
    print(f"{'run':<44} {'accuracy':>9} {'wall s':>8} {'versions':>9}")
    for label, accuracy, wall, versions in workers:
        print(f"{label:<44} {accuracy:>9.3f} {wall:>8.1f} {versions:>9}")
    print("(2 workers share the same cores here: a correctness check, not a speed-up)")


if __name__ == "__main__":
    main()
