"""CLI verbs registry (list, show, audit), promote and rollback."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlops.actor import default_actor
from mlops.settings import Settings
from registry.core import Registry, open_registry
from registry.errors import RefError
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


def _accuracy(manifest: dict[str, Any]) -> float | None:
    value = (manifest.get("metrics") or {}).get("accuracy")
    return value if isinstance(value, int | float) else None


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
        "manifest": mv.manifest,
    }


def _reference_line(reference: Any) -> str:
    """The reference profile monitoring compares live traffic with, in one line."""
    if not isinstance(reference, dict):
        return "-"
    shares = ", ".join(f"{k} {v:.2f}" for k, v in (reference.get("class_shares") or {}).items())
    conf = reference.get("confidence_mean")
    conf_text = f"; mean confidence {conf:.3f}" if isinstance(conf, int | float) else ""
    return (
        f"{reference.get('file', '?')}: {reference.get('n', '?')} {reference.get('split', '?')} images; "
        f"predicted shares {shares or '-'}{conf_text}"
    )


def _show(args: argparse.Namespace, settings: Settings) -> int:
    reg = open_registry(settings)
    info = _describe(reg, reg.resolve(args.ref))
    if args.json:
        _print_json(info)
        return 0
    m = info["manifest"]
    mark = f"  [production:{info['production']}]" if info["production"] else ""
    print(f"{info['name']} {info['ref']}{mark}")
    acc = _accuracy(m)
    gate = m.get("gate") or {}
    code = m.get("code") or {}
    dataset = m.get("dataset") or {}
    parent = m.get("parent") or {}
    fields = [
        ("uri", info["uri"]),
        ("created", m.get("created_at", "-")),
        ("registered by", m.get("registered_by", "-")),
        ("model file", m.get("model_file", "-")),
        ("classes", ", ".join(m.get("classes", [])) or "-"),
        ("accuracy", "-" if acc is None else f"{acc:.4f}"),
        ("gate", {True: "passed", False: "failed"}.get(gate.get("passed"), "-")),
        ("gate reasons", "; ".join(gate.get("reasons", [])) or "-"),
        ("code", " ".join(str(code.get(k)) for k in ("commit", "repo", "build_url") if code.get(k)) or "-"),
        ("dataset", " ".join(str(dataset.get(k)) for k in ("uri", "fingerprint") if dataset.get(k)) or "-"),
        ("parent", parent.get("ref") or "-"),
        ("reference", _reference_line(m.get("reference"))),
    ]
    for label, value in fields:
        print(f"  {label + ':':<15}{value}")
    files = m.get("files", {})
    if files:
        print("  files:")
        print(
            "\n".join(
                "    " + line
                for line in _table(
                    ["PATH", "SIZE", "SHA256"],
                    [[rel, str(f["size"]), f["sha256"][:16]] for rel, f in files.items()],
                ).splitlines()
            )
        )
    for kind, entries in (m.get("annotations") or {}).items():
        print(f"  {kind}: {len(entries)}")
        for entry in entries:
            extra = {k: v for k, v in entry.items() if k not in ("at", "actor", "evidence")}
            at = entry.get("at", "")[:19].replace("T", " ")
            print(f"    {at}  {entry.get('actor', '')}  {json.dumps(extra)}")
    return 0


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    reg = open_registry(settings)
    events = reg.audit()
    if args.json:
        _print_json(events)
        return 0
    rows = [
        [
            e["at"][:19].replace("T", " "),
            e["actor"],
            e["action"],
            f"{e.get('area', '')}:{e.get('version', '')}",
            e.get("reason", ""),
        ]
        for e in events
    ]
    print(_table(["AT (UTC)", "ACTOR", "ACTION", "VERSION", "REASON"], rows) if rows else "no events")
    return 0


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    from deploy.promotion import check_promotion  # the promotion policy lives with deploy

    reg = open_registry(settings)
    mv = reg.resolve(args.ref)
    if mv.area != "testing":
        raise RefError(f"promote takes a testing ref (testing:N or testing:latest), not {args.ref!r}")
    evidence = check_promotion(mv.manifest, args.approved_by, settings)
    before = reg.pointer().get("current")
    # Pin the number resolved above: testing:latest may move while we work.
    promoted = reg.promote(mv.ref, actor=args.actor, reason=args.reason, evidence=evidence)
    approval = {"approved_by": args.approved_by, "reason": args.reason, "evidence": evidence}
    reg.annotate(promoted.ref, "approvals", approval, actor=args.actor)
    if args.json:
        _print_json(
            {"promoted": promoted.ref, "from": mv.ref, "previous": before, "approved_by": args.approved_by}
        )
    else:
        was = f"production:{before}" if before is not None else "nothing"
        print(f"promoted {mv.ref} to {promoted.ref} (was {was}), approved by {args.approved_by}")
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    reg = open_registry(settings)
    before = reg.pointer().get("current")
    now = reg.rollback(actor=args.actor, reason=args.reason)
    if args.json:
        _print_json({"current": now.version, "rolled_back_from": before, "ref": now.ref})
    else:
        print(f"rolled production back from production:{before} to {now.ref}")
    return 0


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    registry = subparsers.add_parser(
        "registry",
        help="list and show model versions",
        description="List and show model versions in the registry (testing and production areas).",
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
    audit = verbs.add_parser("audit", help="show the audit log", description="Who did what, when and why.")
    _add_json(audit)
    audit.set_defaults(handler=_audit)

    promote = subparsers.add_parser(
        "promote",
        help="copy a tested version to production",
        description="Copy a tested version to production after the promotion policy approves it.",
    )
    promote.add_argument("ref", metavar="REF", help="testing:N or testing:latest")
    promote.add_argument("--approved-by", required=True, metavar="WHO", help="the approver (policy-checked)")
    promote.add_argument("--reason", default="", help="why (kept in the audit log)")
    promote.add_argument(
        "--actor", default=default_actor(), help="who runs it (default $BUILD_USER_ID, else the login name)"
    )
    _add_json(promote)
    promote.set_defaults(handler=_promote)

    rollback = subparsers.add_parser(
        "rollback",
        help="point production back at the previous version",
        description="Point production:current back at the version that was live before it.",
    )
    rollback.add_argument("--reason", default="", help="why (kept in the audit log)")
    rollback.add_argument(
        "--actor", default=default_actor(), help="who runs it (default $BUILD_USER_ID, else the login name)"
    )
    _add_json(rollback)
    rollback.set_defaults(handler=_rollback)
