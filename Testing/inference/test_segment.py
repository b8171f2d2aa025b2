"""Segment on one patient: back on an oblique CT grid, model sets that cannot run together, device fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import Messages, identity_model, oblique_ct_with_mask
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference.segment import segment_images
from OsteoSegLib.model.preprocess import PreprocessSettings


def test_inference_maps_predictions_back_onto_an_oblique_grid_without_shifting():
    ct, mask = oblique_ct_with_mask()
    result = segment_images(ct, None, [identity_model("id", "A")], device="cpu")
    predicted = result.masks["id"]
    assert predicted.shape == mask.shape
    overlap = 2 * (predicted & mask).sum() / (predicted.sum() + mask.sum())
    assert overlap > 0.97
    centre = np.array(np.nonzero(mask)).mean(axis=1)
    assert np.abs(np.array(np.nonzero(predicted)).mean(axis=1) - centre).max() < 0.1   # voxels


def test_model_sets_that_cannot_run_together_are_refused():
    ct, _ = oblique_ct_with_mask()
    other = identity_model("other", "B")
    other.card["preprocessing"] = PreprocessSettings(size=96).as_dict()
    with pytest.raises(OsteoSegError, match="disagree on preprocessing"):
        segment_images(ct, None, [identity_model("id", "A"), other], device="cpu")
    with pytest.raises(OsteoSegError, match="needs ct\\+pet but the case has no PET"):
        segment_images(ct, None, [identity_model("dual", "A", ("ct", "pet"))], device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_gpu_falls_back_for_users_with_a_notice_but_not_for_benchmarks():
    ct, _ = oblique_ct_with_mask()

    messages = Messages()
    result = segment_images(ct, None, [identity_model("id", "A")], device="cuda", progress=messages)
    assert result.device == "cpu" and "no usable CUDA GPU" in messages.texts[0] and "using cpu" in messages.texts[0]
    with pytest.raises(OsteoSegError, match="no usable CUDA GPU"):
        segment_images(ct, None, [identity_model("id", "A")], device="cuda", device_fallback=False)
