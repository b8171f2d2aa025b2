"""The U-Net: widths, shapes, the foreground prior."""

from __future__ import annotations

import pytest
import torch
from OsteoSegLib.model.network import Architecture, build_network, check_input_size, count_parameters


def test_paper_width_is_the_default_and_width_scales_the_network():
    assert Architecture().widths() == [64, 128, 256, 512, 1024]
    wide, narrow = build_network(Architecture(2, 64)), build_network(Architecture(2, 8))
    # Parameters grow with the square of the width (convolutions dominate).
    assert count_parameters(wide) / count_parameters(narrow) == pytest.approx(64, rel=0.02)
    assert count_parameters(wide) == pytest.approx(31.0e6, rel=0.02)   # the classic U-Net's ~31 M


@pytest.mark.parametrize("channels", [1, 2])
def test_network_maps_slices_to_one_logit_per_pixel(channels):
    network = build_network(Architecture(channels, 4)).eval()
    with torch.no_grad():
        logits = network(torch.rand(3, channels, 48, 64))
    assert logits.shape == (3, 1, 48, 64)
    # Starts near the foreground prior, not at probability 0.5.
    assert float(torch.sigmoid(logits).mean()) < 0.1


def test_input_size_must_survive_four_halvings():
    check_input_size(224, Architecture())
    with pytest.raises(ValueError, match="not divisible by 16"):
        check_input_size(100, Architecture())
