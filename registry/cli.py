"""CLI verbs registry list|show|audit|fsck and keys init (promote and rollback live in deploy/)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.actor import default_actor
from core.errors import EXIT_ERROR, EXIT_FAILED_CHECK, EXIT_OK, UsageError
from core.settings import Settings
from registry.core import Registry, open_registry
from registry.manifest import Dataset, Params, Reference, to_json
from registry.refs import AREAS, REF_HELP
from registry.version import ModelVersion


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def _marker(reg_pointer: dict[str, Any], version: int) -> str:
    if reg_pointer.get("current") == version:
        return "current"
    if reg_pointer.get("previous") == version:
        return "previous"
    return ""


def _list(args: argparse.Namespace, settings: Settings) -> int:
    reg = open_registry(settings)
    versions = reg.list(args.area)
    pointer = reg.pointer()
    rows = [
        {
            "ref": v.ref,
            "version": v.version,
            "area": v.area,
            **s,
            "production": _marker(pointer, v.version) or None,
        }
        for v, s in zip(versions, reg.summaries(versions), strict=True)
    ]
    if args.json:
        _print_json({"registry": reg.uri, "model": reg.name, "area": args.area, "versions": rows})
        return 0
    if not rows:
        print(f"no {args.area} versions of {reg.name} in {reg.uri}")
        return 0
    print(f"{reg.name} in {reg.uri} ({args.area}, {len(rows)} versions)")

    def fmt(row: dict[str, Any]) -> list[str]:
        acc = row["accuracy"]
        gate = {True: "passed", False: "failed", None: "-"}[row["gate_passed"]]
        return [
            row["ref"],
            (row["created_at"] or "-")[:19].replace("T", " "),
            "-" if acc is None else f"{acc:.3f}",
            gate,
            row["registered_by"] or "-",
            f"production:{row['production']}" if row["production"] else "",
        ]

    headers = ["REF", "CREATED (UTC)", "ACCURACY", "GATE", "BY", "PRODUCTION"]
    print(_table(headers, [fmt(r) for r in rows]))
    return 0


def _describe(reg: Registry, mv: ModelVersion) -> dict[str, Any]:
    pointer = reg.pointer() if mv.area != "local" else {}
    return {
        "ref": mv.ref,
        "name": mv.name,
        "version": mv.version,
        "area": mv.area,
        "uri": mv.uri,
        "production": _marker(pointer, mv.version) or None,
        "manifest": mv.manifest.to_dict(),
    }


def _data_lineage(dataset: Dataset) -> list[tuple[str, str]]:
    """Where the training data came from (repository or bucket, revision) and what validation found."""
    source = dataset.source
    rows = []
    if source.kind or source.uri:
        where = source.repo or source.uri or "-"
        rows.append(("data source", f"{source.kind or '?'} {where}"))
        revision = str(source.revision or "- (a folder: the fingerprint names it)")
        if source.kind == "git" and source.requested not in (None, source.revision):
            revision += f" (asked for {source.requested})"
        rows.append(("data revision", revision))
        if source.parents:
            rows.append(("data parents", " ".join(source.parents)))
    for warning in dataset.validation.warnings if dataset.validation else ():
        rows.append(("data warning", warning))
    return rows


def _training_line(params: Params) -> str:
    """How the version was trained: strategy, replicas, device kinds, precision (older versions: -)."""
    if params.replicas is None:
        return "-"
    kinds = ", ".join(sorted(set(params.devices))) or "?"
    precision = "mixed_float16" if params.mixed_precision else "float32"
    return (
        f"strategy {params.strategy}, {params.replicas} replica(s) on {params.workers or 1} "
        f"worker(s), {kinds}, {precision}, global batch {params.global_batch_size}"
    )


def _reference_line(reference: Reference | None) -> str:
    """The reference profile monitoring compares live traffic with, in one line."""
    if reference is None:
        return "-"
    shares = ", ".join(f"{k} {v:.2f}" for k, v in reference.class_shares.items())
    conf = reference.confidence_mean
    conf_text = f"; mean confidence {conf:.3f}" if conf is not None else ""
    n = "?" if reference.n is None else reference.n
    return (
        f"{reference.file}: {n} {reference.split or '?'} images; predicted shares {shares or '-'}{conf_text}"
    )


def _show(args: argparse.Namespace, settings: Settings) -> int:
    reg = open_registry(settings)
    mv = reg.resolve(args.ref)
    info = _describe(reg, mv)
    if args.json:
        _print_json(info)
        return 0
    m = mv.manifest
    mark = f"  [production:{info['production']}]" if info["production"] else ""
    print(f"{info['name']} {info['ref']}{mark}")
    acc = m.metrics.accuracy
    gate, code, dataset = m.gate, m.code, m.dataset
    fields = [
        ("uri", info["uri"]),
        ("created", m.created_at or "-"),
        ("registered by", m.registered_by or "-"),
        ("model file", m.model_file),
        ("classes", ", ".join(m.classes) or "-"),
        ("accuracy", "-" if acc is None else f"{acc:.4f}"),
        ("gate", "-" if gate is None else "passed" if gate.passed else "failed"),
        ("gate reasons", "; ".join(gate.reasons if gate else ()) or "-"),
        ("code", " ".join(str(v) for v in (code.commit, code.repo, code.build_url) if v) or "-"),
        ("dataset", " ".join(str(v) for v in (dataset.uri, dataset.fingerprint) if v) or "-"),
        *_data_lineage(dataset),
        ("parent", (m.parent.ref if m.parent else None) or "-"),
        ("trained with", _training_line(m.params)),
        ("reference", _reference_line(m.reference)),
    ]
    for label, value in fields:
        print(f"  {label + ':':<15}{value}")
    files = m.files
    if files:
        print("  files:")
        print(
            "\n".join(
                "    " + line
                for line in _table(
                    ["PATH", "SIZE", "SHA256"],
                    [[rel, str(f.size), f.sha256[:16]] for rel, f in files.items()],
                ).splitlines()
            )
        )
    for kind, entries in to_json(m.annotations).items():
        print(f"  {kind}: {len(entries)}")
        for entry in entries:
            extra = {k: v for k, v in entry.items() if k not in ("at", "actor", "evidence")}
            at = entry.get("at", "")[:19].replace("T", " ")
            print(f"    {at}  {entry.get('actor', '')}  {json.dumps(extra)}")
    return 0


def _verify_audit(args: argparse.Namespace, reg: Registry, settings: Settings) -> int:
    # The keys that may sign checkpoints come from the settings, never from the registry.
    keys = settings.public_key_paths
    report = reg.verify_audit(trusted_keys=keys)
    if args.json:
        _print_json({"registry": reg.uri, "model": reg.name, **report.to_dict()})
        return EXIT_OK if report.ok else EXIT_FAILED_CHECK
    state = "intact" if report.ok else f"BROKEN ({len(report.findings)} findings)"
    print(f"audit log of {reg.name} in {reg.uri}: {state}, {report.events} events")
    for finding in report.findings:
        print(f"  broken: {finding}")
    if not keys:
        print("  checkpoints not checked: no trusted public keys (signing.public_keys)")
    elif report.checkpoints:
        print(
            f"  signed: {report.checkpoints} checkpoints, vouching for the chain to event {report.anchored}"
        )
    else:
        print("  signed: no valid checkpoint yet")
    if report.checked and report.unanchored:
        print(
            f"  unanchored: {report.unanchored} events after the last checkpoint (no signature covers them)"
        )
    return EXIT_OK if report.ok else EXIT_FAILED_CHECK


def _action(event: dict[str, Any]) -> str:
    """ACTION column: `refuse promote`, `promote (recovered)`..."""
    text = str(event.get("action", "?"))
    if event.get("attempted"):
        text += f" {event['attempted']}"
    return text + (" (recovered)" if event.get("recovered") else "")


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    reg = open_registry(settings)
    if args.verify:
        return _verify_audit(args, reg, settings)
    events = reg.audit()
    if args.json:
        _print_json(events)
        return 0
    rows = [
        [
            str(e.get("seq", "-")),
            str(e.get("at", ""))[:19].replace("T", " "),
            str(e.get("actor", "")),
            _action(e),
            f"{e.get('area', '')}:{e.get('version', '')}",
            str(e.get("reason", "")),
        ]
        for e in events
    ]
    headers = ["SEQ", "AT (UTC)", "ACTOR", "ACTION", "VERSION", "REASON"]
    print(_table(headers, rows) if rows else "no events")
    return 0


def _fsck(args: argparse.Namespace, settings: Settings) -> int:
    from registry.fsck import repair, scan

    reg = open_registry(settings)
    findings = scan(reg)
    done = repair(reg, findings, args.grace_s, default_actor()) if args.repair else []
    left = [f for f in findings if f not in done]
    if args.json:
        _print_json({
            "registry": reg.uri, "model": reg.name, "repaired": [f.to_dict() for f in done],
            "left": [f.to_dict() for f in left],
        })  # fmt: skip
    else:
        for finding in findings:
            if finding in done:
                state = "appended" if finding.kind == "unlogged" else "removed"
            elif finding.age_s < args.grace_s:
                state = "younger than the grace period: may be in progress"
            else:
                state = "found"
            count = f" ({len(finding.keys)} objects)" if len(finding.keys) > 1 else ""
            print(f"{finding.kind:<16} {finding.what}{count}: {state}, {finding.age_s:.0f} s old")
        if not findings:
            print(f"{reg.name} in {reg.uri}: no leftovers")
        elif left and not args.repair:
            print(f"{len(left)} leftovers; remove them with: mlops registry fsck --repair")
    return EXIT_ERROR if left else EXIT_OK


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    """`registry verify REF`: the signed chain behind a version, who signed what and when."""
    from registry.chain import verify_chain
    from registry.errors import PolicyError

    reg = open_registry(settings)
    trust = reg.policy.trust
    if trust is None:
        raise PolicyError(
            "no trust policy is configured (trust.policy / MLOPS_TRUST_POLICY): nothing to verify against; "
            "create one with mlops keys init --trust"
        )
    verdict = verify_chain(reg, args.ref, trust, full=True)  # what production would need
    if args.json:
        _print_json({**verdict.to_dict(), "policy": str(trust.path)})
    else:
        print(f"{reg.name} {verdict.ref} digest sha256:{verdict.digest or '-'} (policy {trust.path})")
        for step in verdict.steps:
            mark = "ok  " if step.ok else ("FAIL" if step.required else "--  ")
            who = f" by {step.signer} (key {step.key_id[:16]})" if step.signer and step.key_id else ""
            when = f" at {step.at}" if step.at else ""
            print(f"  {mark} {step.kind:<10} {step.detail}{who}{when}")
        print("verified: the chain holds" if verdict.ok else "NOT VERIFIED: " + "; ".join(verdict.problems))
    return EXIT_OK if verdict.ok else EXIT_FAILED_CHECK


def _keys_accept_suite(args: argparse.Namespace, settings: Settings) -> int:
    from registry.trust import accept_suite, policy_path

    path = policy_path(settings)
    if path is None:
        raise UsageError("no trust policy is configured to accept a suite into: run mlops keys init --trust")
    added = accept_suite(path, args.digest)
    print(f"{'accepted' if added else 'already required'}: {args.digest} in {path}")
    return EXIT_OK


def _keys_init(args: argparse.Namespace, settings: Settings) -> int:
    from registry.signing import generate_key_pair, private_key_id

    if args.trust:
        from core.digests import builtin_suite_digest
        from registry.trust import init_trust

        suites = tuple(args.suite_digest) or tuple(d for d in (builtin_suite_digest(),) if d)
        made = init_trust(settings, suites, tuple(args.approver or ["product-owner"]))
        for line in made:
            print(f"created the {line}")
        if not any(line.startswith("trust policy") for line in made):
            print(f"the trust policy {settings.trust_policy_path} exists and was left as it is")
        elif suites:
            named = "given" if args.suite_digest else "the built-in suite's digest, as it is now"
            print(f"required suites ({named}): {', '.join(suites)}")
        else:
            print(
                "the trust policy names no required suite (the built-in suite is not installed): every "
                "version is refused until a person accepts one with: mlops keys accept-suite sha256:HEX"
            )
        return EXIT_OK
    folder = args.out or settings.keys_dir
    private, public = folder / "signing-key.pem", folder / "signing-key.pub"
    if args.if_missing and private.exists():
        key_id = private_key_id(private, settings.signing.key_password)
        print(f"signing key {private} exists (key id {key_id[:16]})")
        return EXIT_OK
    key_id = generate_key_pair(private, public)
    print(f"wrote {private} (private, mode 0600) and {public}; key id {key_id[:16]}")
    if args.out:
        print(f"use them with MLOPS_SIGNING_PRIVATE_KEY={private} MLOPS_SIGNING_PUBLIC_KEYS={public}")
    return EXIT_OK


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register this area's verbs."""
    registry = subparsers.add_parser(
        "registry",
        help="list and show model versions, the audit log, housekeeping",
        description="List and show model versions in the registry (testing and production areas), "
        "show or verify the audit log, find leftovers of interrupted writes.",
    )
    verbs = registry.add_subparsers(dest="registry_command", metavar="ACTION")
    verbs.required = True
    listing = verbs.add_parser("list", help="list versions of an area", description="List versions.")
    listing.add_argument("--area", choices=AREAS, default="testing", help="which area (default testing)")
    _add_json(listing)
    listing.set_defaults(handler=_list)
    show = verbs.add_parser(
        "show", help="show a version's manifest", description="Show a manifest with annotations."
    )
    show.add_argument("ref", metavar="REF", help=REF_HELP)
    _add_json(show)
    show.set_defaults(handler=_show)
    audit = verbs.add_parser(
        "audit",
        help="show or verify the audit log",
        description="Who did what, when and why. --verify walks the hash chain and reports the first "
        "deleted, edited or reordered event.",
        epilog="Exit codes: 0 ok (chain intact), 1 the chain is broken or an error.",
    )
    audit.add_argument(
        "--verify",
        action="store_true",
        help="check the hash chain and its signed checkpoints instead of listing (exit 3: broken)",
    )
    _add_json(audit)
    audit.set_defaults(handler=_audit)
    verify = verbs.add_parser(
        "verify",
        help="verify a version's signed chain (signature, gate, tests, approval)",
        description="Verify the signed statements behind a version against the trust policy: model.sig by a "
        "trainer key, the gate, a passing test run of a required suite with the API by a tester key, and an "
        "approval by an approver key. Prints who signed what, and when.",
        epilog="Exit codes: 0 verified, 1 error, 2 usage, 3 the chain does not verify.",
    )
    verify.add_argument("ref", metavar="REF", help=REF_HELP)
    _add_json(verify)
    verify.set_defaults(handler=_verify)
    fsck = verbs.add_parser(
        "fsck",
        help="find (and --repair) leftovers of interrupted writes",
        description="List temp files, half-registered versions, production copies no pointer names, "
        "write probes and decisions missing from the audit log. --repair removes them (appends the "
        "decisions); complete versions are never touched, and anything younger than --grace-s may "
        "be a write in progress and is left alone.",
        epilog="Exit codes: 0 nothing left over, 1 leftovers remain (or an error).",
    )
    fsck.add_argument("--repair", action="store_true", help="remove leftovers older than the grace period")
    fsck.add_argument(
        "--grace-s", type=float, default=3600.0, metavar="S", help="leave younger ones alone (default 3600)"
    )
    _add_json(fsck)
    fsck.set_defaults(handler=_fsck)

    keys = subparsers.add_parser(
        "keys",
        help="make the signing key pair",
        description="Signing keys for registered versions (OpenSSF model-signing, elliptic curve P-256).",
    )
    key_verbs = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    key_verbs.required = True
    init = key_verbs.add_parser(
        "init",
        help="write a new key pair (default under <home>/keys, used when signing.* is not set)",
        description="Write signing-key.pem (private, mode 0600) and signing-key.pub. With no [signing] "
        "keys configured, train/retrain sign with the home pair and every check verifies with it. Keep "
        "the private key out of the repository; on GCP hold it in Secret Manager (registry/README.md).",
    )
    init.add_argument("--out", type=Path, metavar="DIR", help="write the pair here instead of <home>/keys")
    init.add_argument("--if-missing", action="store_true", help="do nothing when the key already exists")
    init.add_argument(
        "--trust",
        action="store_true",
        help="also make the tester and approver key pairs and <home>/trust/policy.toml naming them (laptop)",
    )
    init.add_argument("--approver", action="append", metavar="NAME", help="an approver to make a key for")
    init.add_argument(
        "--suite-digest", action="append", default=[], metavar="sha256:HEX", help="a required test suite"
    )
    init.set_defaults(handler=_keys_init)
    accept = key_verbs.add_parser(
        "accept-suite",
        help="add a model test suite digest to the trust policy's required suites (a person's review)",
        description="After reviewing a changed model test suite, add its content digest (printed by "
        "mlops test-model and by the refusal that named it) to required_suites in the trust policy "
        "file. Nothing accepts a suite automatically; the registry never reads this file's content "
        "from anywhere but here.",
    )
    accept.add_argument("digest", metavar="sha256:HEX", help="the suite's content digest")
    accept.set_defaults(handler=_keys_accept_suite)
