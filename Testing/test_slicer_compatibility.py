"""The Slicer API contract: every Slicer, Qt, CTK and MRML name that the Slicer-side code uses is
listed in docs/slicer-compatibility.md with the Slicer source that defines it; a name used but not
listed (or listed but no longer used) fails here, so a new call cannot slip in unchecked. The
Slicer-side code is valid for the oldest Python each part must run on (vermin)."""

from __future__ import annotations

import ast
import builtins
import re
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "slicer-compatibility.md"
MODULE_FILES = [ROOT / "OsteoSeg" / "OsteoSeg.py", ROOT / "OsteoSegTrain" / "OsteoSegTrain.py"]
SLICER_SIDE = MODULE_FILES + sorted((ROOT / "OsteoSeg" / "OsteoSegLib" / "scene").glob("*.py"))
SLICER_MODULES = {"slicer", "qt", "ctk", "vtk", "SampleData", "PyTorchUtils"}
UI_FILE = ROOT / "OsteoSeg" / "Resources" / "UI" / "OsteoSeg.ui"


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


def widget_classes() -> dict[str, str]:
    """objectName -> class of every widget in the module's .ui."""
    return {w.get("name"): w.get("class") for w in ElementTree.parse(UI_FILE).iter("widget")}


BASE_CLASSES = {"ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                "ScriptedLoadableModuleTest"}
GUI_METHODS = ("connectGui", "disconnectGui")   # of the parameter node wrapper, whatever holds it


def chain(node) -> list[str] | None:
    """['slicer', 'util', 'loadUI'] for slicer.util.loadUI, ['qt', 'QSettings()', 'value'] for
    qt.QSettings().value; None unless the chain starts at a plain name (or super())."""
    parts = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "super":
                return ["self", *reversed(parts)]
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
    numpy_support` makes numpy_support stand for vtk.util.numpy_support."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] in SLICER_MODULES:
            aliases.update({a.asname or a.name: [*node.module.split("."), a.name] for a in node.names if a.name != "*"})
        elif isinstance(node, ast.Import):
            aliases.update({(a.asname or a.name): [a.name] for a in node.names
                            if a.name.split(".")[0] in SLICER_MODULES})
    aliases.update({name: ["slicer", "ScriptedLoadableModule", name] for name in BASE_CLASSES})
    return aliases


def slicer_root(parts, aliases, widgets, is_module_file) -> list[str] | None:
    """The chain rewritten from a Slicer root (module, imported name, widget, module base class), or
    None when it does not start at one."""
    head = parts[0].removesuffix("()")
    if head in aliases:
        return [*aliases[head][:-1], aliases[head][-1] + parts[0][len(head):], *parts[1:]]
    if parts[:2] == ["self", "ui"] and len(parts) >= 3:
        return [widgets[parts[2]], *parts[3:]] if len(parts) >= 4 else None
    if is_module_file and head == "self" and len(parts) >= 2:
        return ["ScriptedLoadableModule", *parts[1:]]
    return None


def slicer_names(path: Path, own: set[str], widgets: dict[str, str]) -> set[str]:
    """The Slicer, Qt, CTK, VTK and MRML names one file uses: attribute chains from Slicer's modules,
    widgets of the .ui, the module base classes and local names bound to any of these (through calls),
    CamelCase attributes anywhere (VTK and MRML methods), and signals connected by name."""
    tree = ast.parse(path.read_text())
    others, aliases = other_module_aliases(tree) - SLICER_MODULES, slicer_aliases(tree)
    python_names = set(dir(builtins)) | set(dir(unittest.TestCase)) | set(dir(object))
    is_module_file = path in MODULE_FILES
    found = set()
    for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))]:
        local = dict(aliases)
        for node in ast.walk(scope) if scope is not tree else ():   # editor = slicer.modules.SegmentEditor...
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                value = chain(node.value)
                rooted = value and slicer_root(value, local, widgets, is_module_file)
                if rooted:
                    local[node.targets[0].id] = rooted
        parents = {child: parent for parent in ast.walk(scope) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(scope):
            if not isinstance(node, ast.Attribute):
                continue
            outer = parents.get(node)
            while isinstance(outer, ast.Call) and outer.func is node:
                outer = parents.get(outer)
            if isinstance(outer, ast.Attribute):
                continue   # only the outermost attribute of a chain
            parts = chain(node)
            rooted = parts and slicer_root(parts, local, widgets, is_module_file)
            if rooted:
                name = ".".join(rooted)
                member = rooted[1].removesuffix("()") if len(rooted) > 1 else ""
                if not (rooted[0] == "ScriptedLoadableModule" and (member in own | python_names
                                                                   or member.startswith("_")
                                                                   or member in ("ui", "logic"))):
                    found.add(name)
                continue
        for node in ast.walk(scope):
            if isinstance(node, ast.Attribute) and len(node.attr) > 1 and node.attr[:1].isupper() \
                    and node.attr not in own:
                parts = chain(node)
                if not (parts and parts[0] in others) and not (parts and slicer_root(parts, local, widgets,
                                                                                      is_module_file)):
                    found.add(node.attr)
            elif isinstance(node, ast.Attribute) and node.attr in GUI_METHODS:
                found.add(node.attr)
            elif isinstance(node, ast.Name) and node.id in BASE_CLASSES:
                found.add(f"slicer.ScriptedLoadableModule.{node.id}")
    for node in ast.walk(tree):   # signals connected by name, e.g. "clicked(bool)"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            found.add(f"signal {node.args[0].value}")
    return found


def used_names() -> dict[str, set[str]]:
    own, widgets = own_names(), widget_classes()
    used: dict[str, set[str]] = {}
    for path in SLICER_SIDE:
        for name in slicer_names(path, own, widgets):
            used.setdefault(name, set()).add(path.name)
    return used


def listed_names() -> set[str]:
    """The names in the first column of the contract's tables (in backticks)."""
    names = set()
    for line in CONTRACT.read_text().splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def test_every_slicer_name_the_module_uses_is_in_the_contract():
    used, listed = used_names(), listed_names()
    missing = {name: sorted(files) for name, files in used.items() if name not in listed}
    assert not missing, f"used but not in {CONTRACT.name}: {missing}"
    assert not listed - set(used), f"listed in {CONTRACT.name} but no longer used: {sorted(listed - set(used))}"


def test_the_contract_check_notices_a_new_call(tmp_path):
    widgets, own = widget_classes(), own_names()
    probe = tmp_path / "probe.py"
    probe.write_text("import slicer\n\ndef f(node):\n    slicer.util.newHelper()\n    node.GetBrandNewThing()\n")
    assert slicer_names(probe, own, widgets) == {"slicer.util.newHelper", "GetBrandNewThing"}


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
