"""Training: dataset → content-hash split → tf.data → Keras model → evaluate → gate → register.

Public functions (the CLI is a thin wrapper over these):
    training.train.train_and_register(settings, data_uri, *, actor=None, reason="") -> dict
    training.stages.resolve|load|validate|split|train|evaluate|gate|register: the stages train and
        retrain compose, each taking the previous one's result (training.stage_results)
    training.sources.resolve_source(uri, cache_dir) -> Snapshot folder, gs://BUCKET/PREFIX or git+URL@REV
    training.data.load_dataset(uri, cache_dir) -> Dataset        resolve_source, then scan
    training.data_validation.validate(dataset, stats, reference, cfg, mode) -> DataCheck
    training.split.split_dataset(dataset, val_fraction, test_fraction) -> {"train", "val", "test"}
    training.inputs.image_dataset(paths, labels, spec, batch_size, shuffle_seed=None) -> tf.data
    training.gate.decide(metrics, gate_settings, baseline) -> gate dict (docs/manifest.md)
    training.golden.write_golden(folder, files, names, labels, probs, classes, per_class) -> int
    training.demo_data.write_demo_data(out, batch=1, per_class=150, size=64) -> counts
The summary dict: {"ref", "version", "metrics", "gate", "report", "run_dir", "parent"}; a failed
gate raises core.errors.CheckFailed (exit 3) with the same summary (ref None) as `.summary`.
"""
