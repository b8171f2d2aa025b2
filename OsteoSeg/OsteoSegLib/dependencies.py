"""What OsteoSeg needs beyond Slicer's own Python, per task, and how to install it without replacing
anything already there.

Slicer ships numpy, SimpleITK, vtk, scipy, requests and, depending on its version, pydicom and
highdicom; replacing one of them can break Slicer's own modules (Slicer 5.10 ships pydicom 2.4.4,
and highdicom >= 0.23 would pull pydicom 3 over it). So every install from the Slicer module pins
each distribution already installed to its version (a pip constraints file): pip then installs what
is missing or refuses, and never upgrades or downgrades what is there. torch comes from the PyTorch
extension, which picks the CUDA build for the driver.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re

# import name -> pip requirement, per task run from the Slicer module (versions as tested headless)
REQUIREMENTS = {
    "segment": {"safetensors": "safetensors>=0.4"},
    "align": {"matplotlib": "matplotlib>=3.7"},   # the before/after figure; Align works without it
}
TORCH_REQUIREMENT = ">=2.1"
# Optional: the faster CPU backend (inference/backends.py); worth its ~50 MB download only where no GPU
# (CUDA or Apple MPS) runs the networks.
OPENVINO_REQUIREMENT = "openvino>=2025.1"
SLICER_OWNED = ("numpy", "SimpleITK", "vtk", "scipy", "requests")


def is_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing_requirements(task: str) -> list[str]:
    """pip requirements of a task ("segment", "align") whose modules cannot be imported (torch is
    handled separately, by the PyTorch extension)."""
    return [requirement for module, requirement in REQUIREMENTS[task].items() if not is_installed(module)]


def optional_requirements(gpu_available: bool) -> list[str]:
    """Optional pip requirements worth offering on this machine and not yet installed."""
    return [] if gpu_available or is_installed("openvino") else [OPENVINO_REQUIREMENT]


def torch_missing() -> bool:
    return not is_installed("torch")


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_distributions() -> dict[str, str]:
    """Every installed distribution by normalised name, with its version."""
    found = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found[normalised(name)] = distribution.version
    return found


def normalised(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def keep_installed_constraints(installed: dict[str, str]) -> str:
    """A pip constraints file pinning every installed distribution to its version, so that an
    install adds what is missing and cannot replace anything (it fails instead)."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(installed.items()))
