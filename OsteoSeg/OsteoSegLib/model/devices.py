"""Which device and precision to compute on: auto picks cuda, then mps, then cpu. torch is imported
in the functions, so the command line can offer these choices without loading it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import OsteoSegError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
PRECISION_CHOICES = ("auto", "fp32", "bf16")


def mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def choose_device(name: str = "auto") -> torch.device:
    """The requested device, or the best present one for "auto"; a named device that is absent is an
    error (falling back silently would make timings and results lie about where they came from)."""
    import torch

    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise OsteoSegError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OsteoSegError(f"device {name!r} was requested but this machine has no usable CUDA GPU "
                            f"(torch {torch.__version__})")
    if name == "mps" and not mps_available():
        raise OsteoSegError("device 'mps' was requested but Apple's Metal backend is not available here")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """bf16 autocast on CUDA by default (no loss scaling needed, unlike fp16); fp32 elsewhere unless
    bf16 is asked for. None means no autocast."""
    import torch

    if precision not in PRECISION_CHOICES:
        raise OsteoSegError(f"unknown precision {precision!r}; use one of {', '.join(PRECISION_CHOICES)}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        if precision == "bf16":
            raise OsteoSegError(f"bf16 was requested but {torch.cuda.get_device_name(device)} does not support it")
        return None
    return torch.bfloat16


def cpu_supports_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX): elsewhere bf16 is emulated
    and slower than fp32. Read from /proc/cpuinfo (Linux); other systems are taken as no."""
    try:
        with open("/proc/cpuinfo") as stream:
            flags = next((line for line in stream if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def inference_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Inference precision: "auto" is bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere
    (the benchmark reports the bf16-vs-fp32 agreement that justifies it)."""
    import torch

    if precision == "auto" and device.type == "cpu":
        return torch.bfloat16 if cpu_supports_bf16() else None
    return autocast_dtype(device, precision)


def describe(device: torch.device) -> str:
    """A human-readable device name for logs and model cards."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
