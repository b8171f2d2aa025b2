"""The output discipline every command shares: one run per folder (an OS lock that a killed process
releases), a manifest of what OsteoSeg wrote, --force limited to it, inputs never overwritten."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.outputs import MANIFEST_FILE, OutputFolder, check_not_over_inputs, check_writable, refuse_existing_file


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    with OutputFolder(tmp_path / "out", command="segment --cohort c"):
        with pytest.raises(OsteoSegError, match=r"out: another OsteoSeg run is writing into this folder "
                                                r"\(pid \d+, segment --cohort c"):
            OutputFolder(tmp_path / "out", command="train").__enter__()
    with OutputFolder(tmp_path / "out"):       # free again afterwards
        pass


def test_a_killed_run_does_not_keep_the_folder_locked(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from OsteoSegLib.outputs import OutputFolder;"
                               "folder = OutputFolder(sys.argv[1]).__enter__(); print('locked', flush=True); "
                               "time.sleep(60)", str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(OsteoSegError, match="another OsteoSeg run"):
        OutputFolder(tmp_path / "out").__enter__()
    holder.kill()                               # kill -9: no clean-up code runs
    holder.wait()
    with OutputFolder(tmp_path / "out"):
        pass


def test_force_removes_what_osteoseg_wrote_and_refuses_a_folder_with_anything_else(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out) as folder:
        (out / "model.json").write_text("{}")
        (out / "training").mkdir()
        (out / "training" / "checkpoint.pt").write_bytes(b"x")
        folder.record("model.json", "training")
    (out / "notes.txt").write_text("mine")
    with OutputFolder(out) as folder:
        assert folder.foreign() == ["notes.txt"]
        with pytest.raises(OsteoSegError, match="--force only removes what OsteoSeg wrote.*notes.txt"):
            folder.clear()
        assert (out / "model.json").exists() and (out / "training" / "checkpoint.pt").exists()   # nothing removed
        with pytest.raises(OsteoSegError, match="notes.txt: was not written by OsteoSeg, so it is left alone"):
            folder.remove("notes.txt")
    (out / "notes.txt").unlink()
    with OutputFolder(out) as folder:
        folder.clear()
        assert folder.contents() == [] and json.loads((out / MANIFEST_FILE).read_text())["entries"] == []
    assert list(out.iterdir()) == []          # nothing of OsteoSeg's left: no lock, no manifest either


def test_an_output_folder_that_is_or_holds_an_input_is_refused(tmp_path):
    cohort = tmp_path / "data" / "cohort"
    cohort.mkdir(parents=True)
    for out in (cohort, tmp_path / "data", tmp_path):
        with pytest.raises(OsteoSegError, match="the output folder (is|holds) an input of this run"):
            check_not_over_inputs(out, [cohort])
    check_not_over_inputs(cohort / "models", [cohort])          # inside an input folder is fine
    check_not_over_inputs(tmp_path / "elsewhere", [None, cohort])


def test_a_refused_run_leaves_no_folder_behind_and_a_killed_runs_temporaries_are_cleared(tmp_path):
    with pytest.raises(RuntimeError), OutputFolder(tmp_path / "new"):
        raise RuntimeError("refused before writing")
    assert not (tmp_path / "new").exists()
    out = tmp_path / "out"
    out.mkdir()
    (out / ".ct.k2j3.partial.nii.gz").write_bytes(b"half")        # atomic's temporary, from a killed run
    (out / ".import.partial-x").mkdir()
    with OutputFolder(out) as folder:
        assert folder.contents() == []


def test_a_named_output_file_is_not_replaced_without_force_and_never_is_an_input(tmp_path):
    existing = tmp_path / "summary.json"
    existing.write_text("{}")
    with pytest.raises(OsteoSegError, match="summary.json: the file exists; .* --force"):
        refuse_existing_file(existing, force=False)
    assert refuse_existing_file(existing, force=True) == existing
    with pytest.raises(OsteoSegError, match="is an input of this run"):
        refuse_existing_file(existing, force=True, inputs=[existing])
    with pytest.raises(OsteoSegError, match="this is a folder"):
        refuse_existing_file(tmp_path, force=True)


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    asked = []

    def access(path, mode):
        asked.append(str(path))
        return False                                                 # as a folder without write permission

    check_writable(tmp_path / "summary.json")
    monkeypatch.setattr(os, "access", access)
    with pytest.raises(OsteoSegError, match=f"new/deeper/set: cannot write here: no permission \\({tmp_path}\\)"):
        check_writable(tmp_path / "new" / "deeper" / "set")        # the nearest folder that exists is checked
    assert asked == [str(tmp_path)]
    with pytest.raises(OsteoSegError, match="summary.json: cannot write here"):
        refuse_existing_file(tmp_path / "summary.json", force=False)


def test_an_earlier_result_is_refused_without_force_and_a_foreign_file_even_with_it(tmp_path):
    with OutputFolder(tmp_path / "out") as folder:
        assert folder.earlier_result(["a.nii.gz", "b.json"], False, "transfer") == []
        folder.record("a.nii.gz")
        (folder.path / "a.nii.gz").write_text("ours")
        with pytest.raises(OsteoSegError, match=r"an earlier transfer is there \(a.nii.gz\); choose another folder"):
            folder.earlier_result(["a.nii.gz", "b.json"], False, "transfer")
        assert folder.earlier_result(["a.nii.gz", "b.json"], True, "transfer") == ["a.nii.gz"]
        (folder.path / "b.json").write_text("the user's")
        with pytest.raises(OsteoSegError, match="b.json is in the way and not written by OsteoSeg, so --force leaves "
                                                "it alone; choose another folder or --name"):
            folder.earlier_result(["a.nii.gz", "b.json"], True, "proposal", elsewhere="another folder or --name")
        assert (folder.path / "b.json").read_text() == "the user's"
