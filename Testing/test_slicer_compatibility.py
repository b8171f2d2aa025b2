"""The Slicer API contract: every Slicer, Qt, CTK and MRML name that the Slicer-side code uses is
listed in docs/slicer-compatibility.md with the Slicer source that defines it; a name used but not
listed (or listed but no longer used) fails here, so a new call cannot slip in unchecked. The
Slicer-side code is valid for the oldest Python each part must run on (vermin)."""

from __future__ import annotations

import ast
import builtins
import functools
import re
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "slicer-compatibility.md"
MODULES = ("OsteoSeg", "OsteoSegTrain")
MODULE_FILES = [ROOT / module / f"{module}.py" for module in MODULES]
SLICER_SIDE = MODULE_FILES + sorted((ROOT / "OsteoSeg" / "OsteoSegLib" / "scene").glob("*.py"))
UI_FILES = sorted(ui for module in MODULES for ui in (ROOT / module / "Resources" / "UI").glob("*.ui"))
SLICER_MODULES = {"slicer", "qt", "ctk", "vtk", "SampleData", "PyTorchUtils"}
BASE_CLASSES = {"ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                "ScriptedLoadableModuleTest"}
GUI_METHODS = ("connectGui", "disconnectGui")   # of the parameter node wrapper, whatever holds it
PYTHON_NAMES = set(dir(builtins)) | set(dir(unittest.TestCase)) | set(dir(object))
# MRML and Slicer classes named in strings (AddNewNodeByClass, nodeTypes) and node IDs such as
# vtkMRMLPETProceduralColorNodePET-Heat.
CLASS_IN_STRING = re.compile(r"(?:vtkMRML|vtkSlicer|qMRML|qSlicer)\w+(?:-\w+)*")


@functools.cache
def own_names() -> set[str]:
    """Classes, functions and module-level names that OsteoSeg itself defines."""
    names = set()
    for path in [*MODULE_FILES, *(ROOT / "OsteoSeg" / "OsteoSegLib").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


def widget_classes(ui_files=UI_FILES) -> dict[str, str]:
    """objectName -> class of every widget in the modules' .ui files."""
    return {w.get("name"): w.get("class") for ui in ui_files for w in ElementTree.parse(ui).iter("widget")}


def chain(node) -> list[str] | None:
    """['slicer', 'util', 'loadUI'] for slicer.util.loadUI, ['qt', 'QSettings()', 'value'] for
    qt.QSettings().value, ['super', 'getParameterNode()'] for super().getParameterNode(); None unless
    the chain starts at a plain name (or super())."""
    parts = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "super":
                parts.append("super")
                break
            if not parts and not isinstance(node.func, (ast.Attribute, ast.Name)):
                return None
            node = node.func
            parts.append("()")
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        else:
            return None
    joined = []
    for part in reversed(parts):
        if part == "()" and joined:
            joined[-1] += "()"
        elif part != "()":
            joined.append(part)
    return joined


def other_module_aliases(tree) -> set[str]:
    """Names bound to modules that are not Slicer's (sitk, np, subprocess, ...)."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0]
                        not in SLICER_MODULES}
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0]
                                                   not in SLICER_MODULES):
            aliases |= {a.asname or a.name for a in node.names}
    return aliases


def slicer_aliases(tree) -> dict[str, list[str]]:
    """Names bound to Slicer's modules or to names imported from them: `from vtk.util import
    numpy_support` makes numpy_support stand for vtk.util.numpy_support, `import slicer.util` binds
    slicer (as Python does), `import slicer.util as su` binds su to slicer.util."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] in SLICER_MODULES:
            aliases.update({a.asname or a.name: [*node.module.split("."), a.name] for a in node.names if a.name != "*"})
        elif isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                if top in SLICER_MODULES:
                    aliases[a.asname or top] = a.name.split(".") if a.asname else [top]
    aliases.update({name: ["slicer", "ScriptedLoadableModule", name] for name in BASE_CLASSES})
    return aliases


class SelfScope:
    """What `self` is in one class of a module file: its Slicer base class (None when it has none),
    the members OsteoSeg defines on it, and the members bound to Slicer objects (self._timer = qt.QTimer())."""

    def __init__(self, cls: ast.ClassDef | None, aliases: dict[str, list[str]], widgets: dict[str, str]):
        self.base = next((b.id for b in (cls.bases if cls else []) if isinstance(b, ast.Name) and b.id in BASE_CLASSES),
                         None)
        self.own: set[str] = set()
        self.slicer_members: dict[str, list[str]] = {}
        if cls is None:
            return
        self.own = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for node in ast.walk(cls):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                            and target.value.id == "self":
                        self.own.add(target.attr)
                        value = chain(node.value)
                        rooted = value and slicer_root(value, aliases, widgets, SelfScope(None, {}, {}))
                        if rooted:
                            self.slicer_members[target.attr] = rooted


def slicer_root(parts, aliases, widgets, scope: SelfScope) -> list[str] | None:
    """The chain rewritten from a Slicer root (module, imported name, widget of the .ui, a member
    bound to a Slicer object, the module's Slicer base class), or None when it does not start at one."""
    head = parts[0].removesuffix("()")
    if head in aliases:
        return [*aliases[head][:-1], aliases[head][-1] + parts[0][len(head):], *parts[1:]]
    if parts[:2] == ["self", "ui"]:
        return [widgets[parts[2]], *parts[3:]] if len(parts) >= 4 else None
    if not scope.base or head not in ("self", "super") or len(parts) < 2:
        return None
    member = parts[1].removesuffix("()")
    if head == "self" and member in scope.slicer_members:
        if len(parts) < 3:
            return None   # the member itself (self._timer = ...), no name of Slicer's used yet
        bound = scope.slicer_members[member]
        return [*bound[:-1], bound[-1] + parts[1][len(member):], *parts[2:]]
    if head == "self" and (member in scope.own or member in PYTHON_NAMES or member.startswith("_")):
        return None
    return [scope.base, *parts[1:]]


def scope_nodes(scope):
    """The nodes of a module or function body, without those of the functions defined inside it
    (each function is a scope of its own)."""
    yield scope
    for child in ast.iter_child_nodes(scope):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from scope_nodes(child)


def slicer_names(path: Path, own: set[str], widgets: dict[str, str], module_file: bool | None = None) -> set[str]:
    """The Slicer, Qt, CTK, VTK and MRML names one file uses: attribute chains from Slicer's modules,
    widgets of the .ui, the module base classes (self.parent..., super()...), members and local names
    bound to any of these (through calls), names imported from Slicer's modules used bare, CamelCase
    attributes anywhere (VTK and MRML methods), MRML classes named in strings, and signals connected
    by name."""
    tree = ast.parse(path.read_text())
    others, aliases = other_module_aliases(tree) - SLICER_MODULES, slicer_aliases(tree)
    module_file = path in MODULE_FILES if module_file is None else module_file
    classes = {fn: cls for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef)
               for fn in ast.walk(cls) if isinstance(fn, ast.FunctionDef)}
    found = set()
    for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))]:
        local = dict(aliases)
        self_scope = SelfScope(classes.get(scope) if module_file else None, aliases, widgets)
        nodes = list(scope_nodes(scope))
        for node in nodes if scope is not tree else ():   # editor = slicer.modules.SegmentEditor...
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                value = chain(node.value)
                rooted = value and slicer_root(value, local, widgets, self_scope)
                if rooted:
                    local[node.targets[0].id] = rooted
        parents = {child: parent for parent in ast.walk(scope) for child in ast.iter_child_nodes(parent)}
        for node in nodes:
            if not isinstance(node, ast.Attribute):
                continue
            outer = parents.get(node)
            while isinstance(outer, ast.Call) and outer.func is node:
                outer = parents.get(outer)
            if isinstance(outer, ast.Attribute):
                continue   # only the outermost attribute of a chain
            parts = chain(node)
            rooted = parts and slicer_root(parts, local, widgets, self_scope)
            if rooted:
                found.add(".".join(rooted))
        for node in nodes:
            if isinstance(node, ast.Attribute) and len(node.attr) > 1 and node.attr[:1].isupper() \
                    and node.attr not in own:
                parts = chain(node)
                if not (parts and parts[0] in others) and not (parts and slicer_root(parts, local, widgets,
                                                                                      self_scope)):
                    found.add(node.attr)
            elif isinstance(node, ast.Attribute) and node.attr in GUI_METHODS:
                found.add(node.attr)
            elif isinstance(node, ast.Name) and node.id in BASE_CLASSES:
                found.add(f"slicer.ScriptedLoadableModule.{node.id}")
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and len(aliases.get(node.id, ())) > 1 \
                    and not isinstance(parents.get(node), ast.Attribute):   # Choice(...), @parameterNodeWrapper
                found.add(".".join(aliases[node.id]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            found.add(f"signal {node.args[0].value}")   # signals connected by name, e.g. "clicked(bool)"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and CLASS_IN_STRING.fullmatch(node.value):
            found.add(node.value)
    return found


def parameter_types(module_file: Path) -> dict[str, str]:
    """Parameter name -> its type as the parameter node wrapper sees it ('float', 'str Choice'), from
    the @parameterNodeWrapper class of a module file."""
    types = {}
    for cls in ast.walk(ast.parse(module_file.read_text())):
        if isinstance(cls, ast.ClassDef) and any(getattr(d, "id", None) == "parameterNodeWrapper"
                                                 for d in cls.decorator_list):
            for node in cls.body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    annotation = node.annotation
                    if isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", "") == "Annotated":
                        base, *extras = annotation.slice.elts
                        validators = [e.func.id for e in extras
                                      if isinstance(e, ast.Call) and isinstance(e.func, ast.Name)]
                        types[node.target.id] = " ".join([ast.unparse(base), *validators])
                    else:
                        types[node.target.id] = ast.unparse(annotation)
    return types


def ui_names(ui: Path, parameters: dict[str, str]) -> set[str]:
    """The Qt, CTK and qMRML names a .ui file uses: widget and layout classes, the properties set on
    each class, enum values of CTK or Qt (ctkPathLineEdit::Dirs), MRML classes named in strings, the
    dynamic property the parameter node wrapper reads, the wrapper connector each bound widget needs
    (`connector ctkSliderWidget: float WithinRange`), and the signals and slots connected in the file."""
    found = set()
    root = ElementTree.parse(ui).getroot()
    for element in root.iter():
        if element.tag in ("widget", "layout"):
            cls = element.get("class")
            found.add(cls)
            for prop in element.findall("property"):
                name = prop.get("name")
                if prop.get("stdset") == "0":
                    found.add(name)
                    if name == "SlicerParameterName":
                        found.add(f"connector {cls}: {parameters[prop.findtext('string')]}")
                else:
                    found.add(f"{cls}.{name}")
                for value in prop.iter():
                    text = (value.text or "").strip()
                    if value.tag in ("set", "enum"):
                        found |= {v for v in text.split("|") if "::" in v}
                    elif value.tag == "string" and CLASS_IN_STRING.fullmatch(text):
                        found.add(text)
    for connection in root.iter("connection"):
        found |= {f"signal {connection.findtext('signal')}", f"slot {connection.findtext('slot')}"}
    return found


def used_names() -> dict[str, set[str]]:
    own, widgets = own_names(), widget_classes()
    used: dict[str, set[str]] = {}
    for path in SLICER_SIDE:
        for name in slicer_names(path, own, widgets):
            used.setdefault(name, set()).add(path.name)
    for ui in UI_FILES:
        module = ui.parents[2]
        for name in ui_names(ui, parameter_types(module / f"{module.name}.py")):
            used.setdefault(name, set()).add(ui.name)
    return used


def listed_names(contract: str | None = None) -> set[str]:
    """The names in the first column of the contract's tables (in backticks)."""
    names = set()
    for line in (CONTRACT.read_text() if contract is None else contract).splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def unlisted(used: dict[str, set[str]], listed: set[str]) -> dict[str, list[str]]:
    """Names used but absent from the contract, with the files that use them."""
    return {name: sorted(files) for name, files in used.items() if name not in listed}


def test_every_slicer_name_the_module_uses_is_in_the_contract():
    used, listed = used_names(), listed_names()
    missing = unlisted(used, listed)
    assert not missing, f"used but not in {CONTRACT.name}: {missing}"
    assert not listed - set(used), f"listed in {CONTRACT.name} but no longer used: {sorted(listed - set(used))}"


# One probe per kind of name the scan must see; every name marked NEW is in no table of the contract.
PROBE_MODULE = '''
import qt
import slicer.util
from slicer import vtkMRMLProbeNode
from slicer.parameterNodeWrapper import ProbeValidator
from slicer.ScriptedLoadableModule import *


class Probe(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.probeModuleProperty = "probe"


class ProbeWidget(ScriptedLoadableModuleWidget):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = ProbeLogic()
        self._timer = qt.QTimer()

    def later(self, value: ProbeValidator):
        self._timer.probeTimerMethod(5)
        self.logic.ownMethod()
        self.ownHelper()
        if self.parent.probeWidgetProperty:
            slicer.util.probeExit(2)

    def ownHelper(self):
        pass


class ProbeLogic(ScriptedLoadableModuleLogic):
    def node(self, scene):
        super().probeBaseMethod()
        return scene.AddNewNodeByClass("vtkMRMLProbeNode"), vtkMRMLProbeNode
'''
PROBE_UI = """<ui version="4.0">
 <widget class="qMRMLWidget" name="Probe">
  <layout class="QVBoxLayout" name="probeLayout">
   <item>
    <widget class="ctkProbeWidget" name="probeWidget">
     <property name="probeProperty"><set>ctkProbeWidget::ProbeFlag</set></property>
     <property name="SlicerParameterName" stdset="0"><string>level</string></property>
    </widget>
   </item>
  </layout>
 </widget>
 <connections>
  <connection>
   <sender>Probe</sender><signal>probeSignal(vtkMRMLScene*)</signal>
   <receiver>probeWidget</receiver><slot>probeSlot(vtkMRMLScene*)</slot>
  </connection>
 </connections>
</ui>
"""
NEW_IN_PROBE = {
    "attribute of a submodule imported as `import slicer.util`": "slicer.util.probeExit",
    "property of the module's self.parent": "ScriptedLoadableModule.parent.probeModuleProperty",
    "property of the widget's self.parent": "ScriptedLoadableModuleWidget.parent.probeWidgetProperty",
    "method of a Qt object held in a member (self._timer)": "qt.QTimer().probeTimerMethod",
    "method of the base class through super()": "ScriptedLoadableModuleLogic.probeBaseMethod",
    "name imported from Slicer and used bare (annotation)": "slicer.parameterNodeWrapper.ProbeValidator",
    "MRML class imported from slicer and used bare": "slicer.vtkMRMLProbeNode",
    "MRML class named in a string": "vtkMRMLProbeNode",
    "CamelCase method of an MRML object": "AddNewNodeByClass",
    "widget class of a .ui": "ctkProbeWidget",
    "property set in a .ui": "ctkProbeWidget.probeProperty",
    "enum value in a .ui": "ctkProbeWidget::ProbeFlag",
    "parameter node connector a .ui widget needs": "connector ctkProbeWidget: float WithinRange",
    "signal connected in a .ui": "signal probeSignal(vtkMRMLScene*)",
    "slot connected in a .ui": "slot probeSlot(vtkMRMLScene*)",
}


def probe_names(tmp_path) -> set[str]:
    (tmp_path / "probe.py").write_text(PROBE_MODULE)
    (tmp_path / "probe.ui").write_text(PROBE_UI)
    found = slicer_names(tmp_path / "probe.py", own_names(), widget_classes(), module_file=True)
    return found | ui_names(tmp_path / "probe.ui", {"level": "float WithinRange"})


@pytest.mark.parametrize("kind", sorted(NEW_IN_PROBE))
def test_the_contract_check_reports_each_kind_of_unlisted_name(tmp_path, kind):
    name = NEW_IN_PROBE[kind]
    listed = listed_names() - {"AddNewNodeByClass"}   # as if it were a new call
    assert name in unlisted({found: {"probe"} for found in probe_names(tmp_path)}, listed), kind


def test_the_contract_check_reports_only_the_new_names(tmp_path):
    """Names the contract lists and OsteoSeg's own members (self.logic..., self.ownHelper) are not reported."""
    reported = unlisted({found: {"probe"} for found in probe_names(tmp_path)}, listed_names())
    assert set(reported) == set(NEW_IN_PROBE.values()) - {"AddNewNodeByClass"}


def test_a_listed_name_that_is_no_longer_used_is_reported():
    contract = CONTRACT.read_text() + "\n| `slicer.util.retiredHelper` | function | — | — | |\n"
    assert listed_names(contract) - set(used_names()) == {"slicer.util.retiredHelper"}


def vermin(target: str, *paths: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "import sys; from vermin.main import main; sys.exit(main())"]
    return subprocess.run([*command, "--no-tips", "--violations", "--eval-annotations",
                           f"--target={target}", *map(str, paths)], capture_output=True, text=True, timeout=300)


def test_everything_that_runs_inside_slicer_is_valid_for_python_3_10():
    """Slicer 5.10, the oldest supported, ships Python 3.12; the headless package supports 3.10+."""
    checked = vermin("3.10-", ROOT / "OsteoSeg" / "OsteoSegLib", *MODULE_FILES)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_module_files_load_on_python_3_9_to_say_that_slicer_is_too_old():
    checked = vermin("3.9-", *MODULE_FILES)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("code", ["match x:\n    case 1:\n        pass\n", "pairs = zip(a, b, strict=True)\n"])
def test_the_version_check_catches_code_too_new_for_slicer_5_8(tmp_path, code):
    probe = tmp_path / "probe.py"
    probe.write_text(code)
    assert vermin("3.9-", probe).returncode != 0
