"""What OsteoSeg needs beyond Slicer's own Python, and which of it is missing. Slicer ships numpy,
SimpleITK and vtk: those are never installed or replaced (Slicer's SimpleITK has its own IO
classes). torch comes from the PyTorch extension, which picks the CUDA build for the driver."""

from __future__ import annotations

import importlib.metadata
import importlib.util

# import name -> pip requirement (versions as tested headless, in requirements.txt)
PIP_REQUIREMENTS = {"safetensors": "safetensors>=0.4", "monai": "monai>=1.4", "pydicom": "pydicom>=3.0",
                    "highdicom": "highdicom>=0.23", "tqdm": "tqdm>=4.60", "matplotlib": "matplotlib>=3.7",
                    "scipy": "scipy>=1.11"}
TORCH_REQUIREMENT = ">=2.1"
# Optional: the faster CPU backend (backends.py); worth its ~50 MB download only where no GPU (CUDA or
# Apple MPS) runs the networks.
OPENVINO_REQUIREMENT = "openvino>=2025.1"
SLICER_OWNED = ("numpy", "SimpleITK", "vtk")


def is_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing_requirements() -> list[str]:
    """pip requirements for the modules that cannot be imported (torch is handled separately)."""
    return [requirement for module, requirement in PIP_REQUIREMENTS.items() if not is_installed(module)]


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
