"""Retraining: fine-tune production:current (else testing:latest) on new data, gate, register.

    retraining.retrain.retrain_and_register(settings, data_uri, *, force=False, actor=None,
                                            reason="") -> dict
Same summary as training.train.train_and_register; with unchanged data (the parent's dataset
fingerprint) and not force it returns {"skipped": True, "message", "parent", ...} without training.
"""
