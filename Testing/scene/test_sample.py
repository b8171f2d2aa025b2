"""The sample case behind Load sample PET-CT, and its entry in Slicer's Sample Data module."""

from __future__ import annotations

from OsteoSegLib.scene.sample import SAMPLE_NAME, ensure_sample_case, load_sample, sample_data_source


def test_sample_case_is_generated_once_and_has_a_lesion(tmp_path):
    cohort, case = ensure_sample_case(tmp_path)
    assert case.metadata["phantom"]["lesion"] is not None
    stamp = cohort.path(case.ct).stat().st_mtime_ns
    again, _ = ensure_sample_case(tmp_path)
    assert again.path(case.ct).stat().st_mtime_ns == stamp                  # re-used, not regenerated


def test_the_sample_loads_into_a_scene_without_any_download(context, tmp_path):
    """What Load sample, the Sample Data entry and the self-test get: the CT the self-test expects
    (96 x 96 x 40) and the PET on its own grid, nothing else left in the scene."""
    ct, pet = load_sample(context, tmp_path)
    assert ct.GetImageData().GetDimensions() == (96, 96, 40)
    assert pet.GetImageData().GetDimensions() != (96, 96, 40)
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 2
    assert (ct.GetName(), pet.GetName()) == ("case_000 CT", "case_000 PET")


def sample_data_source_accepts(arguments: dict) -> None:
    """The checks Slicer's SampleDataSource makes (Modules/Scripted/SampleData/SampleData.py, v5.10.0
    lines 176-205; the same at 5.12.3): with a list of uris, the per-file options left as None are
    expanded, then every one of them must have the uris' length; a single uri wraps each option."""
    per_file = ("fileNames", "nodeNames", "loadFiles", "checksums", "loadFileTypes")
    if isinstance(arguments["uris"], (list, tuple)):
        count = len(arguments["uris"])
        for name in per_file:
            value = arguments.get(name)
            if name != "fileNames" and value is None:
                continue
            assert len(value) == count, f"{name}: len() of {value!r} must be {count}"   # len(False) raises
    else:
        for name in ("fileNames", "nodeNames"):
            assert isinstance(arguments[name], str), name


def test_the_sample_data_entry_is_one_that_slicer_accepts_and_loads_through_the_module():
    loaded = []
    arguments = sample_data_source("icon.png", lambda source: loaded.append(source) or "nodes")
    sample_data_source_accepts(arguments)
    assert arguments["sampleName"] == SAMPLE_NAME and arguments["loadFiles"] is False
    assert arguments["customDownloader"]("the source") == "nodes" and loaded == ["the source"]


def test_the_check_itself_catches_the_list_with_a_single_boolean():
    broken = {**sample_data_source("icon.png", print), "uris": ["osteoseg://phantom"],
              "fileNames": ["OsteoSegPhantom.nrrd"], "nodeNames": ["OsteoSeg phantom"]}
    try:
        sample_data_source_accepts(broken)
    except TypeError as error:                           # what Slicer raised at every startup
        assert "len()" in str(error)
    else:
        raise AssertionError("a list of uris beside loadFiles=False must be refused")
