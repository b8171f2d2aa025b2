"""OsteoSeg: bone infection (osteomyelitis) segmentation in PET-CT, the 3D Slicer module.

A thin adapter: widgets, the parameter node and buttons. Every computation lives in OsteoSegLib
(plain Python, tested headless against Slicer's own MRML libraries).
"""

import logging

import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin


class OsteoSeg(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "OsteoSeg"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["OsteoSeg contributors"]
        self.parent.helpText = (
            "Segments bone infection (osteomyelitis) in PET-CT with two models trained on two annotation "
            "philosophies: A (high sensitivity, screening) and B (high specificity, surgical planning). "
            "Load a CT and a PET, preview the CT in the bone window with the PET fused on top, then "
            "segment and edit the masks in Segment Editor.")
        self.parent.acknowledgementText = (
            "Method: Cross-Source Supervision for Bone Infection Segmentation in Dual-Modality PET-CT "
            "(arXiv 2605.16373, 2026).")


@parameterNodeWrapper
class OsteoSegParameterNode:
    """The module's parameters, bound to the .ui widgets through their SlicerParameterName."""

    ctVolume: vtkMRMLScalarVolumeNode
    petVolume: vtkMRMLScalarVolumeNode


class OsteoSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: selectors and buttons that call OsteoSegLogic."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/OsteoSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = OsteoSegLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSampleButton)
        self.ui.previewButton.connect("clicked(bool)", self.onPreviewButton)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None):
        ready = bool(self._parameterNode and self._parameterNode.ctVolume and self._parameterNode.petVolume)
        self.ui.previewButton.enabled = ready
        self.ui.previewButton.toolTip = (
            "Show the CT in the bone window with the PET fused on top." if ready
            else "Select a CT volume and a PET volume first.")

    def onLoadSampleButton(self):
        with slicer.util.tryWithErrorDisplay("Could not load the sample PET-CT.", waitCursor=True):
            ctNode, petNode = self.logic.loadSample()
            self._parameterNode.ctVolume = ctNode
            self._parameterNode.petVolume = petNode
            self.ui.statusLabel.text = f"Loaded {ctNode.GetName()} and {petNode.GetName()}."

    def onPreviewButton(self):
        with slicer.util.tryWithErrorDisplay("Could not show the preview.", waitCursor=True):
            petOnCt = self.logic.preview(self._parameterNode.ctVolume, self._parameterNode.petVolume)
            self.ui.statusLabel.text = f"Showing CT (bone window) with {petOnCt.GetName()}."


class OsteoSegLogic(ScriptedLoadableModuleLogic):
    """Adapter from Slicer's application to OsteoSegLib: builds the MRML context from the running
    Slicer and calls the library. No computation here."""

    def getParameterNode(self):
        return OsteoSegParameterNode(super().getParameterNode())

    def mrmlContext(self):
        from OsteoSegLib.mrml import MrmlContext

        return MrmlContext(scene=slicer.mrmlScene, volumes_logic=slicer.modules.volumes.logic(),
                           segmentations_logic=slicer.modules.segmentations.logic(),
                           application_logic=slicer.app.applicationLogic())

    def loadSample(self):
        """Generate (once, into Slicer's cache folder) and load the sample PET-CT case."""
        from OsteoSegLib.sample import ensure_sample_case
        from OsteoSegLib.scene import load_case

        cohort, case = ensure_sample_case(slicer.app.cachePath)
        nodes = load_case(self.mrmlContext(), cohort, case, with_labels=False)
        slicer.mrmlScene.RemoveNode(nodes.pet_on_ct)   # the preview step makes its own
        logging.info(f"OsteoSeg sample loaded from {cohort.root}")
        return nodes.ct, nodes.pet

    def preview(self, ctNode, petNode):
        from OsteoSegLib.scene import preview

        return preview(self.mrmlContext(), ctNode, petNode)


class OsteoSegTest(ScriptedLoadableModuleTest):
    """Self-test inside a running Slicer: load the sample and preview it."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LoadSampleAndPreview()

    def test_LoadSampleAndPreview(self):
        self.delayDisplay("Loading the sample PET-CT")
        logic = OsteoSegLogic()
        ctNode, petNode = logic.loadSample()
        self.assertEqual(ctNode.GetImageData().GetDimensions(), (96, 96, 40))
        petOnCt = logic.preview(ctNode, petNode)
        self.assertEqual(petOnCt.GetImageData().GetDimensions(), ctNode.GetImageData().GetDimensions())
        self.assertEqual(ctNode.GetDisplayNode().GetWindow(), 1500)
        self.delayDisplay("Test passed")
