"""Which engine runs the networks: torch (every device) or OpenVINO (CPU only, optional, faster
there). "auto" takes OpenVINO on the CPU when it is installed, torch otherwise; a backend asked for
by name that cannot run is an error, never a silent substitute."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..dependencies import OPENVINO_REQUIREMENT, installed_version, is_installed
from ..errors import OsteoSegError
from ..progress import Progress

if TYPE_CHECKING:
    import torch

    from ..model.package import ModelPackage

BACKEND_CHOICES = ("auto", "torch", "openvino")


def choose_backend(name: str, device: torch.device) -> str:
    """"torch" or "openvino" for this device (see the module docstring)."""
    if name not in BACKEND_CHOICES:
        raise OsteoSegError(f"unknown backend {name!r}; use one of {', '.join(BACKEND_CHOICES)}")
    if name == "torch":
        return name
    available = is_installed("openvino")
    if name == "auto":
        return "openvino" if device.type == "cpu" and available else "torch"
    if device.type != "cpu":
        raise OsteoSegError(f"the openvino backend runs on the CPU only, and the device is {device.type}")
    if not available:
        raise OsteoSegError(f"the openvino backend was requested but OpenVINO is not installed "
                            f"(pip install '{OPENVINO_REQUIREMENT}')")
    return name


def describe_backend(backend: str) -> str:
    return f"OpenVINO {installed_version('openvino')}" if backend == "openvino" else "torch"


def inference_networks(models: list[ModelPackage], inputs: tuple[str, ...], device: torch.device, backend: str,
                       dtype: torch.dtype | None, *, cache_folder: Path | None = None,
                       progress: Progress | None = None) -> list[tuple[object, list[int]]]:
    """(network, indices of its input channels) per model, ready for `predict_probabilities`.
    OpenVINO's converted models are kept in `cache_folder` (default: the user's cache folder)."""
    from .predict import prepare_network

    indices = [[inputs.index(name) for name in model.inputs] for model in models]
    if backend == "torch":
        return [(prepare_network(model.network, device), used) for model, used in zip(models, indices, strict=True)]
    from .openvino_backend import default_cache_folder, openvino_network

    folder = cache_folder or default_cache_folder()
    return [(openvino_network(model, dtype, cache_folder=folder, progress=progress), used)
            for model, used in zip(models, indices, strict=True)]
