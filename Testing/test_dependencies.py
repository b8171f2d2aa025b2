"""What OsteoSeg installs beside Slicer's own Python, what it offers, and how it installs without
replacing anything already installed."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
from OsteoSegLib import dependencies


def test_each_task_names_only_what_it_misses(monkeypatch):
    assert dependencies.missing_requirements("segment") == []
    assert not dependencies.torch_missing()
    monkeypatch.setattr(dependencies, "is_installed", lambda module: module not in {"safetensors", "torch"})
    assert dependencies.missing_requirements("segment") == ["safetensors>=0.4"] and dependencies.torch_missing()
    assert dependencies.missing_requirements("align") == []
    for task in dependencies.REQUIREMENTS.values():   # nothing Slicer ships is ever asked for
        assert not {name.lower() for name in dependencies.SLICER_OWNED} & {name.lower() for name in task}
    assert dependencies.installed_version("numpy") == np.__version__
    assert dependencies.installed_version("no-such-distribution") is None


def test_openvino_is_offered_only_where_no_gpu_runs_the_networks(monkeypatch):
    assert dependencies.optional_requirements(gpu_available=False) == []          # installed here already
    monkeypatch.setattr(dependencies, "is_installed", lambda module: module != "openvino")
    assert dependencies.optional_requirements(gpu_available=False) == [dependencies.OPENVINO_REQUIREMENT]
    assert dependencies.optional_requirements(gpu_available=True) == []


def test_the_constraints_pin_every_installed_distribution():
    installed = dependencies.installed_distributions()
    assert installed["numpy"] == np.__version__
    assert installed["simpleitk"] == dependencies.installed_version("SimpleITK")
    text = dependencies.keep_installed_constraints({"pydicom": "2.4.4", "simpleitk": "2.5.2"})
    assert text == "pydicom==2.4.4\nsimpleitk==2.5.2\n"
    assert dependencies.normalised("Foo_Bar.baz") == "foo-bar-baz"


def fake_wheel(folder, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A wheel that holds only its metadata: enough for pip to resolve against."""
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                       + "".join(f"Requires-Dist: {r}\n" for r in requires))
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                        "Tag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")


def test_pip_with_these_constraints_refuses_to_replace_an_installed_package(tmp_path):
    """The Slicer-5.10 case: a package that needs pydicom >= 3 where Slicer ships pydicom 2.4.4. With the
    constraints, pip refuses instead of upgrading; without them it would replace Slicer's pydicom."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake_wheel(wheels, "probe-dicom", "2.4.4")
    fake_wheel(wheels, "probe-dicom", "3.0.2")
    fake_wheel(wheels, "probe-seg", "0.27.0", ("probe-dicom>=3.0.1",))
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(dependencies.keep_installed_constraints({"probe-dicom": "2.4.4"}))
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--find-links", str(wheels),
               "--disable-pip-version-check", "probe-seg"]
    unconstrained = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert unconstrained.returncode == 0, unconstrained.stderr
    assert "Would install probe-dicom-3.0.2 probe-seg-0.27.0" in unconstrained.stdout
    refused = subprocess.run([*command, "-c", str(constraints)], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "conflicting dependencies" in refused.stderr
