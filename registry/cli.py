"""CLI verbs registry list|show|audit (promote and rollback live with the promotion policy in deploy/)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.settings import Settings
from registry.core import Registry, open_registry
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


def _data_lineage(dataset: dict[str, Any]) -> list[tuple[str, str]]:
    """Where the training data came from (repository or bucket, revision) and what validation found."""
    source = dataset.get("source") or {}
    rows = []
    if source:
        where = source.get("repo") or source.get("uri") or "-"
        rows.append(("data source", f"{source.get('kind', '?')} {where}"))
        revision = str(source.get("revision") or "- (a folder: the fingerprint names it)")
        if source.get("kind") == "git" and source.get("requested") not in (None, source.get("revision")):
            revision += f" (asked for {source['requested']})"
        rows.append(("data revision", revision))
        if source.get("parents"):
            rows.append(("data parents", " ".join(source["parents"])))
    for warning in (dataset.get("validation") or {}).get("warnings") or []:
        rows.append(("data warning", warning))
    return rows


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
        *_data_lineage(dataset),
        ("parent", parent.get("ref") or "-"),
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
