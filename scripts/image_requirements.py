"""Print the pinned runtime requirements of pyproject.toml for a container image.

`--tensorflow cpu` keeps the pins as they are (tensorflow-cpu on x86-64); `--tensorflow gpu` swaps
the TensorFlow pin for `tensorflow[and-cuda]` at the same version, so the GPU training image differs
from the CPU one in that line alone. Used by training/Dockerfile; runs on any Python >= 3.11.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

TENSORFLOW_PIN = re.compile(r"^tensorflow(-cpu)?==(?P<version>[^;\s]+)")


def requirements(pyproject: Path, tensorflow: str) -> list[str]:
    """The project's runtime dependencies, with the TensorFlow build chosen."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    if tensorflow == "cpu":
        return list(deps)
    versions = {m["version"] for d in deps if (m := TENSORFLOW_PIN.match(d))}
    if len(versions) != 1:
        raise SystemExit(f"expected one pinned TensorFlow version in {pyproject}, found {sorted(versions)}")
    rest = [d for d in deps if not TENSORFLOW_PIN.match(d)]
    return [f"tensorflow[and-cuda]=={versions.pop()}", *rest]


def main(argv: list[str] | None = None) -> int:
    """Print one requirement per line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensorflow", choices=("cpu", "gpu"), default="cpu", help="TensorFlow build")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"), help="project file")
    args = parser.parse_args(argv)
    print("\n".join(requirements(args.pyproject, args.tensorflow)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
