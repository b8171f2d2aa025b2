"""OsteoSeg: bone infection (osteomyelitis) segmentation in PET-CT, the 3D Slicer module.

A thin adapter: widgets, the parameter node and buttons. Every computation lives in OsteoSegLib
(plain Python, tested headless against Slicer's own MRML libraries); heavy packages (torch,
SimpleITK filters) are imported only when a button needs them, so the module loads instantly.
Supported: 3D Slicer 5.10 and later. This file stays valid Python 3.9, so that an older Slicer shows
one message instead of tracebacks. Every Slicer, Qt and CTK name used here is listed, with the Slicer
source that defines it, in docs/slicer-compatibility.md.
"""

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

ALIGN_METHODS = ["resample (combined PET/CT)", "rigid (SimpleITK)", "rigid (BRAINSFit)"]
BRAINSFIT_METHOD = 2
TRANSFER_KINDS = {"PET (SUV)": "pet", "CT (e.g. an earlier scan)": "ct", "other (e.g. MRI)": "other"}
TRANSFER_STEPS = {"measured best for the source": None, "none: one frame of reference (combined PET/CT)": "resample",
                  "rigid only": "rigid", "rigid + deformable": "deformable"}
try:
    import OsteoSegLib  # noqa: F401  (light; refuses Python < 3.10, i.e. 3D Slicer 5.8 and older, saying why)
except ImportError as error:
    UNSUPPORTED_MESSAGE = str(error)
else:
    UNSUPPORTED_MESSAGE = ""
PYTHON_SUPPORTED = not UNSUPPORTED_MESSAGE


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
            "Select a CT and a PET, align the PET to the CT, preview the CT in the bone window with the PET "
            "fused on top, click Segment, and edit the result in Segment Editor.")
        if not PYTHON_SUPPORTED:
            self.parent.helpText = UNSUPPORTED_MESSAGE
        self.parent.acknowledgementText = (
            "Method: Cross-Source Supervision for Bone Infection Segmentation in Dual-Modality PET-CT "
            "(arXiv 2605.16373, 2026).")
        if PYTHON_SUPPORTED:
            slicer.app.connect("startupCompleted()", onStartupCompleted)


def onStartupCompleted():
    """Register the sample in the Sample Data module and load OsteoSeg's finding terminology."""
    registerSampleData()
    OsteoSegLogic().loadTerminology()


def registerSampleData():
    """Offer the synthetic PET-CT case in the Sample Data module; it is generated locally, no network."""
    import SampleData
    from OsteoSegLib.scene.sample import sample_data_source

    def loadFromSampleData(source):
        # Called from the Sample Data module's button (a Qt slot): an error would reach only the console.
        with slicer.util.tryWithErrorDisplay("Could not load the sample PET-CT.", waitCursor=True):
            return OsteoSegLogic().loadSample()

    thumbnail = os.path.join(os.path.dirname(__file__), "Resources", "Icons", "OsteoSeg.png")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(**sample_data_source(thumbnail, loadFromSampleData))


@parameterNodeWrapper
class OsteoSegParameterNode:
    """The module's parameters, bound to the .ui widgets through their SlicerParameterName."""

    ctVolume: vtkMRMLScalarVolumeNode
    petVolume: vtkMRMLScalarVolumeNode
    alignMethod: Annotated[str, Choice(ALIGN_METHODS)] = ALIGN_METHODS[0]
    alignedPetVolume: vtkMRMLScalarVolumeNode
    petOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    showPet: bool = True
    modelSetPath: Path
    device: Annotated[str, Choice(["auto", "cuda", "mps", "cpu"])] = "auto"
    threshold: Annotated[float, WithinRange(0.05, 0.95)] = 0.5
    probabilityMaps: bool = False
    outputSegmentation: vtkMRMLSegmentationNode
    roughSegment: str = ""
    transferSegmentation: vtkMRMLSegmentationNode
    transferSource: vtkMRMLScalarVolumeNode
    transferKind: Annotated[str, Choice(list(TRANSFER_KINDS))] = list(TRANSFER_KINDS)[0]
    transferStep: Annotated[str, Choice(list(TRANSFER_STEPS))] = list(TRANSFER_STEPS)[0]


class OsteoSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: selectors and buttons that call OsteoSegLogic; a timer follows the worker."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.ui = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._appliedOverlay = None
        self._job = None
        self._pet = None
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onPollJob)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if not PYTHON_SUPPORTED:
            label = qt.QLabel(UNSUPPORTED_MESSAGE)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/OsteoSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = OsteoSegLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSampleButton)
        self.ui.alignButton.connect("clicked(bool)", self.onAlignButton)
        self.ui.previewButton.connect("clicked(bool)", self.onPreviewButton)
        # The PET overlay follows the parameter node (see onParameterNodeModified), not the widgets'
        # signals: a widget slot connected before the parameter connector would read the old value.
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.editButton.connect("clicked(bool)", self.onEditButton)
        self.ui.proposeButton.connect("clicked(bool)", self.onProposeButton)
        self.ui.transferButton.connect("clicked(bool)", self.onTransferButton)
        self.ui.cancelButton.visible = False
        self.ui.progressBar.visible = False
        self.initializeParameterNode()

    def cleanup(self):
        if self.ui is None:
            return
        self.onCancelButton()
        self.removeObservers()

    def enter(self):
        if self.ui is not None:
            self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onSceneStartClose(self, caller, event):
        self.onCancelButton()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            # connectGui re-creates the method combo box's items: offer BRAINSFit only where it exists.
            if not self.logic.brainsFitAvailable() and self.ui.alignMethodComboBox.count > BRAINSFIT_METHOD:
                self.ui.alignMethodComboBox.model().item(BRAINSFIT_METHOD).setEnabled(False)
            # Entering the module must not change the views: the overlay counts as applied as it is.
            self._appliedOverlay = self._overlayOpacity()
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self._updateButtons()

    def _overlayOpacity(self):
        p = self._parameterNode
        return p.petOpacity if p.showPet else 0.0

    def onParameterNodeModified(self, caller=None, event=None):
        """A parameter changed (the widgets write it first): apply a changed overlay, update the buttons."""
        opacity = self._overlayOpacity()
        if opacity != self._appliedOverlay:
            self._appliedOverlay = opacity
            self.logic.setPetOpacity(opacity)
        self._updateButtons()

    def _updateButtons(self):
        """Enable each button only when it can run, and say in its tooltip why not."""
        p = self._parameterNode
        running = self._job is not None
        haveInputs = bool(p and p.ctVolume and p.petVolume)
        haveModels = bool(p and p.modelSetPath and str(p.modelSetPath) not in ("", ".") and p.modelSetPath.is_dir())
        self.ui.alignButton.enabled = haveInputs and not running
        self.ui.alignButton.toolTip = ("Make a PET volume on the CT grid (the original PET is kept)."
                                       if haveInputs else "Select a CT volume and a PET volume first.")
        self.ui.previewButton.enabled = haveInputs
        self.ui.previewButton.toolTip = ("Show the CT in the bone window with the PET fused on top."
                                         if haveInputs else "Select a CT volume and a PET volume first.")
        self.ui.segmentButton.enabled = haveInputs and haveModels and not running
        self.ui.segmentButton.toolTip = (
            "Run Model A and Model B and add a new segmentation." if haveInputs and haveModels
            else "Select a CT volume and a PET volume first." if not haveInputs
            else "Choose the model set folder (it holds the Model A and Model B packages).")
        self.ui.editButton.enabled = bool(p and p.outputSegmentation)
        # The rough-outline selector is not bound to the parameter node (it offers three node types).
        self.ui.proposeButton.enabled = haveInputs and not running
        self.ui.proposeButton.toolTip = (
            "Cluster the CT and PET around the rough outline and propose both labels, opened in Segment Editor."
            if haveInputs else "Select a CT volume and a PET volume first.")
        canTransfer = bool(p and p.ctVolume and p.transferSegmentation and p.transferSource)
        self.ui.transferButton.enabled = canTransfer and not running
        self.ui.transferButton.toolTip = (
            "Carry the segmentation onto the CT as a new segmentation; each segment says whether the CT shows it."
            if canTransfer else "Select the CT (Inputs), the segmentation and the volume it was drawn on.")

    def onLoadSampleButton(self):
        with slicer.util.tryWithErrorDisplay("Could not load the sample PET-CT.", waitCursor=True):
            ctNode, petNode = self.logic.loadSample()
            self._parameterNode.ctVolume = ctNode
            self._parameterNode.petVolume = petNode
            self.ui.statusLabel.text = f"Loaded {ctNode.GetName()} and {petNode.GetName()}."

    def onAlignButton(self):
        with slicer.util.tryWithErrorDisplay("Could not align the PET to the CT.", waitCursor=True):
            p = self._parameterNode
            method = ALIGN_METHODS.index(p.alignMethod)
            if method == BRAINSFIT_METHOD and not self.logic.brainsFitAvailable():
                raise ValueError("BRAINSFit is not part of this Slicer; choose another method.")
            self.logic.ensureDependencies("align", required=False)   # the figure; Align works without it
            aligned = self.logic.align(p.ctVolume, p.petVolume, method)
            p.alignedPetVolume = aligned.pet_on_ct
            if aligned.figure:
                self.ui.alignFigureLabel.setPixmap(qt.QPixmap(str(aligned.figure)).scaledToWidth(360))
            self.ui.statusLabel.text = (f"Aligned: {aligned.pet_on_ct.GetName()} (originals unchanged)."
                                        + (f" Note: {aligned.note}." if aligned.note else ""))
            self.onPreviewButton()

    def onPreviewButton(self):
        with slicer.util.tryWithErrorDisplay("Could not show the preview.", waitCursor=True):
            p = self._parameterNode
            pet = p.alignedPetVolume or p.petVolume
            shown = self.logic.preview(p.ctVolume, pet, self._overlayOpacity())
            self._appliedOverlay = self._overlayOpacity()
            self.ui.statusLabel.text = f"Showing CT (bone window) with {shown.GetName()}."

    def onSegmentButton(self):
        with slicer.util.tryWithErrorDisplay("Could not start the segmentation.", waitCursor=True):
            if not self.logic.ensureDependencies("segment"):
                return
            p = self._parameterNode
            # The aligned PET when Align was run (a rigid result is already on the CT grid).
            self._pet = p.alignedPetVolume or p.petVolume
            self._job = self.logic.startSegmentation(p.ctVolume, self._pet, p.modelSetPath, p.device, p.threshold)
            self._started = time.time()
            self.ui.progressBar.value = 0
            self.ui.progressBar.visible = self.ui.cancelButton.visible = True
            self.ui.statusLabel.text = "Segmenting (Model A and Model B) ..."
            self._timer.start()
            self._updateButtons()

    def onPollJob(self):
        """Follow the worker: progress with ETA, messages, and the result when it is done."""
        if self._job is None:
            return
        running = self._job.running
        events = self._job.poll() if running else self._job.wait(timeout=5)   # drain the pipes at the end
        for event in events:
            if event["event"] == "progress":
                self.ui.progressBar.value = int(100 * event["done"] / event["total"])
                eta = event.get("eta_s")
                self.ui.statusLabel.text = (f"Segmenting: {event['done']} of {event['total']} slices"
                                            + (f", about {eta:.0f} s left" if eta is not None else ""))
            elif event["event"] == "message":
                self.ui.statusLabel.text = event["text"]
                logging.info(f"OsteoSeg: {event['text']}")
            elif event["event"] == "error":
                self._finishJob()
                slicer.util.errorDisplay(event["text"])
                return
            elif event["event"] == "done":
                self._finishJob()
                with slicer.util.tryWithErrorDisplay("Could not add the segmentation.", waitCursor=True):
                    p = self._parameterNode
                    added = self.logic.finishSegmentation(p.ctVolume, self._pet, event["result"],
                                                          p.probabilityMaps)
                    p.outputSegmentation = added.segmentation
                    self.ui.statisticsTableView.setMRMLTableNode(added.statistics)
                    self.ui.statusLabel.text = (f"Added {added.segmentation.GetName()} in "
                                                f"{time.time() - self._started:.1f} s.")
                return
        if not running:
            errors = "\n".join(self._job.errors[-5:])
            self._finishJob()
            slicer.util.errorDisplay(f"The segmentation process ended unexpectedly:\n{errors}")

    def onCancelButton(self):
        if self._job is not None:
            self._job.cancel()
            self._finishJob()
            self.ui.statusLabel.text = "Cancelled; the scene is unchanged."

    def _finishJob(self):
        self._timer.stop()
        self._job = None
        self.ui.progressBar.visible = self.ui.cancelButton.visible = False
        self._updateButtons()

    def onEditButton(self):
        p = self._parameterNode
        self.logic.editInSegmentEditor(p.outputSegmentation, p.ctVolume)

    def onProposeButton(self):
        with slicer.util.tryWithErrorDisplay("Could not propose labels.", waitCursor=True):
            if not self.logic.ensureDependencies("segment"):   # the clustering runs on PyTorch
                return
            p = self._parameterNode
            added = self.logic.proposeLabels(p.ctVolume, p.alignedPetVolume or p.petVolume,
                                             self.ui.roughInputSelector.currentNode(), p.roughSegment or None)
            lesions = added.proposal.lesions
            lowest = min((lesion.confidence for lesion in lesions), default=0.0)
            self.ui.statusLabel.text = (f"Proposed: {added.segmentation.GetName()} ({len(lesions)} lesion(s), lowest "
                                        f"confidence {lowest:.2f}). Correct them in Segment Editor.")
            self.logic.editInSegmentEditor(added.segmentation, p.ctVolume)

    def onTransferButton(self):
        with slicer.util.tryWithErrorDisplay("Could not transfer the segmentation.", waitCursor=True):
            p = self._parameterNode
            node, verdicts = self.logic.transfer(p.transferSource, p.transferSegmentation, p.ctVolume,
                                                 TRANSFER_KINDS[p.transferKind], TRANSFER_STEPS[p.transferStep])
            self.ui.transferResultLabel.text = "\n".join(verdicts)
            self.ui.statusLabel.text = f"Transferred: {node.GetName()} (the original segmentation is unchanged)."


class OsteoSegLogic(ScriptedLoadableModuleLogic):
    """Adapter from Slicer's application to OsteoSegLib: builds the MRML context from the running
    Slicer and calls the library. No computation here."""

    def getParameterNode(self):
        return OsteoSegParameterNode(super().getParameterNode())

    def mrmlContext(self):
        from OsteoSegLib.scene.mrml import MrmlContext

        return MrmlContext(scene=slicer.mrmlScene, volumes_logic=slicer.modules.volumes.logic(),
                           segmentations_logic=slicer.modules.segmentations.logic(),
                           application_logic=slicer.app.applicationLogic())

    def loadTerminology(self):
        """OsteoSeg's finding terminology into the Terminologies module (Slicer loads only its own)."""
        from OsteoSegLib.scene.terminology import load_into

        return load_into(slicer.modules.terminologies.logic())

    def loadSample(self):
        """Generate (once, into Slicer's cache folder) and load the sample PET-CT case."""
        from OsteoSegLib.scene.sample import load_sample

        return load_sample(self.mrmlContext(), slicer.app.cachePath)

    def brainsFitAvailable(self):
        return hasattr(slicer.modules, "brainsfit")

    def align(self, ctNode, petNode, methodIndex):
        """0: resample, 1: rigid with SimpleITK, 2: rigid with BRAINSFit (when present)."""
        if methodIndex == BRAINSFIT_METHOD:
            from OsteoSegLib.scene.brainsfit import align_with_brainsfit

            return align_with_brainsfit(self.mrmlContext(), ctNode, petNode, lambda parameters: slicer.cli.runSync(
                slicer.modules.brainsfit, None, parameters, update_display=False))
        from OsteoSegLib.scene.align_in_scene import align_in_scene

        return align_in_scene(self.mrmlContext(), ctNode, petNode, ("resample", "rigid")[methodIndex],
                              figure_folder=tempfile.mkdtemp(prefix="OsteoSegAlign"))

    def proposeLabels(self, ctNode, petNode, roughNode, segmentName=None):
        """Proposed Label A and B from a rough segment, ROI box or points, as a new segmentation beside the CT."""
        from OsteoSegLib.scene.propose_in_scene import propose_in_scene

        return propose_in_scene(self.mrmlContext(), ctNode, petNode, roughNode, segment_name=segmentName)

    def transfer(self, sourceNode, segmentationNode, ctNode, sourceKind, steps):
        """Carry a segmentation drawn on another volume onto the CT; returns the new node and one line
        per segment with its CT visibility verdict."""
        from OsteoSegLib.scene.transfer_in_scene import transfer_in_scene, verdict_lines

        node = transfer_in_scene(self.mrmlContext(), sourceNode, segmentationNode, ctNode,
                                 source_kind=sourceKind, steps=steps)
        return node, verdict_lines(node)

    def preview(self, ctNode, petNode, opacity=0.5):
        from OsteoSegLib.scene.display import preview

        return preview(self.mrmlContext(), ctNode, petNode, opacity)

    def setPetOpacity(self, opacity):
        for view in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            view.SetForegroundOpacity(opacity)

    def ensureDependencies(self, task, required=True):
        """Offer to install what `task` ("segment", "align") needs; never replaces an installed package.
        False when something required is still missing."""
        from OsteoSegLib import dependencies

        if task == "segment" and dependencies.torch_missing():
            if not slicer.util.confirmOkCancelDisplay("OsteoSeg needs PyTorch. Install it now (PyTorch extension)?"):
                return False
            try:
                import PyTorchUtils
            except ModuleNotFoundError:
                raise ValueError("Install the PyTorch extension (Extensions Manager), restart Slicer, "
                                 "and press Segment again.") from None
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(
                    askConfirmation=False, torchVersionRequirement=dependencies.TORCH_REQUIREMENT) is None:
                return False
        missing = dependencies.missing_requirements(task)
        if missing:
            purpose = "to segment" if required else "for the before/after figure"
            if not slicer.util.confirmOkCancelDisplay(f"OsteoSeg needs {', '.join(missing)} {purpose}. Install now?"):
                return not required
            self.pipInstall(missing)
        if task == "segment":
            self.offerOptionalDependencies(dependencies)
        return True

    @staticmethod
    def pipInstall(requirements):
        """pip with every installed distribution pinned (a constraints file): adds what is missing,
        fails rather than replacing a package Slicer ships."""
        from OsteoSegLib import dependencies

        with tempfile.NamedTemporaryFile("w", suffix="-constraints.txt", delete=False) as constraints:
            constraints.write(dependencies.keep_installed_constraints(dependencies.installed_distributions()))
        try:
            try:
                import slicer.packaging  # Slicer 5.12 and later: progress dialog and restart detection
            except ImportError:
                slicer.util.pip_install(["-c", constraints.name, *requirements])
            else:
                slicer.packaging.pip_ensure(requirements, constraints=constraints.name, prompt_install=False,
                                            requester="OsteoSeg", skip_in_testing=False)
        except Exception as error:   # pip's CalledProcessError, or slicer.packaging's RuntimeError
            raise ValueError(f"Could not install {', '.join(requirements)} without replacing a package that "
                             f"Slicer already has ({error}). See the Python console for pip's output.") from None
        finally:
            os.unlink(constraints.name)

    def offerOptionalDependencies(self, dependencies):
        """OpenVINO makes CPU segmentation faster; offered once per machine that segments on its CPU."""
        from OsteoSegLib.model.devices import choose_device

        settings = qt.QSettings()
        optional = dependencies.optional_requirements(gpu_available=choose_device("auto").type != "cpu")
        if not optional or settings.value("OsteoSeg/OpenVINOOffered") == "yes":
            return
        settings.setValue("OsteoSeg/OpenVINOOffered", "yes")
        if slicer.util.confirmYesNoDisplay("Install OpenVINO (about 50 MB download) to segment faster on this "
                                           "computer's CPU? OsteoSeg works without it."):
            self.pipInstall(optional)

    def startSegmentation(self, ctNode, petNode, modelSetPath, device, threshold):
        """Start the worker in a PythonSlicer process (inputs checked and written first)."""
        from OsteoSegLib.scene.segment_in_scene import start_segmentation_job
        from OsteoSegLib.scene.worker_process import find_python_slicer

        python = find_python_slicer(slicer.app.slicerHome)
        return start_segmentation_job(python, ctNode, petNode, modelSetPath, device=device, threshold=threshold)

    def finishSegmentation(self, ctNode, petNode, resultFile, probabilityMaps):
        from OsteoSegLib.scene.mrml import image_from_volume_node
        from OsteoSegLib.scene.segment_in_scene import add_segmentation_nodes, pet_on_ct
        from OsteoSegLib.scene.worker import load_result

        self.loadTerminology()   # the segments' terminology tags point into it
        result = load_result(resultFile)
        petSuv = pet_on_ct(image_from_volume_node(ctNode), image_from_volume_node(petNode))
        return add_segmentation_nodes(self.mrmlContext(), ctNode, result, petSuv, probabilities=probabilityMaps)

    def editInSegmentEditor(self, segmentationNode, ctNode):
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.SegmentEditorWidget.editor
        editor.setSegmentationNode(segmentationNode)
        editor.setSourceVolumeNode(ctNode)


class OsteoSegTest(ScriptedLoadableModuleTest):
    """Self-test inside a running Slicer: dependencies -> load sample -> align -> segment on the CPU ->
    Segment Editor hand-off."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LoadAlignSegmentEdit()

    def test_LoadAlignSegmentEdit(self):
        logic = OsteoSegLogic()
        self.delayDisplay("Checking OsteoSeg's dependencies")
        self.assertTrue(logic.ensureDependencies("segment"), "OsteoSeg's dependencies are not installed")
        logic.ensureDependencies("align", required=False)

        self.delayDisplay("Loading the sample PET-CT")
        ctNode, petNode = logic.loadSample()
        self.assertEqual(ctNode.GetImageData().GetDimensions(), (96, 96, 40))
        aligned = logic.align(ctNode, petNode, 0)
        self.assertEqual(aligned.pet_on_ct.GetImageData().GetDimensions(), ctNode.GetImageData().GetDimensions())
        logic.preview(ctNode, aligned.pet_on_ct)
        self.assertEqual(ctNode.GetDisplayNode().GetWindow(), 1500)

        self.delayDisplay("Training a tiny model set on phantom cases (about a minute)")
        from OsteoSegLib.training.tiny_model_set import tiny_model_set

        modelSet = tiny_model_set(Path(tempfile.mkdtemp(prefix="OsteoSegTest")))
        job = logic.startSegmentation(ctNode, petNode, modelSet, "cpu", 0.5)
        events = job.wait(timeout=600)
        done = [e for e in events if e["event"] == "done"]
        self.assertTrue(done, f"worker failed: {events[-3:]} {job.errors[-5:]}")
        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        added = logic.finishSegmentation(ctNode, petNode, done[0]["result"], False)
        self.assertGreater(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)
        self.assertEqual(added.segmentation.GetSegmentation().GetNumberOfSegments(), 3)
        self.assertTrue(added.segmentation.GetAttribute("OsteoSeg.provenance"))

        self.delayDisplay("Handing over to Segment Editor")
        logic.editInSegmentEditor(added.segmentation, ctNode)
        self.assertEqual(slicer.util.selectedModule(), "SegmentEditor")
        self.delayDisplay("Test passed")
