"""The fused upsampling used at inference gives the same join as the trained transposed convolution."""

from __future__ import annotations

import copy

import pytest
import torch
from OsteoSegLib.inference.fused_upsample import FusedSkipUpsample, fuse_upsampling
from OsteoSegLib.model.network import Architecture, SkipUpsample, build_network


@pytest.mark.parametrize("channels_last", [True, False])
def test_fused_join_equals_concatenating_the_transposed_convolution(channels_last):
    torch.manual_seed(0)
    upsample = SkipUpsample(12, 6)
    torch.nn.init.normal_(upsample.bias)       # a non-zero bias must land on every output pixel
    x, skip = torch.randn(3, 12, 5, 7), torch.randn(3, 6, 10, 14)
    if channels_last:
        x, skip = (t.contiguous(memory_format=torch.channels_last) for t in (x, skip))
    with torch.no_grad():
        expected = torch.cat([skip, upsample(x)], dim=1)
        fused = FusedSkipUpsample(upsample).join(skip, x)
    assert fused.shape == expected.shape
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)


def test_fused_join_under_bf16_autocast_stays_close():
    torch.manual_seed(1)
    upsample = SkipUpsample(16, 8)
    x, skip = torch.randn(2, 16, 4, 4), torch.randn(2, 8, 8, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.cat([skip.bfloat16(), upsample(x)], dim=1).float()
        fused = FusedSkipUpsample(upsample).join(skip.bfloat16(), x).float()
    torch.testing.assert_close(fused, expected, atol=0.05, rtol=0.02)


def test_fusing_a_network_replaces_every_upsampling_and_keeps_its_output():
    torch.manual_seed(2)
    network = build_network(Architecture(2, 4)).eval()
    x = torch.randn(2, 2, 32, 48)
    with torch.no_grad():
        expected = network(x)
        fused = fuse_upsampling(copy.deepcopy(network))
        result = fused(x)
    assert sum(isinstance(m, FusedSkipUpsample) for m in fused.modules()) == 4
    assert not any(isinstance(m, SkipUpsample) for m in fused.modules())
    torch.testing.assert_close(result, expected, atol=1e-5, rtol=1e-4)
