"""Fail if the installed packages differ from requirements/constraints.txt.

Run at image build time (infra/Dockerfile) and usable in any environment:

    python infra/scripts/check_versions.py --constraints requirements/constraints.txt --variant cpu

Every package pinned ``name==version`` in the constraints file that is installed must have that
version (a local label such as ``+cpu`` or ``+cu128`` is ignored, as pip does). The packages in
REQUIRED must be installed at all: Ray refuses to connect a driver to a cluster of another Ray
version, so an image with the wrong Ray fails here instead of at ``ray job submit``.
``--variant cuda`` additionally requires a CUDA build of torch, ``--variant cpu`` a CPU build.
Exit status 0 when everything matches, 1 otherwise (each mismatch printed).
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

REQUIRED = ("ray", "torch", "prefect", "mlflow", "fastapi", "opencv-contrib-python-headless", "libarchive-c", "s3fs", "boto3")


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def public_version(version: str) -> str:
    """The version without its local label (``2.13.0+cu128`` → ``2.13.0``)."""
    return version.split("+", 1)[0]


def read_pins(path: Path) -> dict[str, str]:
    """``{normalized name: version}`` for every ``name==version`` line (comments and markers ignored)."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s,]+)", line)
        if match:
            pins[normalize(match[1])] = match[3]
    return pins


def installed_versions() -> dict[str, str]:
    return {normalize(dist.metadata["Name"]): dist.version for dist in metadata.distributions() if dist.metadata["Name"]}


def torch_cuda_version() -> str | None:
    import torch

    return torch.version.cuda


def check(pins: dict[str, str], installed: dict[str, str], variant: str | None = None, cuda: str | None = None) -> list[str]:
    """Every problem found, as a human-readable line; empty when all is well."""
    problems = []
    for name in REQUIRED:
        if normalize(name) not in installed:
            problems.append(f"{name} is not installed")
        elif normalize(name) not in pins:
            problems.append(f"{name} is not pinned in the constraints file")
    for name, pinned in sorted(pins.items()):
        have = installed.get(name)
        if have is not None and public_version(have) != public_version(pinned):
            problems.append(f"{name}: installed {have}, constraints pin {pinned}")
    if variant == "cuda" and cuda is None:
        problems.append("variant cuda: torch is a CPU build (torch.version.cuda is None); check TORCH_INDEX_URL")
    if variant == "cpu" and cuda is not None:
        problems.append(f"variant cpu: torch is a CUDA {cuda} build; install it from https://download.pytorch.org/whl/cpu")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--constraints", type=Path, required=True)
    parser.add_argument("--variant", choices=["cpu", "cuda"], help="also check torch's build (CPU or CUDA)")
    args = parser.parse_args(argv)
    pins = read_pins(args.constraints)
    installed = installed_versions()
    cuda = torch_cuda_version() if args.variant and "torch" in installed else None
    problems = check(pins, installed, args.variant, cuda)
    for problem in problems:
        print(f"version check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"version check: {len(pins)} pins, ray {installed['ray']}, torch {installed['torch']} (cuda {cuda}), all match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
