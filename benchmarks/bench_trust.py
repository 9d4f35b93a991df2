"""Trust benchmark: what verifying a version's signed chain adds to an API worker's start.

    .venv/bin/python benchmarks/bench_trust.py [--size-mb 10] [--repeat 20]

A worker's model load (model_api.loading.fetch_model, what each gunicorn worker runs before it
loads TensorFlow) with a trust policy in force (the cached copy re-hashed, model.sig's key checked
against the policy, every attestation read and its DSSE signature verified) vs the same registry and
cache with no trust policy (the cache re-hashed, no chain). Both on a local registry holding one
fully attested version (provenance, gate, tests, approval). The goal: at most 50 ms added per start.
Requests are not touched: verification runs once per worker start, never per request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _time_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    from core.settings import load_settings
    from model_api.loading import fetch_model
    from registry import open_registry
    from registry.chain import attest
    from registry.signing import generate_key_pair

    root = Path(tempfile.mkdtemp(prefix="bench-trust-"))
    keys = {}
    for name in ("trainer", "tester", "approver"):
        keys[name] = root / f"{name}.pem"
        generate_key_pair(keys[name], keys[name].with_suffix(".pub"))
    suite = "sha256:" + "1" * 64
    policy = root / "policy.toml"
    lines = ["allow_unsigned = false", f'required_suites = ["{suite}"]']
    for name, path in keys.items():
        lines += [
            "[[signers]]",
            f'name = "{name}"',
            f'role = "{name}"',
            f'key = "{path.with_suffix(".pub")}"',
        ]
    policy.write_text("\n".join(lines) + "\n")
    os.environ.update(
        MLOPS_HOME=str(root / "home"),
        MLOPS_REGISTRY=f"file://{root / 'registry'}",
        MLOPS_SIGNING_PRIVATE_KEY=str(keys["trainer"]),
        MLOPS_TRUST_POLICY=str(policy),
    )
    src = root / "run"
    src.mkdir()
    (src / "model.keras").write_bytes(os.urandom(args.size_mb * 1024 * 1024))
    (src / "report.html").write_text("<html></html>")
    manifest = {"model_file": "model.keras", "classes": ["a", "b"], "preprocessing": {"size": 64},
                "gate": {"passed": True, "reasons": []}, "metrics": {"accuracy": 0.9}}  # fmt: skip
    reg = open_registry(load_settings())
    mv = reg.register(src, manifest, actor="bench")
    local = reg.fetch(mv.ref, refresh=True)
    facts = {"passed": True, "summary": {"passed": 1}, "suite_digest": suite, "with_api": True, "at": "now"}
    attest(reg, mv.version, local.digest, "tests", facts, keys["tester"])
    reg.promote(mv.ref, expected_production=None, approved_by="approver", approver_key=keys["approver"])

    fetch_model(load_settings(), "production:current")  # warm the cache and the imports
    policy_env = {"MLOPS_TRUST_POLICY": str(policy)}
    plain_env = {"MLOPS_SIGNING_PUBLIC_KEYS": str(keys["trainer"].with_suffix(".pub"))}
    samples: dict[str, list[float]] = {"trust": [], "plain": []}
    for _ in range(args.repeat):  # interleaved, so a busy moment of the machine hits both alike
        for label, env in (("trust", policy_env), ("plain", plain_env)):
            for key in ("MLOPS_TRUST_POLICY", "MLOPS_SIGNING_PUBLIC_KEYS"):
                os.environ.pop(key, None)
            os.environ.update(env)
            samples[label].append(_time_ms(lambda: fetch_model(load_settings(), "production:current")))
    trusted, plain = statistics.median(samples["trust"]), statistics.median(samples["plain"])
    added = trusted - plain
    print(f"model {args.size_mb} MB, median of {args.repeat} worker loads (settings + registry + fetch):")
    print(f"{'':<28}{'ms':>10}")
    print(f"{'no trust policy':<28}{plain:>10.1f}")
    print(f"{'trust policy, chain checked':<28}{trusted:>10.1f}")
    print(f"{'added by verification':<28}{added:>10.1f}   ratio {trusted / plain:.2f}x   goal <= 50 ms")
    return 0 if added <= 50 else 1


if __name__ == "__main__":
    sys.exit(main())
