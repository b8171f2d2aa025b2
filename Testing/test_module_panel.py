"""The OsteoSeg panel's own behaviour, run on the real OsteoSeg.py with the real MRML scene (slicer-core)
and stand-ins for what only the Slicer application has: qt, the scripted module base classes and the
parameter node wrapper. The stand-ins do what Slicer's source does (docs/slicer-compatibility.md,
"Parameter node wrapper"): connectGui clears and refills a combo box, writes each widget from the
parameter node and connects after the module's own slots; each signal calls its slots in connection
order. What they cannot show: Qt itself, and the real wrapper's serialisation."""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
import typing
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import slicer
import slicer.util
import vtk

ROOT = Path(__file__).resolve().parents[1]
MODULE_FILE = ROOT / "OsteoSeg" / "OsteoSeg.py"
UI_FILE = ROOT / "OsteoSeg" / "Resources" / "UI" / "OsteoSeg.ui"
# The signal through which each bound widget class reports a user's change (what the connectors use).
VALUE_SIGNAL = {"ctkSliderWidget": "valueChanged(double)", "QCheckBox": "toggled(bool)",
                "QComboBox": "currentIndexChanged(int)", "qMRMLNodeComboBox": "currentNodeChanged(vtkMRMLNode*)",
                "ctkPathLineEdit": "currentPathChanged(QString)", "QLineEdit": "textChanged(QString)"}
USERS_OPACITY = 0.25   # what the user had set in the views before opening OsteoSeg


class FakeWidget:
    """A widget of the .ui: properties are attributes; signals call their slots in connection order."""

    def __init__(self, cls: str, name: str, parameter: str | None):
        self.cls, self.name, self.parameter = cls, name, parameter
        self.slots: dict[str, list] = {}
        self.enabled = self.visible = True
        self.text = self.toolTip = ""
        self.value = None
        self.items: list[FakeItem] = []

    def connect(self, signal, slot):
        self.slots.setdefault(signal, []).append(slot)

    def emit(self, signal, *arguments):
        for slot in list(self.slots.get(signal, [])):
            slot(*arguments)

    def user_sets(self, value):
        """What a user's click or drag does: the widget changes, then its signal is emitted."""
        self.value = value
        self.emit(VALUE_SIGNAL[self.cls], value)

    # QComboBox
    @property
    def count(self):
        return len(self.items)

    def clear(self):
        self.items = []

    def addItem(self, text):
        self.items.append(FakeItem(text))

    def model(self):
        return types.SimpleNamespace(item=lambda row: self.items[row])

    # qMRMLWidget, qMRMLTableView, QLabel
    def setMRMLScene(self, scene):
        self.scene = scene

    def setMRMLTableNode(self, node):
        self.table = node

    def setPixmap(self, pixmap):
        self.pixmap = pixmap


class FakeItem:
    def __init__(self, text):
        self.text, self.enabled = text, True

    def setEnabled(self, enabled):
        self.enabled = enabled


def ui_widgets() -> dict[str, FakeWidget]:
    """One FakeWidget per widget of OsteoSeg.ui, with its class and bound parameter."""
    widgets = {}
    for element in ElementTree.parse(UI_FILE).iter("widget"):
        parameter = next((p.findtext("string") for p in element.findall("property")
                          if p.get("name") == "SlicerParameterName"), None)
        widgets[element.get("name")] = FakeWidget(element.get("class"), element.get("name"), parameter)
    return widgets


class Choice:
    def __init__(self, choices):
        self.choices = choices


class WithinRange:
    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum


VALUES: dict[str, dict] = {}   # parameter values per parameter node ID (the real wrapper serialises them)


def parameterNodeWrapper(cls):
    """Stand-in for Slicer's wrapper: typed values with defaults whose writes modify the node;
    AddObserver/RemoveObserver delegate to the node; connectGui as wrapper.py:199-210 does it."""

    defaults = {name: cls.__dict__.get(name) for name in cls.__annotations__}

    def init(self, node):
        self.parameterNode = node
        self._connectors = {}
        VALUES.setdefault(node.GetID(), dict(defaults))

    def parameter(name):
        def read(self):
            return VALUES[self.parameterNode.GetID()][name]

        def write(self, value):
            values = VALUES[self.parameterNode.GetID()]
            if values[name] != value:
                values[name] = value
                self.parameterNode.Modified()
        return property(read, write)

    for name in defaults:
        setattr(cls, name, parameter(name))

    def connectGui(self, gui):
        tag = len(self._connectors) + 1
        connectors = []
        for widget in vars(gui).values():
            if widget.parameter:
                connectors.append(connect_widget(self, widget, cls.__annotations__[widget.parameter]))
        self._connectors[tag] = connectors
        self.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda caller, event: [write() for write, _ in connectors])
        return tag

    def disconnectGui(self, tag):
        for _, disconnect in self._connectors.pop(tag, []):
            disconnect()

    for name, member in {"__init__": init, "connectGui": connectGui, "disconnectGui": disconnectGui,
                         "AddObserver": lambda self, event, callback, priority=0.0:
                         self.parameterNode.AddObserver(event, callback, priority),
                         "RemoveObserver": lambda self, tag: self.parameterNode.RemoveObserver(tag)}.items():
        setattr(cls, name, member)
    return cls


def connect_widget(wrapper, widget, annotation):
    """One connector: (write the widget from the parameter, disconnect). A combo box is cleared and
    refilled with the Choice's values when the connector is made (guiConnectors.py:440-442)."""
    name = widget.parameter
    metadata = typing.get_args(annotation)[1:]
    choices = next((m.choices for m in metadata if isinstance(m, Choice)), None)
    if widget.cls == "QComboBox":
        widget.clear()
        for choice in choices:
            widget.addItem(choice)

    def write():
        value = getattr(wrapper, name)
        widget.value = choices.index(value) if choices else value

    def changed(value):
        setattr(wrapper, name, choices[value] if choices else value)

    write()
    widget.connect(VALUE_SIGNAL[widget.cls], changed)
    return write, lambda: widget.slots[VALUE_SIGNAL[widget.cls]].remove(changed)


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent or types.SimpleNamespace(isEntered=True)
        self.layout = types.SimpleNamespace(widgets=[], addWidget=lambda w: self.layout.widgets.append(w),
                                            addStretch=lambda stretch: self.layout.widgets.append("stretch"))

    def setup(self):
        pass

    def resourcePath(self, filename):
        return str(MODULE_FILE.parent / "Resources" / filename)


class ScriptedLoadableModuleLogic:
    def getParameterNode(self):
        scene = slicer.mrmlScene
        return (scene.GetFirstNodeByName("OsteoSeg parameters")
                or scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "OsteoSeg parameters"))


class ScriptedLoadableModuleTest:
    pass


class FakeTimer:
    def __init__(self):
        self.active = False

    def setInterval(self, msec):
        self.interval = msec

    def connect(self, signal, slot):
        self.slot = slot

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class FakeLabel:
    def __init__(self, text=""):
        self.text, self.wordWrap = text, False


def stand_in(name: str, **members) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(members)
    module.__all__ = list(members)
    return module


def load_module(monkeypatch, scene, brainsfit: bool = False):
    """OsteoSeg.py imported against the stand-ins, with `scene` as slicer.mrmlScene."""
    monkeypatch.setitem(sys.modules, "qt", stand_in("qt", QTimer=FakeTimer, QLabel=FakeLabel))
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", stand_in(
        "slicer.ScriptedLoadableModule", ScriptedLoadableModule=ScriptedLoadableModule,
        ScriptedLoadableModuleWidget=ScriptedLoadableModuleWidget,
        ScriptedLoadableModuleLogic=ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest=ScriptedLoadableModuleTest))
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", stand_in(
        "slicer.parameterNodeWrapper", parameterNodeWrapper=parameterNodeWrapper, Choice=Choice,
        WithinRange=WithinRange))
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(connections=[], connect=lambda signal, slot:
                                                               slicer.app.connections.append(signal)), raising=False)
    monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(**({"brainsfit": object()} if brainsfit else {})),
                        raising=False)
    widgets = ui_widgets()
    monkeypatch.setattr(slicer.util, "loadUI", lambda path: widgets["OsteoSeg"])
    monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda top: types.SimpleNamespace(**widgets))
    VALUES.clear()   # a new scene: its parameter node starts from the defaults
    spec = importlib.util.spec_from_file_location("OsteoSegUnderTest", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def views():
    """A scene with three slice views whose overlay opacity the user had set."""
    scene = slicer.vtkMRMLScene()
    views = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    for view in views:
        view.SetForegroundOpacity(USERS_OPACITY)
    return scene, views


@pytest.fixture
def opened_panel(monkeypatch, views):
    """Open the panel on a scene with three slice views: (module, widget, the views)."""
    widgets = []

    def open_panel(brainsfit=False):
        module = load_module(monkeypatch, views[0], brainsfit)
        widgets.append(module.OsteoSegWidget())
        widgets[-1].setup()   # connects its buttons, then the parameter node (connectGui)
        return module, widgets[-1], views[1]

    yield open_panel
    for widget in widgets:
        widget.cleanup()   # its scene observers go before the scene does


def opacities(views):
    return [view.GetForegroundOpacity() for view in views]


def test_entering_the_module_leaves_each_views_overlay_as_it_was(opened_panel):
    _, widget, views = opened_panel()
    assert opacities(views) == [USERS_OPACITY] * 3
    widget.ui.thresholdSlider.user_sets(0.6)               # any other control: still the user's overlay
    widget.exit()
    widget.enter()
    assert opacities(views) == [USERS_OPACITY] * 3


def test_the_overlay_follows_the_controls_with_the_new_value(opened_panel):
    _, widget, views = opened_panel()
    widget.ui.opacitySlider.user_sets(0.7)
    assert opacities(views) == [0.7] * 3                   # the new value, not the one before
    widget.ui.showPetCheckBox.user_sets(False)
    assert opacities(views) == [0.0] * 3
    views[0].SetForegroundOpacity(0.3)                     # the user changes one view by hand
    widget.ui.thresholdSlider.user_sets(0.6)               # not an overlay parameter
    assert opacities(views) == [0.3, 0.0, 0.0]
    widget.exit()
    widget.enter()
    widget.ui.showPetCheckBox.user_sets(True)
    assert opacities(views) == [0.7] * 3


@pytest.mark.parametrize("brainsfit", [False, True])
def test_brainsfit_is_offered_only_where_it_exists_after_every_connectGui(opened_panel, brainsfit):
    module, widget, _ = opened_panel(brainsfit)
    combo = widget.ui.alignMethodComboBox
    for _ in range(2):   # setup, then leaving and entering the module (connectGui refills the items)
        assert [item.text for item in combo.items] == module.ALIGN_METHODS
        assert [item.enabled for item in combo.items] == [True, True, brainsfit]
        widget.exit()
        widget.enter()


def test_an_older_slicer_gets_one_message_and_nothing_else(monkeypatch, views):
    with monkeypatch.context() as older:
        older.setattr(sys, "version_info", (3, 9, 18, "final", 0))
        older.delitem(sys.modules, "OsteoSegLib")   # imported again, as in a fresh Slicer
        module = load_module(monkeypatch, views[0])
    assert not module.PYTHON_SUPPORTED
    assert module.UNSUPPORTED_MESSAGE.startswith("OsteoSeg needs 3D Slicer 5.10 or later")
    assert "Python 3.9" in module.UNSUPPORTED_MESSAGE
    parent = types.SimpleNamespace()
    module.OsteoSeg(parent)
    assert parent.helpText == module.UNSUPPORTED_MESSAGE and slicer.app.connections == []
    widget = module.OsteoSegWidget()
    widget.setup()
    label, stretch = widget.layout.widgets
    assert (label.text, label.wordWrap, stretch) == (module.UNSUPPORTED_MESSAGE, True, "stretch")


def test_a_supported_slicer_registers_the_sample_at_startup(monkeypatch, views):
    module = load_module(monkeypatch, views[0])
    assert module.PYTHON_SUPPORTED and module.UNSUPPORTED_MESSAGE == ""
    module.OsteoSeg(types.SimpleNamespace())
    assert slicer.app.connections == ["startupCompleted()"]


def test_no_module_slot_listens_to_a_widget_bound_to_the_parameter_node():
    """PythonQt calls slots in connection order and connectGui connects last, so such a slot would
    read the parameter node before the connector wrote the new value (the overlay lagging behind)."""
    bound = {name for name, widget in ui_widgets().items() if widget.parameter}
    connected = {node.func.value.attr for node in ast.walk(ast.parse(MODULE_FILE.read_text()))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect"
                 and isinstance(node.func.value, ast.Attribute)}
    assert connected and not connected & bound, connected & bound
