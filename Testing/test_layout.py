"""The extension's layout: top-level entries, CMake metadata, every module file listed in CMake,
thin Slicer-app layer, and the .ui bound to the widget code."""

from __future__ import annotations

import ast
import py_compile
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("OsteoSeg", "OsteoSegTrain")
LIBRARY = ROOT / "OsteoSeg" / "OsteoSegLib"
# The stages from the bottom up: a module may import its own package and any package of a lower rank.
# Top-level modules (errors, atomic, progress, imaging, metrics, dependencies) are the ground floor.
STAGE_RANKS = {"": 0, "data": 1, "alignment": 2, "phantom": 2, "model": 3, "inference": 4, "training": 5,
               "evaluation": 6, "scene": 6, "labels": 5, "bench": 7, "cli": 8}


def package_of(module: str, library: Path) -> str:
    """The stage package of a dotted module inside OsteoSegLib ('' for the ground floor)."""
    first = module.split(".")[0]
    return first if (library / first).is_dir() else ""


def imported_modules(path: Path, library: Path):
    """Every OsteoSegLib module a file imports (relative or absolute, at any depth in the file), as
    dotted names inside the library."""
    own = path.relative_to(library).with_suffix("").parts
    package = list(own[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "OsteoSegLib":
                module = node.module.split(".")[1:]
            else:
                continue
            if module:
                yield ".".join(module)
            else:   # from OsteoSegLib import x / from .. import x: x is a module or a name of the package
                for alias in node.names:
                    candidate = library / alias.name
                    yield alias.name if candidate.is_dir() or candidate.with_suffix(".py").is_file() else ""
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "OsteoSegLib":
                    yield ".".join(alias.name.split(".")[1:])


def upward_imports(library: Path) -> list[str]:
    """'file imports module (stage may not import stage)' for every import against STAGE_RANKS; a
    package missing from STAGE_RANKS is itself reported."""
    problems = []
    for path in sorted(library.rglob("*.py")):
        relative = path.relative_to(library)
        own = relative.parts[0] if len(relative.parts) > 1 else ""
        if own not in STAGE_RANKS:
            problems.append(f"{relative} is in a package with no place in the stage order")
            continue
        for module in imported_modules(path, library):
            other = package_of(module, library) if module else ""
            if other == own:
                continue
            if STAGE_RANKS.get(other, 99) >= STAGE_RANKS[own]:
                problems.append(f"{relative.as_posix()} imports {module or 'OsteoSegLib'} "
                                f"({own or 'the ground floor'} may not import {other or 'the ground floor'})")
    return problems


def cmake_listed_files(module_folder: Path) -> set[str]:
    """Files named in a module CMakeLists' MODULE_PYTHON_SCRIPTS and MODULE_PYTHON_RESOURCES."""
    text = (module_folder / "CMakeLists.txt").read_text()
    name = re.search(r"set\(MODULE_NAME\s+(\w+)\)", text).group(1)
    listed = set()
    for block in re.findall(r"set\(MODULE_PYTHON_(?:SCRIPTS|RESOURCES)\s+(.*?)\)", text, re.S):
        for entry in block.split():
            listed.add(entry.replace("${MODULE_NAME}", name))
    return listed


def module_files_on_disk(module_folder: Path) -> set[str]:
    """Files a module installs: everything under its folder but CMake, caches and tests."""
    return {str(p.relative_to(module_folder)) for p in module_folder.rglob("*")
            if p.is_file() and p.name != "CMakeLists.txt" and "__pycache__" not in p.parts
            and "Testing" not in p.parts and p.suffix != ".pyc"}


def unlisted_and_missing(module_folder: Path) -> tuple[set[str], set[str]]:
    on_disk, listed = module_files_on_disk(module_folder), cmake_listed_files(module_folder)
    return on_disk - listed, listed - on_disk


def test_top_level_entries():
    for entry in ("CMakeLists.txt", "README.md", "LICENSE", "pyproject.toml", "Makefile", "requirements.txt",
                  ".ci/run", "OsteoSeg", "OsteoSegTrain", "Resources", "Testing", "OsteoSeg/OsteoSegLib"):
        assert (ROOT / entry).exists(), entry


def test_extension_cmake_metadata():
    text = (ROOT / "CMakeLists.txt").read_text()
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert re.search(rf"set\(EXTENSION_{key}\s", text), key
    assert re.search(r'set\(EXTENSION_DEPENDS\s+"?PyTorch"?\)', text)
    for module in MODULES:
        assert f"add_subdirectory({module})" in text
    assert "Slicer_EXTENSION_GENERATE_CONFIG" in text and "Slicer_EXTENSION_CPACK" in text


@pytest.mark.parametrize("module", MODULES)
def test_every_module_file_is_listed_in_cmake(module):
    folder = ROOT / module
    unlisted, missing = unlisted_and_missing(folder)
    assert not unlisted, f"files that would not be installed (add them to {module}/CMakeLists.txt): {unlisted}"
    assert not missing, f"files listed in {module}/CMakeLists.txt that do not exist: {missing}"
    text = (folder / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule" in text and "WITH_GENERIC_TESTS" in text


def test_the_cmake_check_catches_an_unlisted_file(tmp_path):
    copy = tmp_path / "OsteoSeg"
    shutil.copytree(ROOT / "OsteoSeg", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "OsteoSegLib" / "forgotten.py").write_text("")
    (copy / "Resources" / "Icons" / "OsteoSeg.png").unlink()
    unlisted, missing = unlisted_and_missing(copy)
    assert unlisted == {"OsteoSegLib/forgotten.py"}
    assert missing == {"Resources/Icons/OsteoSeg.png"}


@pytest.mark.parametrize("module", MODULES)
def test_module_file_compiles_and_has_slicer_classes(module):
    path = ROOT / module / f"{module}.py"
    py_compile.compile(str(path), doraise=True)
    classes = {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.ClassDef)}
    expected = {module} if module == "OsteoSegTrain" else {module, f"{module}Widget", f"{module}Logic",
                                                             f"{module}Test"}
    assert expected <= classes


@pytest.mark.parametrize("module", MODULES)
def test_slicer_layer_stays_thin(module):
    """No numerical libraries in the Slicer-app layer: computation belongs in OsteoSegLib."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"numpy", "SimpleITK", "scipy", "torch", "monai"}


def test_only_the_scene_package_imports_slicer():
    for path in LIBRARY.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        names |= {node.module.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
        if path.parent.name != "scene":
            assert "slicer" not in names, f"{path} imports slicer; only scene/ may"


def test_imports_flow_one_way_between_the_stages():
    violations = upward_imports(LIBRARY)
    assert not violations, "imports against the stage order:\n" + "\n".join(violations)


def test_the_stage_check_catches_an_upward_import(tmp_path):
    copy = tmp_path / "OsteoSegLib"
    shutil.copytree(LIBRARY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # a lazy import inside a function counts as much as one at the top
    (copy / "data" / "cohort.py").write_text((copy / "data" / "cohort.py").read_text()
                                             + "\n\ndef helper():\n    from ..model.network import UNet2D\n")
    (copy / "model" / "losses.py").write_text("from OsteoSegLib.scene import mrml\n"
                                              + (copy / "model" / "losses.py").read_text())
    assert sorted(upward_imports(copy)) == ["data/cohort.py imports model.network (data may not import model)",
                                            "model/losses.py imports scene (model may not import scene)"]


def test_the_command_line_starts_without_torch():
    """`osteoseg --help` and the quick commands must not pay for loading torch."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import OsteoSegLib.cli; "
            "print('torch' in sys.modules, 'slicer' in sys.modules)")
    finished = subprocess.run([sys.executable, "-c", code, str(ROOT / "OsteoSeg")], capture_output=True, text=True,
                              timeout=120)
    assert finished.stdout.split() == ["False", "False"], finished.stderr


def test_ui_matches_widget_code_and_parameters():
    ui = ElementTree.parse(ROOT / "OsteoSeg" / "Resources" / "UI" / "OsteoSeg.ui")
    widget_names = {w.get("name") for w in ui.iter("widget")}
    code = (ROOT / "OsteoSeg" / "OsteoSeg.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", code))
    assert used and used <= widget_names, f"widgets used in code but absent from the .ui: {used - widget_names}"
    bound = {p.find("string").text for p in ui.iter("property") if p.get("name") == "SlicerParameterName"}
    tree = ast.parse(code)
    wrapper = next(node for node in tree.body if isinstance(node, ast.ClassDef)
                   and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list))
    parameters = {node.target.id for node in wrapper.body if isinstance(node, ast.AnnAssign)}
    assert bound and bound <= parameters, f"SlicerParameterName without a parameter: {bound - parameters}"
