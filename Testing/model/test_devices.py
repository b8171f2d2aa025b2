"""Device and precision choice."""

from __future__ import annotations

import pytest
import torch
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.model.devices import autocast_dtype, choose_device


def test_device_choice_never_falls_back_silently():
    assert choose_device("cpu").type == "cpu"
    assert choose_device("auto").type in {"cuda", "mps", "cpu"}
    with pytest.raises(OsteoSegError, match="unknown device"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(OsteoSegError, match="no usable CUDA GPU"):
            choose_device("cuda")
    assert autocast_dtype(torch.device("cpu")) is None
    assert autocast_dtype(torch.device("cpu"), "bf16") is torch.bfloat16
