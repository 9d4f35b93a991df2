"""Failure behaviour on both stores: racing promotions, crashes at every step, tampering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from manifests import lineage

from core.identity import os_account
from registry import ConflictError, IntegrityError, NotFoundError, Registry, RegistryError
from registry.manifest import TestRun


class Crash(Exception):
    """Stands in for the process dying at a step (nothing below the step runs)."""


def _steps_of(reg: Registry, action) -> list[str]:
    """The named steps an action passes through, recorded on a successful run."""
    seen: list[str] = []
    reg.fault_hook = seen.append
    try:
        action()
    finally:
        reg.fault_hook = None
    return seen


def _crash_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise Crash(step)

    return hook


def test_two_promotions_racing_in_threads_exactly_one_wins(
    registry_uri, tmp_path, model_dir, manifest, promote
):
    setup = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c0")
    for v in range(1, 4):
        setup.register(model_dir(), manifest, actor="a")
        setup.annotate(f"testing:{v}", TestRun(passed=True), actor="ci")
    promote(setup, "testing:1")
    barrier = threading.Barrier(2, timeout=30)
    results: dict[int, object] = {}

    def promote(version: int) -> None:
        reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / f"c{version}")
        # Both have read the pointer and copied their files before either swaps it.
        reg.fault_hook = lambda step: barrier.wait() if step == "promote:manifest" else None
        try:
            # Both approved over production:1; both pass every check before either swaps.
            results[version] = reg.promote(
                f"testing:{version}", expected_production=1, actor=f"po{version}"
            ).version
        except ConflictError as exc:
            results[version] = exc

    threads = [threading.Thread(target=promote, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [v for v, r in results.items() if r == v]
    losers = [v for v, r in results.items() if isinstance(r, ConflictError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "nothing was changed" in str(results[losers[0]])
    pointer = setup.pointer()
    assert (pointer["current"], pointer["previous"], pointer["stack"]) == (winners[0], 1, [1, winners[0]])
    assert [v.version for v in setup.list("production")] == sorted([1, winners[0]])
    with pytest.raises(NotFoundError, match="never promoted"):
        setup.resolve(f"production:{losers[0]}")
    promotes = [e for e in setup.audit() if e["action"] == "promote"]
    assert [e["version"] for e in promotes] == [1, winners[0]]
    # The loser's refusal is on the record too: who, what, why.
    [refused] = [e for e in setup.audit() if e["action"] == "refuse"]
    assert (refused["attempted"], refused["version"], refused["actor"]) == (
        "promote",
        losers[0],
        f"po{losers[0]}",
    )
    assert "production changed while promoting" in refused["reason"]


_WORKER = """
import json, os, sys, time
from pathlib import Path
from registry import ConflictError, Registry
uri, cache, version, barrier, step, mode, expected = sys.argv[1:8]
reg = Registry.open(uri, "xray", cache_dir=Path(cache))
def hook(name):
    if name != step:
        return
    if mode == "die":
        os._exit(17)  # a real crash: no finally blocks, no cleanup
    Path(barrier, version).touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
reg.fault_hook = hook
try:
    if step.startswith("register"):
        reg.register(Path(version), json.loads(os.environ["MANIFEST"]), actor="proc")
    else:
        over = None if expected == "none" else int(expected)
        reg.promote(f"testing:{version}", expected_production=over, actor=f"proc{version}")
    print(json.dumps({"won": version}))
except ConflictError as exc:
    print(json.dumps({"conflict": str(exc)}))
"""


def _worker(
    registry_uri: str, cache: Path, arg: str, barrier: Path, step: str, mode: str, expected: str = "none"
):
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, registry_uri, str(cache), arg, str(barrier), step, mode, expected],
        env={**os.environ, "MANIFEST": json.dumps(lineage())},  # what training hands the registry
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_promotions_racing_in_processes_exactly_one_wins(registry_uri, tmp_path, model_dir, manifest):
    setup = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c0")
    for v in (1, 2):
        setup.register(model_dir(), manifest, actor="a")
        setup.annotate(f"testing:{v}", TestRun(passed=True), actor="ci")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        _worker(registry_uri, tmp_path / f"c{v}", str(v), barrier, "promote:manifest", "wait") for v in (1, 2)
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(json.loads(out))
    assert sum("won" in o for o in outs) == 1, outs
    assert sum("conflict" in o for o in outs) == 1, outs
    winner = next(int(o["won"]) for o in outs if "won" in o)
    assert setup.pointer()["stack"] == [winner]
    assert [e["version"] for e in setup.audit() if e["action"] == "promote"] == [winner]


def test_crash_at_every_register_step_never_lists_a_half_version(registry_uri, tmp_path, model_dir, manifest):
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
    steps = _steps_of(reg, lambda: reg.register(model_dir(), manifest, actor="a"))
    assert steps[0] == "register:claimed" and "register:manifest" in steps
    assert any(s.startswith("register:file:") for s in steps)
    for step in steps:
        before = [v.version for v in reg.list()]
        reg.fault_hook = _crash_at(step)
        with pytest.raises(Crash):
            reg.register(model_dir(), manifest, actor="a")
        reg.fault_hook = None
        after = [v.version for v in reg.list()]
        if step == "register:manifest":  # the manifest is written: the version is complete
            assert after == [*before, 1 + len(steps)]  # the numbers in between stay unused
            reg.fetch("testing:latest")  # and fully usable
            # It died before logging: the event is rebuilt from the manifest.
            [event] = [e for e in reg.audit() if e.get("version") == after[-1]]
            assert (event["action"], event["actor"], event["recovered"]) == ("register", "a", True)
        else:
            assert after == before, step
    # Numbers claimed by crashed registrations are never reused.
    last = reg.register(model_dir(), manifest, actor="a")
    assert last.version == 1 + len(steps) + 1
    assert reg.resolve("testing:latest").version == last.version


def test_crash_at_every_promote_step_leaves_production_fully_old_or_new(
    registry_uri, tmp_path, model_dir, manifest, promote, signing_keys
):
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
    old_src = model_dir(b"old model")
    reg.register(old_src, manifest, actor="a")
    reg.register(model_dir(b"new model"), manifest, actor="a")
    reg.register(model_dir(b"probe"), manifest, actor="a")
    promote(reg, "testing:1")
    reg.annotate("testing:2", TestRun(passed=True), actor="ci")
    steps = _steps_of(reg, lambda: promote(reg, "testing:3"))
    reg.rollback(actor="po")
    assert steps[-1] == "promote:pointer" and "promote:files" in steps
    for step in steps:
        reg.fault_hook = _crash_at(step)
        with pytest.raises(Crash):
            promote(reg, "testing:2")
        reg.fault_hook = None
        current = reg.fetch("production:current")  # verified: every file matches, signature holds
        if step == "promote:pointer":
            assert current.version == 2
            assert current.model_path.read_bytes() == b"new model"
            # It died before logging: the event is rebuilt from the pointer history, approval included.
            recovered = reg.audit()[-1]
            assert {k: recovered[k] for k in ("action", "version", "actor", "area", "recovered")} == {
                "action": "promote", "version": 2, "actor": "po", "area": "production", "recovered": True,
            }  # fmt: skip
            assert recovered["approval"]["approved_by"] == "product-owner"
            assert reg.resolve("production:2").manifest.annotations.approvals[-1].identity == {
                "name": os_account(), "source": "os-user",
            }  # fmt: skip
            reg.rollback(actor="po")
        else:
            assert current.version == 1, step
            assert current.model_path.read_bytes() == b"old model"
            assert 2 not in [v.version for v in reg.list("production")]
    assert promote(reg, "testing:2").version == 2


def _two_promoted(registry_uri: str, cache: Path, model_dir, manifest, promote) -> Registry:
    """A registry where production:1 and then production:2 were promoted."""
    reg = Registry.open(registry_uri, "xray", cache_dir=cache)
    for v in (1, 2):
        reg.register(model_dir(), manifest, actor="a")
        promote(reg, f"testing:{v}")
    return reg


def test_crash_before_rollback_swap_changes_nothing(registry_uri, tmp_path, model_dir, manifest, promote):
    reg = _two_promoted(registry_uri, tmp_path / "c", model_dir, manifest, promote)
    reg.fault_hook = _crash_at("rollback:pointer")
    with pytest.raises(Crash):
        reg.rollback(actor="po")
    assert reg.pointer()["current"] == 2
    assert [e["action"] for e in reg.audit()] == ["register", "annotate:tests", "promote"] * 2


def test_crash_after_rollback_swap_still_logs_it(registry_uri, tmp_path, model_dir, manifest, promote):
    reg = _two_promoted(registry_uri, tmp_path / "c", model_dir, manifest, promote)
    reg.fault_hook = _crash_at("rollback:swapped")
    with pytest.raises(Crash):
        reg.rollback(actor="ops", reason="smoke")
    assert reg.pointer()["current"] == 1
    last = reg.audit()[-1]
    assert (last["action"], last["actor"], last["reason"], last["recovered"]) == (
        "rollback",
        "ops",
        "smoke",
        True,
    )
    assert not any(e.get("recovered") for e in reg.audit()[:-1])


@pytest.mark.slow
@pytest.mark.parametrize("step", ["register:file:model.keras", "register:files", "promote:files"])
def test_a_real_process_crash_leaves_a_consistent_registry(
    registry_uri, tmp_path, model_dir, manifest, step, promote, signing_keys
):
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
    reg.register(model_dir(b"v1"), manifest, actor="a")
    promote(reg, "testing:1")
    reg.register(model_dir(b"v2"), manifest, actor="a")
    reg.annotate("testing:2", TestRun(passed=True), actor="ci")
    arg = str(model_dir(b"v3")) if step.startswith("register") else "2"
    proc = _worker(registry_uri, tmp_path / "cw", arg, tmp_path, step, "die", expected="1")
    proc.communicate(timeout=120)
    assert proc.returncode == 17
    assert [v.version for v in reg.list()] == [1, 2]
    assert reg.fetch("production:current").model_path.read_bytes() == b"v1"
    # The registry still works after the crash: locks were released, numbers move on.
    assert reg.register(model_dir(b"v4"), manifest, actor="a").version == (4 if "register" in step else 3)
    assert promote(reg, "testing:2").version == 2


def test_tampered_production_copy_is_refused(registry_uri, tmp_path, model_dir, manifest, promote):
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
    reg.register(model_dir(), manifest, actor="a")
    promote(reg, "testing:1")
    # Replace (not edit in place) so a hard-linked testing copy stays intact, as on GCS.
    reg.store.write("production/xray/1/report.html", b"<html>changed</html>")
    # The promotion left a verified copy in the cache: a plain fetch serves those verified bytes...
    assert b"changed" not in (reg.fetch("production:current").dir / "report.html").read_bytes()
    # ...and checking the registry's copy (what test-model, promote and deploy do) refuses it.
    with pytest.raises(IntegrityError, match=r"production:1: file report\.html"):
        reg.fetch("production:current", refresh=True)
    assert reg.fetch("testing:1", refresh=True).version == 1


def test_missing_file_is_refused(registry_uri, tmp_path, model_dir, manifest):
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
    reg.register(model_dir(), manifest, actor="a")
    if registry_uri.startswith("file://"):
        Path(registry_uri.removeprefix("file://"), "testing/xray/1/plots/confusion.png").unlink()
    else:
        reg.store._blob("testing/xray/1/plots/confusion.png").delete()
    with pytest.raises(IntegrityError, match=r"plots/confusion\.png .*missing"):
        reg.fetch("testing:1")


@pytest.mark.gcs
def test_wrong_bucket_is_a_clear_error(fake_gcs, tmp_path, manifest):
    reg = Registry.open("gs://no-such-bucket-here", "xray", cache_dir=tmp_path / "c")
    with pytest.raises(NotFoundError, match="gs://no-such-bucket-here does not exist"):
        reg.list()
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.keras").write_bytes(b"m")
    with pytest.raises(NotFoundError, match="does not exist"):
        reg.register(src, manifest, actor="a")  # a valid manifest: the bucket is what is wrong


def test_missing_google_credentials_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    with pytest.raises(RegistryError, match=r"no Google credentials.*GOOGLE_APPLICATION_CREDENTIALS"):
        Registry.open("gs://some-bucket", "xray")


@pytest.mark.slow
def test_unreachable_gcs_fails_in_seconds_with_one_line(monkeypatch, cli):
    import time

    from core.processes import free_port

    port = free_port()  # closed again: nothing listens there
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    result = cli("--registry", "gs://bucket", "registry", "list")
    assert time.monotonic() - start < 30
    assert result.code == 1
    assert "GCS request to gs://bucket failed" in result.err and "check network access" in result.err
    assert len(result.err.strip().splitlines()) == 1


_APPROVER = """
import json, os, sys, time
from pathlib import Path
from registry import ConflictError, Registry
uri, cache, version, go, expected = sys.argv[1:6]
reg = Registry.open(uri, "xray", cache_dir=Path(cache))
print("ready", flush=True)
deadline = time.monotonic() + 60
while not Path(go).exists() and time.monotonic() < deadline:
    time.sleep(0.005)
try:
    reg.promote(f"testing:{version}", expected_production=int(expected), actor=f"approver{version}")
    print(json.dumps({"won": int(version)}))
except ConflictError as exc:
    print(json.dumps({"conflict": str(exc)}))
"""


def _approver(registry_uri: str, cache: Path, version: int, go: Path, expected: int):
    return subprocess.Popen(
        [sys.executable, "-c", _APPROVER, registry_uri, str(cache), str(version), str(go), str(expected)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_eight_concurrent_approvals_over_the_same_production_one_wins(
    registry_uri, tmp_path, model_dir, manifest, promote, signing_keys
):
    """Each approval names production:1; whatever the timing, one replaces it and seven are refused."""
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c0")
    for v in range(1, 10):
        reg.register(model_dir(), manifest, actor="a")
        reg.annotate(f"testing:{v}", TestRun(passed=True), actor="ci")
    promote(reg, "testing:1")
    go = tmp_path / "go"
    procs = [_approver(registry_uri, tmp_path / f"c{v}", v, go, 1) for v in range(2, 10)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    winners = [o["won"] for o in outs if "won" in o]
    conflicts = [o["conflict"] for o in outs if "conflict" in o]
    print(f"\n[numbers] {registry_uri.split(':')[0]}: 8 concurrent approvals over production:1: "
          f"{len(winners)} promoted, {len(conflicts)} refused with a conflict")  # fmt: skip
    assert len(winners) == 1 and len(conflicts) == 7, outs
    assert reg.pointer()["stack"] == [1, winners[0]]
    refusals = [e for e in reg.audit() if e["action"] == "refuse"]
    assert sorted(e["version"] for e in refusals) == sorted(set(range(2, 10)) - set(winners))
    assert reg.verify_audit().ok


@pytest.mark.slow
def test_kill_at_every_promote_step_never_promotes_without_the_approval(
    registry_uri, tmp_path, model_dir, manifest, promote, signing_keys
):
    """A real os._exit at each named step of a signed promotion: production is old or new, never half."""
    from registry.fsck import repair, scan

    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
    reg.register(model_dir(b"v1"), manifest, actor="a")
    promote(reg, "testing:1")
    reg.register(model_dir(b"v2"), manifest, actor="a")
    reg.register(model_dir(b"probe"), manifest, actor="a")
    reg.annotate("testing:2", TestRun(passed=True), actor="ci")
    steps = _steps_of(reg, lambda: promote(reg, "testing:3"))
    reg.rollback(actor="ops")
    promoted = 0
    for step in steps:
        proc = _worker(registry_uri, tmp_path / "cw", "2", tmp_path, step, "die", expected="1")
        proc.communicate(timeout=120)
        assert proc.returncode == 17, step
        current = reg.fetch("production:current", refresh=True)  # verified: sha256 and signature
        assert current.model_path.read_bytes() == (b"v2" if current.version == 2 else b"v1"), step
        if current.version == 2:
            promoted += 1
            [approval] = reg.resolve("production:2").manifest.annotations.approvals[-1:]
            assert approval.approved_by == "product-owner", step
            reg.rollback(actor="ops")
    print(f"\n[numbers] {registry_uri.split(':')[0]}: killed at {len(steps)} promote steps; "
          f"{promoted} took effect, each with its approval; 0 half-promoted")  # fmt: skip
    assert promoted == 1  # only a kill after the pointer swap lands the promotion
    assert scan(reg) and repair(reg, scan(reg), grace_s=0, actor="ops")
    assert scan(reg) == [] and reg.verify_audit().ok
    assert promote(reg, "testing:2").version == 2


_KILLABLE = """
import sys
from pathlib import Path
from registry import Registry
uri, cache = sys.argv[1:3]
reg = Registry.open(uri, "xray", cache_dir=Path(cache))
import model_signing.verifying  # imports and first requests done before the parent starts its clock
reg.resolve("testing:2")
print("ready", flush=True)
reg.promote("testing:2", expected_production=1, actor="killed")
print("done", flush=True)
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_of_a_promotion(
    registry_uri, tmp_path, model_dir, manifest, promote, signing_keys
):
    """kill -9 a promoting process after a random delay, many times: consistent, approved, cleanable."""
    import random
    import signal
    import time

    from registry.fsck import repair, scan

    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
    reg.register(model_dir(b"v1"), manifest, actor="a")
    promote(reg, "testing:1")
    reg.register(model_dir(b"v2" * 5000), manifest, actor="a")
    reg.annotate("testing:2", TestRun(passed=True), actor="ci")
    rng = random.Random(13)
    tries = 16
    outcomes = {"before": 0, "promoted": 0, "finished": 0}

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILLABLE, registry_uri, str(tmp_path / "ck")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout.readline().strip() == "ready"
        return proc

    # How long one promotion takes here: the kills are spread over that window (and a bit past it).
    proc, started = start(), time.monotonic()
    assert proc.stdout.readline().strip() == "done", proc.communicate()[1][-2000:]
    window = time.monotonic() - started
    proc.communicate(timeout=60)
    reg.rollback(actor="ops")
    for _ in range(tries):
        proc = start()
        time.sleep(rng.uniform(0, window * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        current = reg.fetch("production:current", refresh=True)
        if current.version == 2:
            approvals = reg.resolve("production:2").manifest.annotations.approvals
            assert approvals and approvals[-1].approved_by == "product-owner"
            outcomes["finished" if proc.returncode == 0 else "promoted"] += 1
            reg.rollback(actor="ops")
        else:
            assert current.model_path.read_bytes() == b"v1"
            outcomes["before"] += 1
    leftovers = scan(reg)
    kinds = ", ".join(sorted({f.kind for f in leftovers}))
    repair(reg, leftovers, grace_s=0, actor="ops")
    print(f"\n[numbers] {registry_uri.split(':')[0]}: {tries} kill -9 during a {window:.2f} s promotion: "
          f"{outcomes['before']} before the swap (production old), {outcomes['promoted']} after it, "
          f"{outcomes['finished']} finished first; 0 without an approval; "
          f"{len(leftovers)} leftovers removed by fsck ({kinds})")  # fmt: skip
    assert sum(outcomes.values()) == tries
    assert scan(reg) == [] and reg.verify_audit().ok
