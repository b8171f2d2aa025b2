"""Shared fixtures: a headless Slicer scene, phantom cohorts made once per session, real data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "OsteoSeg"))   # also importable without `pip install -e .`

from OsteoSegLib.data.cohort import load_cohort  # noqa: E402
from OsteoSegLib.phantom import generate_cohort, settings_for  # noqa: E402

# A quick grid for tests that need files, not realism (the same field of view as `small`).
TINY_SHAPE, TINY_SPACING = (48, 48, 20), (4.0, 4.0, 6.0)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Converted models (OpenVINO) go to a folder of this test session, never the user's cache."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OSTEOSEG_CACHE", str(folder))
        yield folder


@pytest.fixture
def context():
    """A fresh headless MRML scene with Slicer's logics registered."""
    from OsteoSegLib.scene.mrml import create_headless_context

    return create_headless_context()


@pytest.fixture
def model_set(tmp_path):
    """A set of two narrow, untrained models (Model A and Model B, CT + PET, 48 x 48) with verified cards."""
    from helpers import write_package

    for source in "AB":
        write_package(tmp_path / "set", source)
    return tmp_path / "set"


def session_cohort(tmp_path_factory, name: str, cases: int, seed: int, settings, workers=None):
    """A phantom cohort for the test session; with $OSTEOSEG_TEST_CACHE (set by mutation runs, where
    every mutant is a new session) generated once into that folder and re-read afterwards."""
    cache = os.environ.get("OSTEOSEG_TEST_CACHE")
    folder = Path(cache) / name if cache else tmp_path_factory.mktemp(name) / "cohort"
    if cache and (folder / "cohort.json").is_file():
        return load_cohort(folder)
    return generate_cohort(folder, cases, seed, settings, workers=workers, force=bool(cache))


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory):
    """Eight cases at the `small` size (the demo's size), seed 11."""
    return session_cohort(tmp_path_factory, "small", 8, 11, settings_for("small"))


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """Three cases on a coarse grid, seed 5: for tests of files and formats."""
    settings = settings_for("small", shape=TINY_SHAPE, spacing=TINY_SPACING)
    return session_cohort(tmp_path_factory, "tiny", 3, 5, settings, workers=1)


@pytest.fixture
def shared_data():
    """The real PET-CT data beside the project; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it is not part of a user's clone)")
    return SHARED_DATA
