"""Where the PET lands, not only its grid: after `align`, Align in the scene and `segment --transform`
(or `--align rigid`) the phantom's hot spot is within 2 mm of where the recorded true CT-to-PET
transform puts it, and the plain resampling, which ignores the misalignment, is not."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import identity_model
from OsteoSegLib.cli import main
from OsteoSegLib.imaging import resample_onto
from OsteoSegLib.scene import mrml
from OsteoSegLib.scene.align_in_scene import align_in_scene

CASE = 0          # small cohort, seed 11: misaligned by 5.2 mm at its hot spot
TOLERANCE_MM = 2.0


def hot_spot_mm(values: np.ndarray, grid: sitk.Image) -> np.ndarray:
    """Physical centroid (LPS mm) of the voxels above half the volume's maximum."""
    index = np.argwhere(values > 0.5 * values.max()).mean(axis=0)[::-1]
    return np.array(grid.TransformContinuousIndexToPhysicalPoint(index.tolist()))


@pytest.fixture(scope="module")
def case(small_cohort):
    """CT and PET files, the images, and the hot spot where the true transform puts it."""
    entry = small_cohort.cases[CASE]
    ct_file, pet_file = small_cohort.path(entry.ct), small_cohort.path(entry.pet)
    ct, pet = sitk.ReadImage(str(ct_file)), sitk.ReadImage(str(pet_file))
    truth = sitk.ReadTransform(str(small_cohort.path(entry.metadata["ct_to_pet_transform"])))
    expected = hot_spot_mm(sitk.GetArrayFromImage(resample_onto(pet, ct, transform=truth)), ct)
    unaligned = hot_spot_mm(sitk.GetArrayFromImage(resample_onto(pet, ct)), ct)
    assert np.linalg.norm(unaligned - expected) > 4.0      # the test can tell aligned from not
    return {"ct_file": ct_file, "pet_file": pet_file, "ct": ct, "pet": pet, "expected": expected}


def distance(found, case) -> float:
    return float(np.linalg.norm(found - case["expected"]))


def test_align_command_puts_the_hot_spot_where_the_true_transform_does(case, tmp_path, capsys):
    assert main(["align", "--ct", str(case["ct_file"]), "--pet", str(case["pet_file"]), "--method", "rigid",
                 "--out", str(tmp_path / "aligned")]) == 0
    assert "Mattes MI" in capsys.readouterr().out
    on_ct = sitk.ReadImage(str(tmp_path / "aligned" / "pet_on_ct.nii.gz"))
    assert distance(hot_spot_mm(sitk.GetArrayFromImage(on_ct), case["ct"]), case) < TOLERANCE_MM
    # The transform file is the one that placed it (what `segment --transform` will apply).
    transform = sitk.ReadTransform(str(tmp_path / "aligned" / "ct_to_pet.tfm"))
    again = resample_onto(case["pet"], case["ct"], transform=transform)
    np.testing.assert_allclose(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(on_ct), atol=1e-4)
    assert main(["align", "--ct", str(case["ct_file"]), "--pet", str(case["pet_file"]),
                 "--out", str(tmp_path / "resampled")]) == 0
    plain = sitk.ReadImage(str(tmp_path / "resampled" / "pet_on_ct.nii.gz"))
    assert distance(hot_spot_mm(sitk.GetArrayFromImage(plain), case["ct"]), case) > 4.0


def test_align_in_the_scene_puts_the_hot_spot_where_the_true_transform_does(context, case):
    ct_node = mrml.volume_node_from_image(context, case["ct"], "CT")
    pet_node = mrml.volume_node_from_image(context, case["pet"], "PET")
    aligned = align_in_scene(context, ct_node, pet_node, "rigid")
    on_ct = mrml.image_from_volume_node(aligned.pet_on_ct)
    assert distance(hot_spot_mm(sitk.GetArrayFromImage(on_ct), case["ct"]), case) < TOLERANCE_MM


def segment_with_pet_model(arguments, tmp_path, monkeypatch, name: str) -> np.ndarray:
    """Run `osteoseg segment` with a model that outlines PET above half its maximum (so its mask is the
    hot spot as the segmentation saw it); the mask on the CT grid."""
    from OsteoSegLib.model import package

    monkeypatch.setattr(package, "load_model_set", lambda _: [identity_model("pet-hot", "A", ("pet",))])
    assert main(["segment", *arguments, "--models", str(tmp_path), "--out", str(tmp_path / name), "--nifti",
                 "--device", "cpu"]) == 0
    return sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name / "ct_pet-hot_mask.nii.gz")))


def test_segment_applies_the_transform_file_and_its_own_rigid_alignment(case, tmp_path, monkeypatch, capsys):
    assert main(["align", "--ct", str(case["ct_file"]), "--pet", str(case["pet_file"]), "--method", "rigid",
                 "--out", str(tmp_path / "aligned")]) == 0
    files = ["--ct", str(case["ct_file"]), "--pet", str(case["pet_file"])]
    runs = {"transform": [*files, "--transform", str(tmp_path / "aligned" / "ct_to_pet.tfm")],
            "rigid": [*files, "--align", "rigid"], "resample": files}
    found = {name: hot_spot_mm(segment_with_pet_model(arguments, tmp_path, monkeypatch, name), case["ct"])
             for name, arguments in runs.items()}
    capsys.readouterr()
    assert distance(found["transform"], case) < TOLERANCE_MM, found
    assert distance(found["rigid"], case) < TOLERANCE_MM, found
    assert distance(found["resample"], case) > 4.0, found
