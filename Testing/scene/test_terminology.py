"""OsteoSeg's finding terminology in Slicer."""

from __future__ import annotations

from OsteoSegLib.scene.terminology import finding_tag


def test_our_terminology_loads_into_slicer_and_the_tags_point_into_it(context):
    import slicer
    from OsteoSegLib.scene.terminology import TERMINOLOGY_FILE

    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    logic.SetMRMLScene(context.scene)
    assert logic.LoadTerminologyFromFile(str(TERMINOLOGY_FILE)) == "OsteoSeg findings"
    for source, modifier in (("A", "High-sensitivity extent (Model A)"), ("B", "High-specificity core (Model B)"),
                             ("disagreement", "Model disagreement (A only)")):
        entry = slicer.vtkSlicerTerminologyEntry()
        assert logic.DeserializeTerminologyEntry(finding_tag(source), entry)
        assert entry.GetTypeObject().GetCodeValue() == "60168000"            # SNOMED CT: osteomyelitis
        assert entry.GetTypeModifierObject().GetCodeMeaning() == modifier


def test_load_into_says_when_slicer_could_not_read_the_file(context, tmp_path):
    import slicer
    from OsteoSegLib.errors import OsteoSegError
    from OsteoSegLib.scene.terminology import load_into

    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    logic.SetMRMLScene(context.scene)
    assert load_into(logic) == "OsteoSeg findings"

    class Unreadable:
        def LoadTerminologyFromFile(self, path):
            return ""

    try:
        load_into(Unreadable())
    except OsteoSegError as error:
        assert "could not load OsteoSeg's terminology" in str(error) and "OsteoSegFindings.json" in str(error)
    else:
        raise AssertionError("an empty context name must be an error")
