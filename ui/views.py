"""The browser's pages. Every route is a GET: the registry is read, never written."""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, render_template, request

from core.errors import MlopsError, UsageError
from core.settings import Settings
from registry import ModelVersion, NotFoundError, Registry
from registry.manifest import to_json
from registry.refs import AREAS
from ui.approval import Approval, approval
from ui.audit_log import AuditFilter, choices, select
from ui.catalog import Catalog, signature_state, stage
from ui.compare import compare, shaded_matrix

bp = Blueprint("ui", __name__)

# Refs a visitor may type. Never a file path: parse_ref would look at this machine's disk.
_REF = re.compile(r"^(testing|production):(latest|current|previous|[1-9][0-9]*)$")
# Files of a version the browser shows; the model itself is fetched with the CLI.
_SHOWN = re.compile(r"^(report\.html|model_card\.md|test_split\.json|plots/[A-Za-z0-9._-]+\.png)$")
_TYPES = {".html": "text/html", ".json": "application/json", ".png": "image/png", ".md": "text/plain"}
_WHOLE = re.compile(r"^[0-9]{1,9}$")  # ASCII only: str.isdigit() also takes "²", which int() refuses


def catalog() -> Catalog:
    return current_app.extensions["mlops_catalog"]


def registry() -> Registry:
    return catalog().registry


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def _number(name: str, default: int) -> int:
    text = request.args.get(name, "").strip()
    if not text:
        return default
    if not _WHOLE.match(text) or int(text) < 1:
        raise UsageError(f"{name}={text!r} is not a positive whole number")
    return int(text)


def _candidate_box() -> Approval | None:
    """The approval box for the newest testing version, or None when there is none."""
    try:
        mv = registry().resolve("testing:latest")
    except NotFoundError:
        return None
    manifest = catalog().manifests([mv])[mv.version]
    return approval(settings(), manifest, stage(registry().pointer(), mv.version))


@bp.get("/")
def versions() -> str:
    """The versions table of one area, newest first, one page at a time."""
    area = request.args.get("area", "testing")
    if area not in AREAS:
        raise UsageError(f"area={area!r}: use one of {', '.join(AREAS)}")
    page = catalog().page(area, _number("page", 1), int(current_app.config["PAGE_SIZE"]))
    return render_template("versions.html", page=page, approve=_candidate_box())


@bp.get("/versions/<int:number>")
def version(number: int) -> str:
    """One version: lineage, metrics, gate, report and plots, tests, approvals, deployments."""
    mv, manifest = catalog().version(number)
    where = stage(registry().pointer(), number)
    annotations = manifest.annotations
    known = ("tests", "approvals", "deployments")
    files = manifest.files
    return render_template(
        "version.html",
        mv=mv,
        m=manifest,
        params=to_json(manifest.params),
        stage=where,
        annotations=annotations,
        others={k: v for k, v in to_json(annotations).items() if k not in known and v},
        plots=[rel for rel in files if _SHOWN.match(rel) and rel.startswith("plots/")],
        has_report="report.html" in files,
        has_card="model_card.md" in files,
        matrix=shaded_matrix(to_json(manifest.metrics)),
        signature=signature_state(manifest),
        approve=approval(settings(), manifest, where),
        chain=_chain(mv),
    )


def _chain(mv: ModelVersion) -> dict | None:
    """The version's signed chain under the trust policy (None: no policy), as `registry verify` shows it."""
    from registry.chain import verify_chain

    reg = registry()
    if reg.policy.trust is None:
        return None
    try:
        return verify_chain(reg, mv.ref, reg.policy.trust, full=True).to_dict()
    except MlopsError as exc:  # a version the registry cannot even fetch: say so on the page
        return {"verified": False, "steps": [], "error": str(exc)}


@bp.get("/versions/<int:number>/files/<path:rel>")
def version_file(number: int, rel: str) -> Response:
    """A version's report, plots or test split, checked against the manifest's sha256."""
    if not _SHOWN.match(rel):
        raise NotFoundError(
            f"{rel!r} is not shown here: only report.html, model_card.md, plots/*.png and test_split.json "
            "(the model: mlops)"
        )
    mv = registry().resolve(f"testing:{number}")
    data = registry().version_file(mv, rel)
    response = Response(data, mimetype=_TYPES[rel[rel.rindex(".") :]])
    # The report is HTML from a training run: show it, but let it run nothing and load only its plots.
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
    )
    response.headers["Cache-Control"] = "private, max-age=3600, immutable"  # versions never change
    return response


def _resolve(name: str, default: str, area: str) -> ModelVersion | None:
    text = request.args.get(name, "").strip() or default
    if _WHOLE.match(text):
        text = f"{area}:{text}"
    if not _REF.match(text):
        raise UsageError(f"{name}={text!r}: use a version number or a ref such as {area}:7 or {default}")
    try:
        return registry().resolve(text)
    except NotFoundError:
        if text == default and area == "production":
            return None  # production is empty: compare against nothing
        raise


@bp.get("/compare")
def comparison() -> str:
    """Candidate vs production side by side on the same test split."""
    candidate = _resolve("candidate", "testing:latest", "testing")
    assert candidate is not None
    production = _resolve("production", "production:current", "production")
    wanted = [candidate] + ([production] if production else [])
    manifests = catalog().manifests(wanted)
    result = compare(
        manifests[candidate.version],
        manifests[production.version] if production else None,
        production.ref if production else "",
    )
    return render_template(
        "compare.html",
        c=result,
        candidate_matrix=shaded_matrix(result.candidate.metrics),
        production_matrix=shaded_matrix(result.production.metrics) if result.production else [],
        approve=approval(
            settings(), manifests[candidate.version], stage(registry().pointer(), candidate.version)
        ),
    )


@bp.get("/audit")
def audit() -> str:
    """Who did what, when and why: filterable, newest first."""
    wanted = AuditFilter.from_args(request.args)
    events = registry().audit()
    shown, page, pages, matching = select(
        events, wanted, _number("page", 1), int(current_app.config["PAGE_SIZE"])
    )
    return render_template(
        "audit.html",
        events=shown,
        wanted=wanted,
        page=page,
        pages=pages,
        matching=matching,
        total=len(events),
        menus=choices(events),
        approve=_candidate_box(),
    )


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """Alive."""
    return {"status": "ok"}
