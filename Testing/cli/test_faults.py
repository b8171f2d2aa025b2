"""Faults a hospital workstation meets, command by command: a full disk, a read-only share, files cut
short, kill -9 in the middle of a run, two runs at once, --force aimed at the inputs. Each asserts:
one clear line and exit status 2, no input changed, no half-written file under a final name, and a
clean rerun.

The full disk and the read-only share are real file systems (a tiny tmpfs, a read-only tmpfs), which
need mount rights; without them those tests skip, saying so. A kill at a chosen moment (right after an
entry is moved into place) runs the command in a process that kills itself with SIGKILL there."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import ROOT
from helpers import write_dicom_case
from OsteoSegLib.data.cohort import load_cohort
from OsteoSegLib.data.io import read_image
from OsteoSegLib.model.package import load_model_package
from OsteoSegLib.outputs import LOCK_FILE, MANIFEST_FILE

pytestmark = pytest.mark.slow   # subprocesses and kills: minutes; never in mutation runs

TRAIN = ["--width", "4", "--size", "48", "--batch-size", "4", "--learning-rate", "1e-3"]


def osteoseg(*arguments, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "OsteoSegLib.cli", *map(str, arguments)], capture_output=True,
                          text=True, timeout=timeout, env=environment())


def start(*arguments) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "OsteoSegLib.cli", *map(str, arguments)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment())


def environment() -> dict:
    """This session's environment (its private cache folder included), one thread per process."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "OsteoSeg"), "OMP_NUM_THREADS": "1"}


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The error a user sees: exit status 2, one line on standard error (beside progress bars; several
    problems at once come one per indented line under it), no traceback."""
    lines = result.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("osteoseg: error:")]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(starts) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    following = [line for line in lines[starts[0] + 1:] if line.startswith("  ")]
    error = "\n".join([lines[starts[0]], *following])
    for fragment in fragments:
        assert fragment in error, error
    return error


def tree_hashes(folder) -> dict[str, str]:
    """Every file's hash (but the lock's, which names the last run's process)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".osteoseg.lock"}


def assert_whole(folder) -> None:
    """Nothing under a final name is half-written: every image reads whole, every model package loads."""
    for path in folder.rglob("*"):
        if ".partial" in path.name:
            continue
        if path.name.endswith((".nii.gz", ".nrrd")):
            read_image(path)
        if path.name == "model.json":
            load_model_package(path.parent)


@contextlib.contextmanager
def mounted(folder, options: str):
    """A tmpfs with these mount options at `folder` (skips the test where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'mount failed'}); "
                    "the full-disk and read-only tests need mount rights")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def cohort(tiny_cohort, tmp_path):
    """A private copy of the tiny phantom cohort (3 cases)."""
    return load_cohort(shutil.copytree(tiny_cohort.root, tmp_path / "cohort"))


def case_files(cohort):
    case = cohort.cases[0]
    return cohort.path(case.ct), cohort.path(case.pet)


@pytest.fixture
def four_cases(tmp_path):
    """Four tiny phantom cases: the fewest a 2-fold cross-validation takes."""
    from conftest import TINY_SHAPE, TINY_SPACING
    from OsteoSegLib.phantom import generate_cohort, settings_for

    return generate_cohort(tmp_path / "four", 4, 9, settings_for("small", shape=TINY_SHAPE, spacing=TINY_SPACING),
                           workers=1)


def folder_layout(cohort, root, copies: int = 1):
    """A one-folder-per-case layout for import-folders: `copies` case folders, each with case 0's CT and PET."""
    ct, pet = case_files(cohort)
    for index in range(copies):
        case = root / f"P{index:03d}"
        case.mkdir(parents=True)
        shutil.copy(ct, case / "ct.nii.gz")
        shutil.copy(pet, case / "pet.nii.gz")
    return root


def partials(folder) -> list[str]:
    return [str(p) for p in folder.rglob("*") if ".partial" in p.name]


# ---------------------------------------------------------------- a full disk


@pytest.mark.parametrize("command", ["align", "segment", "phantom", "train", "import-dicom"])
def test_a_full_disk_is_one_line_and_leaves_no_file_under_a_final_name(command, cohort, model_set, tmp_path):
    ct, pet = case_files(cohort)
    dicom = tmp_path / "dicom"
    if command == "import-dicom":
        for name in ("P1", "P2", "P3"):
            write_dicom_case(dicom / name)
    before = tree_hashes(cohort.root)
    small = command in ("import-dicom", "segment")   # small outputs: they need a smaller disk to fill it
    with mounted(tmp_path / "disk", "size=8k" if small else "size=32k") as disk:
        out = disk / "out"
        arguments = {"align": ["align", "--ct", ct, "--pet", pet, "--method", "resample", "--out", out],
                     "segment": ["segment", "--ct", ct, "--pet", pet, "--models", model_set, "--out", out,
                                 "--probabilities", "--device", "cpu"],
                     "phantom": ["phantom", out, "--cases", "1", "--shape", "48", "48", "20", "--spacing", "4", "4",
                                 "6", "--workers", "1"],
                     "train": ["train", cohort.root, "--label", "A", "--out", out, "--epochs", "1", *TRAIN],
                     "import-dicom": ["cohort", "import-dicom", dicom, "--out", out]}[command]
        error = one_line_error(osteoseg(*arguments))
        assert "disk is full" in error or "is the disk full" in error, error
        assert_whole(disk)
    assert tree_hashes(cohort.root) == before


@pytest.mark.parametrize("command", ["import-folders", "summary", "suv", "crossval", "evaluate"])
def test_a_full_disk_names_the_file_keeps_what_was_there_and_a_rerun_with_room_finishes(command, cohort, model_set,
                                                                                        tmp_path, request):
    dicom, many = tmp_path / "dicom" / "P1", tmp_path / "nifti"
    if command == "suv":
        write_dicom_case(dicom)
    if command == "import-folders":
        folder_layout(cohort, many, copies=40)                          # a cohort.json of about 10 kB
    four_cases = request.getfixturevalue("four_cases") if command == "crossval" else None
    before = tree_hashes(cohort.root)
    # Pages of 4 kB: keep.txt takes one, an output folder's lock and manifest one each; the rest is too
    # little for what the command writes first. summary and suv replace an earlier output (--force) on a
    # disk with no page left, which must survive.
    size = {"import-folders": "16k", "summary": "8k", "suv": "8k", "crossval": "32k", "evaluate": "16k"}[command]
    with mounted(tmp_path / "disk", f"size={size}") as disk:
        out = disk / "out"
        (disk / "keep.txt").write_text("the user's file")
        earlier = {"summary": disk / "summary.json", "suv": disk / "pet.nii.gz"}.get(command)
        if earlier:
            sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkFloat32), str(tmp_path / "earlier.nii.gz"))
            kept = b"[]\n" if command == "summary" else (tmp_path / "earlier.nii.gz").read_bytes()
            earlier.write_bytes(kept)
        arguments, named = {
            "import-folders": (["cohort", "import-folders", many, "--out", out, "--ct", "ct.nii.gz", "--pet",
                                "pet.nii.gz"], out / "cohort.json"),
            "summary": (["cohort", "summary", cohort.root, "--json", earlier, "--force"], earlier),
            "suv": (["suv", dicom / "PT", "--out", earlier, "--force"], earlier),
            "crossval": (["crossval", four_cases and four_cases.root, "--labels", "A", "--inputs", "pet", "--folds",
                          "2", "--epochs", "1", "--out", out, *TRAIN], out / "models" / "fold0" / "A_pet"),
            "evaluate": (["evaluate", cohort.root, "--models", model_set, "--out", out, "--device", "cpu"],
                         out / "predictions" / cohort.cases[0].case_id)}[command]
        error = one_line_error(osteoseg(*arguments), str(named))
        assert "disk is full" in error or "is the disk full" in error, error
        assert_whole(disk)
        assert not partials(disk) and not (out / "cohort.json").exists() and not (out / "report").exists()
        assert (disk / "keep.txt").read_text() == "the user's file"
        assert earlier is None or earlier.read_bytes() == kept
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        again = osteoseg(*arguments)                                    # room again: the same command finishes
        assert again.returncode == 0, again.stderr[-2000:]
        assert not partials(disk) and (disk / "keep.txt").read_text() == "the user's file"
        finished = {"import-folders": out / "cohort.json", "crossval": out / "report" / "report.json",
                    "evaluate": out / "report" / "report.json"}.get(command, earlier)
        assert finished.is_file() and (earlier is None or finished.read_bytes() != kept)
        assert_whole(disk)
    assert tree_hashes(cohort.root) == before


# ---------------------------------------------------------------- a read-only share


@pytest.mark.parametrize("command", ["align", "segment", "phantom", "train", "summary", "import-folders",
                                     "import-dicom", "suv", "crossval", "export-set", "evaluate", "bench", "demo"])
def test_a_read_only_folder_is_one_line_naming_it(command, cohort, model_set, tmp_path):
    ct, pet = case_files(cohort)
    if command in ("import-dicom", "suv"):
        write_dicom_case(tmp_path / "dicom" / "P1")
    if command == "import-folders":
        folder_layout(cohort, tmp_path / "nifti")
    before = tree_hashes(cohort.root)
    with mounted(tmp_path / "share", "ro,size=1m") as share:
        arguments = {"align": ["align", "--ct", ct, "--pet", pet, "--out", share / "out"],
                     "segment": ["segment", "--ct", ct, "--pet", pet, "--models", model_set, "--out", share],
                     "phantom": ["phantom", share / "out", "--cases", "1"],
                     "train": ["train", cohort.root, "--label", "A", "--out", share / "model", *TRAIN],
                     "summary": ["cohort", "summary", cohort.root, "--json", share / "summary.json"],
                     "import-folders": ["cohort", "import-folders", tmp_path / "nifti", "--out", share / "c", "--ct",
                                        "ct.nii.gz", "--pet", "pet.nii.gz"],
                     "import-dicom": ["cohort", "import-dicom", tmp_path / "dicom", "--out", share / "c"],
                     "suv": ["suv", tmp_path / "dicom" / "P1" / "PT", "--out", share / "pet.nii.gz"],
                     "crossval": ["crossval", cohort.root, "--labels", "A", "--folds", "2", "--out", share / "cv"],
                     "export-set": ["crossval", cohort.root, "--labels", "A", "--folds", "2", "--out", tmp_path / "cv",
                                    "--export-set", share / "set"],
                     "evaluate": ["evaluate", cohort.root, "--models", model_set, "--out", share / "e"],
                     "bench": ["bench", "--json", share / "bench.json", "--cache", tmp_path / "bench"],
                     "demo": ["demo", "--out", share / "demo"]}[command]
        one_line_error(osteoseg(*arguments, timeout=120), "read-only", str(share))
    # refused before any work: nothing written anywhere else either (the cross-validation, the benchmark's cache)
    assert not (tmp_path / "cv").exists() and not (tmp_path / "bench").exists()
    assert tree_hashes(cohort.root) == before


# ---------------------------------------------------------------- files cut short


def test_a_file_cut_short_is_refused_by_every_command_that_reads_it(cohort, model_set, tmp_path):
    ct, pet = case_files(cohort)
    pet.write_bytes(pet.read_bytes()[: pet.stat().st_size // 2])       # a copy that stopped half-way
    validated = osteoseg("cohort", "validate", cohort.root)
    assert validated.returncode == 1 and f"{pet}: the file is cut short" in validated.stdout
    one_line_error(osteoseg("align", "--ct", ct, "--pet", pet, "--out", tmp_path / "a"), str(pet), "cut short")
    one_line_error(osteoseg("segment", "--ct", ct, "--pet", pet, "--models", model_set, "--out", tmp_path / "s"),
                   str(pet), "cut short")
    trained = osteoseg("train", cohort.root, "--label", "A", "--out", tmp_path / "m", *TRAIN)
    assert trained.returncode == 2 and "cut short" in trained.stderr and "nothing was started" in trained.stderr
    assert not any((tmp_path / name).exists() for name in ("a", "s", "m"))      # refused before writing


def test_a_batch_segment_checks_every_case_before_it_writes_anything(cohort, model_set, tmp_path):
    last = cohort.cases[-1]
    pet = cohort.path(last.pet)
    pet.write_bytes(pet.read_bytes()[: pet.stat().st_size // 2])       # the last case's PET, cut short
    out = tmp_path / "out"
    arguments = ["segment", "--cohort", cohort.root, "--models", model_set, "--out", out, "--device", "cpu"]
    one_line_error(osteoseg(*arguments), "nothing was started", f"case {last.case_id}: {pet}: the file is cut short")
    assert not out.exists()                                             # not even the first case's result
    out.mkdir()
    (out / "mine.txt").write_text("mine")
    one_line_error(osteoseg(*arguments), f"case {last.case_id}")         # in a folder that exists: untouched
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


# ---------------------------------------------------------------- kill -9, then run again


def kill_after(process: subprocess.Popen, seconds: float) -> bool:
    """kill -9 after `seconds` (False when the run had finished by then)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    if process.poll() is not None:
        return False
    process.kill()
    process.wait()
    return True


@pytest.mark.parametrize("seconds", [4.0, 7.0])
def test_training_killed_at_any_point_resumes_to_a_whole_model(cohort, tmp_path, seconds):
    out = tmp_path / "model"
    arguments = ["train", cohort.root, "--label", "A", "--out", out, "--epochs", "4", *TRAIN]
    killed = kill_after(start(*arguments), seconds)
    assert_whole(out) if out.exists() else None
    again = osteoseg(*arguments, "--resume") if killed else None
    if killed and again.returncode == 2:   # killed before the first checkpoint: nothing to resume
        assert "pass --force" in again.stderr or "--resume" in again.stderr, again.stderr
        again = osteoseg(*arguments, "--force")
    assert again is None or again.returncode == 0, again.stderr[-2000:]
    assert load_model_package(out).card["training"]["epochs_run"] >= 1
    assert not [p for p in out.rglob("*") if ".partial" in p.name]


def test_a_batch_segment_killed_at_any_point_continues_where_it_stopped(cohort, model_set, tmp_path):
    out = tmp_path / "out"
    arguments = ["segment", "--cohort", cohort.root, "--models", model_set, "--out", out, "--device", "cpu",
                 "--nifti"]
    for seconds in np.random.default_rng(3).uniform(3.0, 9.0, 2):
        kill_after(start(*arguments), float(seconds))
        assert_whole(out) if out.exists() else None
    finished = osteoseg(*arguments)
    assert finished.returncode == 0, finished.stderr[-2000:]
    again = osteoseg(*arguments)                                          # nothing left to do
    assert again.returncode == 0 and "0 case(s) segmented, 3 kept" in again.stdout
    for case in cohort.cases:
        provenance = json.loads((out / f"{case.case_id}.provenance.json").read_text())
        for entry in provenance["outputs"].values():
            assert hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    assert not [p for p in out.iterdir() if ".partial" in p.name]


def test_an_import_killed_at_any_point_leaves_no_half_cohort_and_runs_again(tmp_path):
    for name in ("P1", "P2", "P3"):
        write_dicom_case(tmp_path / "dicom" / name, seed=len(name))
    out = tmp_path / "cohort"
    arguments = ["cohort", "import-dicom", tmp_path / "dicom", "--out", out]
    kill_after(start(*arguments), 3.0)
    assert not (out / "cohort.json").exists() or load_cohort(out)
    finished = osteoseg(*arguments, *(["--force"] if (out / "cohort.json").exists() else []))
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert len(load_cohort(out).cases) == 3 and not [p for p in out.iterdir() if ".partial" in p.name]


KILL_AFTER_MOVE = """
import os, signal, sys
from pathlib import Path

target, real = Path(sys.argv[1]).resolve(), os.replace


def replace(source, destination, *arguments, **keywords):
    real(source, destination, *arguments, **keywords)
    if Path(destination).resolve() == target:
        os.kill(os.getpid(), signal.SIGKILL)


os.replace = replace
from OsteoSegLib.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def killed_after_moving(target, *arguments) -> None:
    """Run a command that is killed (kill -9) right after it has moved `target` into place."""
    done = subprocess.run([sys.executable, "-c", KILL_AFTER_MOVE, str(target), *map(str, arguments)],
                          capture_output=True, text=True, timeout=300, env=environment())
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])


def assert_all_listed(out, entry: str) -> None:
    """Everything the killed run put in place (`entry` included) is in the folder's manifest, so
    --force or a rerun may remove it; only its hidden temporaries are not."""
    listed = set(json.loads((out / MANIFEST_FILE).read_text())["entries"])
    present = {p.name for p in out.iterdir() if p.name not in (MANIFEST_FILE, LOCK_FILE) and ".partial" not in p.name}
    assert entry in present and present <= listed, (present, listed)


@pytest.mark.parametrize("entry", ["case_000", "cohort.json", "overview.png"])
def test_a_phantom_killed_right_after_moving_an_entry_into_place_leaves_only_what_force_removes(tmp_path, entry):
    out = tmp_path / "phantom"
    arguments = ["phantom", out, "--cases", "2", "--shape", "48", "48", "20", "--spacing", "4", "4", "6",
                 "--workers", "1"]
    killed_after_moving(out / entry, *arguments)
    assert_all_listed(out, entry)
    left = tree_hashes(out)
    one_line_error(osteoseg(*arguments), "not empty", "--force")                 # refused: nothing touched
    assert tree_hashes(out) == left
    again = osteoseg(*arguments, "--force")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(load_cohort(out).cases) == 2 and not partials(out) and (out / "overview.png").is_file()
    assert_whole(out)


@pytest.mark.parametrize("entry", ["P1", "P2", "cohort.json"])
def test_an_import_killed_right_after_moving_a_case_into_place_is_listed_and_runs_again(tmp_path, entry):
    for name in ("P1", "P2", "P3"):
        write_dicom_case(tmp_path / "dicom" / name, seed=len(name))
    out = tmp_path / "cohort"
    arguments = ["cohort", "import-dicom", tmp_path / "dicom", "--out", out]
    killed_after_moving(out / entry, *arguments)
    assert_all_listed(out, entry)
    again = osteoseg(*arguments, *(["--force"] if entry == "cohort.json" else []))   # unfinished: no --force needed
    assert again.returncode == 0, again.stderr[-2000:]
    assert [case.case_id for case in load_cohort(out).cases] == ["P1", "P2", "P3"] and not partials(out)
    assert_whole(out)


# ---------------------------------------------------------------- two runs at once


def test_a_second_segment_into_the_same_folder_is_refused_while_the_first_runs(cohort, model_set, tmp_path):
    out = tmp_path / "out"
    arguments = ["segment", "--cohort", cohort.root, "--models", model_set, "--out", out, "--device", "cpu"]
    first = start(*arguments)
    lock = out / ".osteoseg.lock"
    for _ in range(600):
        if lock.exists() and lock.read_text().startswith("pid"):
            break
        time.sleep(0.05)
    second = osteoseg(*arguments)
    output, errors = first.communicate(timeout=300)
    assert first.returncode == 0, errors[-2000:]
    if "kept from an earlier run" not in second.stdout:   # it did not start after the first had finished
        one_line_error(second, "another OsteoSeg run is writing into this folder", f"pid {first.pid}")
    assert sorted(p.name for p in out.glob("*.seg.nrrd")) == [f"{c.case_id}.seg.nrrd" for c in cohort.cases]


# ---------------------------------------------------------------- --force aimed at the inputs


def test_force_never_removes_an_input_or_a_file_osteoseg_did_not_write(cohort, model_set, tmp_path):
    before = tree_hashes(cohort.root)
    one_line_error(osteoseg("train", cohort.root, "--label", "A", "--out", cohort.root, "--force", *TRAIN),
                   "is an input of this run")
    one_line_error(osteoseg("crossval", cohort.root, "--labels", "A", "--folds", "2", "--out", tmp_path, "--force"),
                   "holds an input of this run")
    one_line_error(osteoseg("segment", "--cohort", cohort.root, "--models", model_set,
                            "--out", cohort.root / "case_000", "--force"), "holds an input of this run")
    assert tree_hashes(cohort.root) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    folder_layout(cohort, tmp_path / "nifti")
    write_dicom_case(tmp_path / "dicom" / "P1")
    for arguments in (["train", cohort.root, "--label", "A", "--out", mine, "--force", *TRAIN],
                      ["phantom", mine, "--cases", "1", "--force"],
                      ["cohort", "import-folders", tmp_path / "nifti", "--out", mine, "--ct", "ct.nii.gz", "--pet",
                       "pet.nii.gz", "--force"],
                      ["cohort", "import-dicom", tmp_path / "dicom", "--out", mine, "--force"]):
        one_line_error(osteoseg(*arguments), "--force only removes what OsteoSeg wrote", "notes.txt")
    assert (mine / "notes.txt").read_text() == "my notes" and [p.name for p in mine.iterdir()] == ["notes.txt"]
    image = sitk.ReadImage(str(cohort.path(cohort.cases[0].ct)))
    assert image.GetSize() == (48, 48, 20)


# ---------------------------------------------------------------- outputs never replaced without --force


def test_every_command_refuses_to_replace_its_outputs_without_force(cohort, tmp_path):
    ct, pet = case_files(cohort)
    for name in ("P1", "P2"):
        write_dicom_case(tmp_path / "dicom" / name, seed=len(name))
    nifti = tmp_path / "nifti" / "P1"                    # a one-folder-per-case layout for import-folders
    nifti.mkdir(parents=True)
    shutil.copy(ct, nifti / "ct.nii.gz")
    shutil.copy(pet, nifti / "pet.nii.gz")
    commands = {
        "import-folders": ["cohort", "import-folders", tmp_path / "nifti", "--out", tmp_path / "folders",
                           "--ct", "ct.nii.gz", "--pet", "pet.nii.gz"],
        "import-dicom": ["cohort", "import-dicom", tmp_path / "dicom", "--out", tmp_path / "imported"],
        "align": ["align", "--ct", ct, "--pet", pet, "--out", tmp_path / "aligned"],
        "summary": ["cohort", "summary", cohort.root, "--json", tmp_path / "summary.json"],
    }
    for name, arguments in commands.items():
        first = osteoseg(*arguments)
        assert first.returncode == 0, (name, first.stderr[-2000:])
        written = tree_hashes(tmp_path)
        one_line_error(osteoseg(*arguments), "--force")
        assert tree_hashes(tmp_path) == written, name                  # refused: nothing touched
        replaced = osteoseg(*arguments, "--force")
        assert replaced.returncode == 0, (name, replaced.stderr[-2000:])


# ---------------------------------------------------------------- the checks of validate, in every command


def bad_case(kind: str, ct: sitk.Image, pet: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """A case as users get them wrong: swapped, an unrescaled CT, a PET that is not SUV or is empty."""
    if kind == "swapped":
        return pet, ct
    if kind == "unrescaled CT":
        return sitk.Cast(ct, sitk.sitkFloat32) + 1024.0, pet
    if kind == "negative PET":
        return ct, pet - 5.0
    return ct, pet * 0.0                                                 # all-zero PET


@pytest.mark.parametrize("kind, message", [("swapped", "does not look like a CT in HU"),
                                           ("unrescaled CT", "no value below 0"),
                                           ("negative PET", "PET has negative values"),
                                           ("all-zero PET", "PET is all zero")])
def test_segment_and_align_refuse_what_validate_refuses(cohort, model_set, tmp_path, kind, message):
    ct_path, pet_path = case_files(cohort)
    ct, pet = bad_case(kind, sitk.ReadImage(str(ct_path)), sitk.ReadImage(str(pet_path)))
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(pet, str(tmp_path / "pet.nrrd"))
    for align in ("resample", "rigid"):                                   # checked before registering too
        one_line_error(osteoseg("segment", "--ct", tmp_path / "ct.nrrd", "--pet", tmp_path / "pet.nrrd", "--models",
                                model_set, "--align", align, "--out", tmp_path / "s"), message)
    for method in ("resample", "rigid"):
        one_line_error(osteoseg("align", "--ct", tmp_path / "ct.nrrd", "--pet", tmp_path / "pet.nrrd", "--method",
                                method, "--out", tmp_path / "a"), message)
    assert not (tmp_path / "s").exists() and not (tmp_path / "a").exists()


# ---------------------------------------------------------------- importing DICOM


def test_an_import_with_a_bad_case_leaves_nothing_and_names_it(tmp_path):
    write_dicom_case(tmp_path / "dicom" / "P1")
    write_dicom_case(tmp_path / "dicom" / "P2", structure_frame="1.2.826.0.1.3680043.2.1125.99")
    one_line_error(osteoseg("cohort", "import-dicom", tmp_path / "dicom", "--out", tmp_path / "cohort"),
                   "case P2", "RTSTRUCT here is drawn on another frame of reference")
    assert not (tmp_path / "cohort").exists()                           # not even P1: no half import
    shutil.rmtree(tmp_path / "dicom" / "P2")
    write_dicom_case(tmp_path / "dicom" / "P2", seed=4)
    slice_file = sorted((tmp_path / "dicom" / "P2" / "CT").iterdir())[2]
    slice_file.write_bytes(slice_file.read_bytes()[:-300])              # pixel data cut short
    one_line_error(osteoseg("cohort", "import-dicom", tmp_path / "dicom", "--out", tmp_path / "cohort"),
                   "case P2", slice_file.name)


def test_import_dicom_chooses_among_several_series_by_uid(tmp_path):
    import pydicom

    write_dicom_case(tmp_path / "dicom" / "P1")
    shutil.copytree(tmp_path / "dicom" / "P1" / "CT", tmp_path / "dicom" / "P1" / "CT2")
    uid = "1.2.826.0.1.3680043.2.1125.777"
    for path in (tmp_path / "dicom" / "P1" / "CT2").iterdir():           # a second CT series
        dataset = pydicom.dcmread(path)
        dataset.SeriesInstanceUID = uid
        dataset.save_as(path)
    one_line_error(osteoseg("cohort", "import-dicom", tmp_path / "dicom", "--out", tmp_path / "c"),
                   "2 CT series here; choose one with --series", uid)
    chosen = osteoseg("cohort", "import-dicom", tmp_path / "dicom", "--out", tmp_path / "c", "--series", uid)
    assert chosen.returncode == 0, chosen.stderr[-2000:]
    assert load_cohort(tmp_path / "c").cases[0].metadata["ct_series"] == uid


# ---------------------------------------------------------------- what the user is told


def test_evaluate_refuses_an_existing_report_before_predicting(cohort, model_set, tmp_path):
    out = tmp_path / "evaluation"
    assert osteoseg("evaluate", cohort.root, "--models", model_set, "--out", out).returncode == 0
    earlier = tree_hashes(out)
    started = time.monotonic()
    one_line_error(osteoseg("evaluate", cohort.root, "--models", model_set, "--out", out), "a report is already there")
    assert tree_hashes(out) == earlier
    assert "predicting" not in osteoseg("evaluate", cohort.root, "--models", model_set, "--out", out).stdout
    assert time.monotonic() - started < 60


def test_a_model_card_that_does_not_match_its_network_is_one_line(model_set, cohort, tmp_path):
    card = json.loads((model_set / "model-B" / "model.json").read_text())
    card["inputs"] = ["pet"]                                            # the network takes CT and PET
    (model_set / "model-B" / "model.json").write_text(json.dumps(card))
    ct, pet = case_files(cohort)
    one_line_error(osteoseg("segment", "--ct", ct, "--pet", pet, "--models", model_set, "--out", tmp_path / "s"),
                   "model.json: model card does not describe a usable model", "need 1 input channel(s)")


def test_an_internal_error_says_where_its_details_are(tmp_path, monkeypatch, capsys):
    from OsteoSegLib.cli import main
    from OsteoSegLib.cli import phantom as command

    def defect(arguments):
        raise ZeroDivisionError("a defect")

    monkeypatch.setattr(command, "run_phantom", defect)
    monkeypatch.setenv("OSTEOSEG_CACHE", str(tmp_path / "cache"))
    assert main(["phantom", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("osteoseg: internal error (ZeroDivisionError: a defect); details are in ")
    log = error.rsplit("details are in ", 1)[1]
    assert "Traceback" in open(log).read() and "ZeroDivisionError" in open(log).read()


def test_a_crossval_killed_at_any_point_finishes_when_run_again(tmp_path):
    from conftest import TINY_SHAPE, TINY_SPACING
    from OsteoSegLib.phantom import generate_cohort, settings_for

    four = generate_cohort(tmp_path / "cohort", 4, 9, settings_for("small", shape=TINY_SHAPE, spacing=TINY_SPACING),
                           workers=1)
    out = tmp_path / "cv"
    arguments = ["crossval", four.root, "--labels", "A", "--inputs", "pet", "--folds", "2", "--epochs", "4",
                 "--out", out, *TRAIN]
    for seconds in np.random.default_rng(5).uniform(4.0, 10.0, 2):
        kill_after(start(*arguments), float(seconds))
        assert_whole(out) if out.exists() else None
    finished = osteoseg(*arguments)
    if finished.returncode == 2:      # a run finished before its kill: the report is there, kept
        one_line_error(finished, "a report is already there")
    else:
        assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["patients_tested"] == 4 and not [p for p in out.rglob("*") if ".partial" in p.name]
