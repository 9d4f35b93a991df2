"""Documents the code cites are in the repository: docs/architecture.md, never an outside design file."""

from __future__ import annotations

import re
from pathlib import Path

from project_packages import project_packages

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (*project_packages(), "jenkins", "k8s", "docs", "benchmarks", "tests", "scripts")
TOP_LEVEL = ("README.md", "Jenkinsfile", "Makefile", "pyproject.toml", "mlops.toml")
DOC_REF = re.compile(r"\bdocs/[\w.-]+\.md\b")


def text_files() -> list[Path]:
    files = [ROOT / name for name in TOP_LEVEL]
    for folder in SOURCES:
        files += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in {".py", ".md", ".groovy", ".yaml", ""}
        ]
    here = Path(__file__).resolve()  # this file names missing documents on purpose
    return [p for p in files if p.is_file() and "__pycache__" not in p.parts and p.resolve() != here]


def cited_docs(text: str) -> set[str]:
    return set(DOC_REF.findall(text))


def test_every_cited_document_exists():
    missing = {
        f"{path.relative_to(ROOT)}: {doc}"
        for path in text_files()
        for doc in cited_docs(path.read_text(errors="replace"))
        if not (ROOT / doc).is_file()
    }
    assert not missing


def test_no_file_cites_the_outside_design_document():
    """The design lives in docs/architecture.md; a DESIGN.md is not in the repository."""
    name = "DESIGN.md"
    assert [str(p.relative_to(ROOT)) for p in text_files() if name in p.read_text(errors="replace")] == []


def test_the_architecture_document_names_every_package():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for package in SOURCES[:8]:
        assert f"`{package}/`" in text, package


def test_the_citation_check_can_fail():
    assert cited_docs("see docs/no-such-file.md and docs/architecture.md") == {
        "docs/no-such-file.md",
        "docs/architecture.md",
    }
