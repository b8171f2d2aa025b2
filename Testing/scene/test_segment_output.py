"""Segmentation output files: an editable .seg.nrrd on the CT geometry, NIfTI, provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import identity_model, oblique_ct_with_mask
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference.segment import segment_images
from OsteoSegLib.scene import mrml
from OsteoSegLib.scene.segment_output import write_segmentation


def test_segment_output_is_an_editable_segmentation_on_the_ct_geometry(context, tmp_path):
    ct, mask = oblique_ct_with_mask()
    models = [identity_model("model-A", "A"), identity_model("model-B", "B")]
    result = segment_images(ct, None, models, device="cpu")
    result.masks["model-B"][3] = 0                        # B smaller than A, as intended
    nodes = context.scene.GetNumberOfNodes()
    paths = write_segmentation(context, ct, result, tmp_path, "patient", nifti=True, probabilities=True)
    assert context.scene.GetNumberOfNodes() == nodes          # a batch in one scene does not keep every case
    reference = mrml.volume_node_from_image(context, ct, "reference")
    node = mrml.load_segmentation(context, paths["segmentation"])
    masks = mrml.masks_from_segmentation(context, node, reference)
    assert set(masks) == {"Model A (high sensitivity)", "Model B (high specificity)", "A only (disagreement)"}
    np.testing.assert_array_equal(masks["A only (disagreement)"], result.masks["model-A"] & ~result.masks["model-B"])
    segment = node.GetSegmentation().GetSegment(node.GetSegmentation().GetSegmentIdBySegmentName(
        "Model A (high sensitivity)"))
    assert segment.GetColor() == pytest.approx((0.894, 0.102, 0.110), abs=1e-3)
    written = sitk.ReadImage(str(paths["mask model-A"]))
    assert written.GetDirection() == pytest.approx(ct.GetDirection())
    assert written.GetOrigin() == pytest.approx(ct.GetOrigin())
    assert json.loads(paths["provenance"].read_text())["models"][0]["name"] == "model-A"
    with pytest.raises(OsteoSegError, match="earlier result is in the way"):
        write_segmentation(context, ct, result, tmp_path, "patient")
