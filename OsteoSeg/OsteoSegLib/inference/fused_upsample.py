"""Inference form of a decoder level's upsampling: one matrix product written into the skip join.

A 2x2 stride-2 transposed convolution gives each input pixel its own 2x2 block of output pixels,
so it is a matrix product (pixels x in_channels) @ (in_channels x 4 * out_channels) followed by a
rearrangement. Written straight into the buffer that joins it with the skip, the rearrangement
costs no more than the concatenation it replaces, and the product runs at the matrix-product peak,
where oneDNN's transposed convolution ran at about half the speed of the other layers (figures in the
README's performance section).
"""

from __future__ import annotations

import torch
from torch import nn

from ..model.network import SkipUpsample


class FusedSkipUpsample(nn.Module):
    """SkipUpsample's `join` as one matrix product into the joined buffer (channels-last), same output."""

    def __init__(self, upsample: SkipUpsample):
        super().__init__()
        in_channels, out_channels = upsample.in_channels, upsample.out_channels
        # (in, out, 2, 2) -> (in, 2, 2, out): one row per input channel, the four output pixels side by side
        weight = upsample.weight.detach().permute(0, 2, 3, 1).reshape(in_channels, 4 * out_channels)
        self.register_buffer("weight", weight.clone())
        self.register_buffer("bias", upsample.bias.detach().repeat(4).clone())
        self.out_channels = out_channels

    def join(self, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """cat([skip, upsample(x)], channels) for (N, C, h, w) x and (N, S, 2h, 2w) skip, returned
        as a channels-last tensor."""
        n, in_channels, h, w = x.shape
        pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, in_channels)      # a view when x is channels-last
        blocks = torch.addmm(self.bias.to(pixels.dtype), pixels, self.weight.to(pixels.dtype))
        skip_channels = skip.shape[1]
        joined = torch.empty((n, 2 * h, 2 * w, skip_channels + self.out_channels), dtype=blocks.dtype,
                             device=x.device)
        joined[..., :skip_channels] = skip.permute(0, 2, 3, 1)
        # output pixel (2i + a, 2j + b) of channel o is blocks[(n, i, j), (a, b, o)]
        joined[..., skip_channels:].view(n, h, 2, w, 2, self.out_channels).copy_(
            blocks.view(n, h, w, 2, 2, self.out_channels).permute(0, 1, 3, 2, 4, 5))
        return joined.permute(0, 3, 1, 2)


def fuse_upsampling(network: nn.Module) -> nn.Module:
    """Replace every SkipUpsample in `network` (in place) by its fused inference form."""
    for module in list(network.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, SkipUpsample):
                setattr(module, child_name, FusedSkipUpsample(child))
    return network
