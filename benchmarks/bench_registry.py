"""Registry benchmark: promotion, fetch and list, each against a naive baseline in the same run.

    .venv/bin/python benchmarks/bench_registry.py [--quick] [--no-gcs]

- promote: `reg.promote` (policy checks, a verified download of the registry's copy: sha256 and
  signature, then hard links + pointer CAS) vs `shutil.copytree` of the same version, for a 10 MB
  and a 200 MB model on the local store. The copy itself does not grow with size; the verification
  (reading every byte twice: sha256 and model-signing's hash) does, by design: a promotion checks
  the bytes it promotes. Versions are signed with a throw-away key pair; the approver is a Jenkins
  input submitter (environment), as in CI.
- fetch: a cached fetch (size+mtime stamp) vs re-hashing every file, and the first fetch.
- list: `mlops registry list` work (enumerate + summaries) with 1,000 versions vs the naive way
  (resolve each version and read its manifest with annotations, one by one); warm = summaries
  from the local cache (manifests are immutable), cold = every manifest read once. On GCS
  (fake-gcs-server) the summaries come with the listing as object metadata; the baselines read
  every manifest, sequentially and with 8 threads. Promotion there (server-side rewrite) is
  compared with downloading and re-uploading the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.identity import os_account
from registry import Registry
from registry.checksums import sha256_file
from registry.manifest import Manifest, TestRun
from registry.policy import Policy
from registry.signing import SigningConfig, generate_key_pair
from registry.version import SUMMARY_KEY, summarize

MANIFEST = {
    "model_file": "model.keras",
    "classes": ["covid", "normal", "pneumonia"],
    "preprocessing": {"image_size": 64, "channels": 1},
    "code": {"commit": None, "repo": None, "build_url": None},
    "dataset": {"uri": "/bench/data", "fingerprint": "0" * 64, "class_counts": {}, "split": {}},
    "params": {"mode": "train"},
    "parent": None,
    "metrics": {
        "accuracy": 0.91,
        "per_class": {c: {"recall": 0.9} for c in ("covid", "normal", "pneumonia")},
    },
    "gate": {"passed": True, "reasons": []},
}


def _timed(fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None) -> float:
    """Median seconds of fn over repeat runs (before runs untimed ahead of each)."""
    times = []
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _policy(work: Path) -> Policy:
    """Signed versions and an approver (this OS account, mapped: no trust policy), as before issue 23."""
    keys = work / "keys"
    if not (keys / "key.pem").exists():
        generate_key_pair(keys / "key.pem", keys / "key.pub")
    signing = SigningConfig(keys / "key.pem", (keys / "key.pub",), required=True)
    return Policy(("po",), (f"{os_account()}=po",), signing)


def _promote(reg: Registry, ref: str) -> None:
    """Promote as the approval workflow does: tests recorded, approved over production now."""
    if not reg.resolve(ref).manifest.annotations.tests:
        reg.annotate(ref, TestRun(passed=True), actor="bench")
    reg.promote(ref, expected_production=reg.pointer()["current"], actor="bench")


def _model_dir(root: Path, mb: int) -> Path:
    src = root / f"src-{mb}mb"
    (src / "plots").mkdir(parents=True)
    with open(src / "model.keras", "wb") as fh:
        for _ in range(mb):
            fh.write(os.urandom(1 << 20))
    (src / "report.html").write_text("<html>report</html>")
    (src / "plots" / "confusion.png").write_bytes(os.urandom(30_000))
    return src


def bench_promote(work: Path, sizes: list[int], repeat: int) -> list[tuple]:
    rows = []
    for mb in sizes:
        root = work / f"promote-{mb}"
        reg = Registry.open(f"file://{root}", "bench", cache_dir=work / "cache", policy=_policy(work))
        base = reg.register(_model_dir(root, 1), MANIFEST, actor="bench")
        big = reg.register(_model_dir(root, mb), MANIFEST, actor="bench")
        _promote(reg, base.ref)

        def promote(big=big, reg=reg) -> None:
            _promote(reg, big.ref)

        def reset(reg=reg, base=base) -> None:
            if reg.pointer()["current"] != base.version:
                reg.rollback(actor="bench")

        ours = _timed(promote, repeat, before=reset)
        target = root / "naive-copy"

        def naive(root=root, big=big, target=target) -> None:
            shutil.copytree(root / "testing" / "bench" / str(big.version), target)

        base_t = _timed(naive, repeat, before=lambda target=target: shutil.rmtree(target, ignore_errors=True))
        rows.append((f"promote {mb} MB model (local)", ours, "shutil.copytree", base_t))

        if mb == max(sizes):
            first = _timed(lambda reg=reg, big=big: reg.fetch(big.ref), 1)
            cached = _timed(lambda reg=reg, big=big: reg.fetch(big.ref), repeat)
            folder = reg.fetch(big.ref).dir

            def rehash(folder=folder) -> None:
                for path in folder.rglob("*"):
                    if path.is_file():
                        sha256_file(path)

            rows.append(
                (f"fetch {mb} MB, cached (stamp check)", cached, "re-hash every file", _timed(rehash, repeat))
            )
            rows.append(
                (f"fetch {mb} MB, first (copy + verify)", first, "re-hash every file", _timed(rehash, 1))
            )
        shutil.rmtree(root)
    return rows


def _seed(reg: Registry, n: int, src: Path) -> None:
    for i in range(n):
        reg.register(src, MANIFEST, actor="bench")
        if i % 250 == 249:
            print(f"  seeded {i + 1}/{n} versions", file=sys.stderr)


def _list_like_cli(reg: Registry) -> int:
    versions = reg.list()
    reg.pointer()
    return len(reg.summaries(versions))


def _naive_list(reg: Registry, n: int) -> int:
    return len([reg.resolve(f"testing:{v}").manifest for v in range(1, n + 1)])


def bench_list_local(work: Path, n: int, repeat: int) -> list[tuple]:
    reg = Registry.open(f"file://{work / 'list'}", "bench")
    _seed(reg, n, _model_dir(work / "list-src", 0))
    assert _list_like_cli(reg) == n == _naive_list(reg, n)
    ours = _timed(lambda: _list_like_cli(reg), repeat)
    cold = _timed(
        lambda: _list_like_cli(reg),
        repeat,
        before=lambda: (reg.local_cache / "summaries.json").unlink(missing_ok=True),
    )
    naive = _timed(lambda: _naive_list(reg, n), repeat)
    enum = _timed(lambda: reg.list(), repeat)
    return [
        (f"registry list, {n} versions (local)", ours, "resolve + manifest each", naive),
        (f"registry list, {n} versions, cold cache", cold, "resolve + manifest each", naive),
        (f"reg.list() only, {n} versions (local)", enum, "resolve + manifest each", naive),
    ]


def bench_gcs(work: Path, n: int, promote_mb: int, repeat: int) -> list[tuple]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from gcs import PROJECT, running_fake_gcs  # the same server the tests use

    log_dir = work / "fake-gcs"
    log_dir.mkdir()
    with running_fake_gcs(log_dir) as server:
        os.environ["STORAGE_EMULATOR_HOST"], os.environ["GOOGLE_CLOUD_PROJECT"] = server.url, PROJECT
        reg = Registry.open(server.new_bucket("bench-registry"), "bench", cache_dir=work / "gcs-cache")
        reg.register(_model_dir(work / "gcs-src", 0), MANIFEST, actor="bench")
        body = reg.store.read("testing/bench/1/manifest.json")
        assert body is not None
        keys = [f"testing/bench/{i}/manifest.json" for i in range(2, n + 1)]
        meta = {SUMMARY_KEY: json.dumps(summarize(Manifest.from_dict(json.loads(body))))}
        with ThreadPoolExecutor(8) as pool:  # seeding, untimed: listing reads only manifests
            list(pool.map(lambda key: reg.store.write(key, body, metadata=meta), keys))
        assert _list_like_cli(reg) == n

        def sequential() -> int:
            versions = reg.list()
            return len([reg.store.read(f"testing/bench/{v.version}/manifest.json") for v in versions])

        ours = _timed(lambda: _list_like_cli(reg), repeat)
        base = _timed(sequential, repeat)
        threaded = _timed(lambda: len(reg.manifests(reg.list())), repeat)
        rows = [
            (f"registry list, {n} versions (GCS fake)", ours, "sequential manifest reads", base),
            (f"registry list, {n} versions (GCS fake)", ours, "manifest reads, 8 threads", threaded),
        ]
        rows.append(_bench_gcs_promote(reg, work, promote_mb, repeat))
    return rows


def _bench_gcs_promote(reg: Registry, work: Path, mb: int, repeat: int) -> tuple:
    """Server-side rewrite + pointer CAS vs moving the bytes through this process."""
    reg.policy = _policy(work)
    base = reg.register(_model_dir(work / "gcs-base", 1), MANIFEST, actor="bench")
    big = reg.register(_model_dir(work / "gcs-big", mb), MANIFEST, actor="bench")
    _promote(reg, base.ref)

    def reset() -> None:
        if reg.pointer()["current"] != base.version:
            reg.rollback(actor="bench")

    ours = _timed(lambda: _promote(reg, big.ref), repeat, before=reset)
    tmp = work / "gcs-naive"

    def naive() -> None:
        for rel in big.manifest.files:
            reg.store.get_file(f"testing/bench/{big.version}/{rel}", tmp / rel)
            reg.store.put_file(f"naive/{rel}", tmp / rel)

    return (f"promote {mb} MB model (GCS fake)", ours, "download + upload", _timed(naive, repeat))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes and counts (CI smoke run)")
    parser.add_argument("--no-gcs", action="store_true", help="skip the fake-gcs-server case")
    args = parser.parse_args(argv)
    sizes, versions, repeat = ([10, 50], 200, 3) if args.quick else ([10, 200], 1000, 5)
    rows: list[tuple] = []
    with tempfile.TemporaryDirectory(prefix="bench-registry-", dir=os.environ.get("TMPDIR")) as tmp:
        work = Path(tmp)
        print(f"promote: models of {sizes} MB, {repeat} runs each", file=sys.stderr)
        rows += bench_promote(work, sizes, repeat)
        print(f"list: seeding {versions} versions", file=sys.stderr)
        rows += bench_list_local(work, versions, repeat)
        if not args.no_gcs:
            print(f"fake-gcs-server: list {versions} versions, promote {sizes[-1] // 4} MB", file=sys.stderr)
            rows += bench_gcs(work, versions, sizes[-1] // 4, repeat)
    print(f"\n{'case':<40} {'ours':>10}  {'baseline':<26} {'baseline s':>10} {'speed-up':>9}")
    for name, ours, base_name, base in rows:
        print(f"{name:<40} {ours:>9.4f}s  {base_name:<26} {base:>9.4f}s {base / ours:>8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
