"""A cohort whose labels are proposals: every case proposed from one of its label sources, written as a
new cohort that validates for training, atomically, with refusals before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.data.cohort import load_cohort
from OsteoSegLib.data.cohort_validate import validate_cohort
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.imaging import same_grid
from OsteoSegLib.labels.propose_cohort import propose_cohort
from OsteoSegLib.model.slice_data import TRANSFORM_KEY
from OsteoSegLib.progress import Progress


class Stop(Progress):
    def __init__(self, after: int):
        self.after, self.messages = after, []

    def message(self, text):
        self.messages.append(text)

    def cancelled(self):
        return len(self.messages) >= self.after


def test_every_case_gets_proposals_as_labels_a_and_b_in_a_cohort_ready_for_training(tiny_cohort, tmp_path):
    proposed = propose_cohort(tiny_cohort, "A", tmp_path / "proposed")
    again = load_cohort(tmp_path / "proposed")
    assert [c.case_id for c in again.cases] == [c.case_id for c in tiny_cohort.cases]
    assert validate_cohort(again, required_labels=()) == []
    for original, case in zip(tiny_cohort.cases, again.cases, strict=True):
        assert again.path(case.ct) == tiny_cohort.path(original.ct)            # referenced, not copied
        assert again.path(case.truth) == tiny_cohort.path(original.truth)
        assert again.path(case.metadata[TRANSFORM_KEY]).is_file()
        ct = sitk.ReadImage(str(again.path(case.ct)))
        rough = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort.path(original.labels["A"])))) > 0
        for source in "AB":
            label = sitk.ReadImage(str(again.path(case.labels[source])))
            assert same_grid(label, ct) and set(np.unique(sitk.GetArrayViewFromImage(label))) <= {0, 1}
        proposal_a = sitk.GetArrayFromImage(sitk.ReadImage(str(again.path(case.labels["A"])))) > 0
        record = json.loads((tmp_path / "proposed" / case.case_id / "proposal.json").read_text())
        assert case.metadata["proposal"] == record and record["rough_label"] == "A"
        if rough.any():
            assert record["voxels"]["A"] == proposal_a.sum() > 0 and (proposal_a & rough).any()
        else:
            assert record["empty_rough_label"] and not proposal_a.any()
    assert proposed.generator["rough_label"] == "A" and proposed.root == (tmp_path / "proposed").resolve()
    assert not list((tmp_path / "proposed").glob(".*partial*"))


def test_refusals_write_nothing(tiny_cohort, tmp_path):
    with pytest.raises(OsteoSegError, match="label source 'rough' is missing from 3 case"):
        propose_cohort(tiny_cohort, "rough", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(OsteoSegError, match="holds an input"):
        propose_cohort(tiny_cohort, "A", tiny_cohort.root.parent)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(OsteoSegError, match="did not write"):
        propose_cohort(tiny_cohort, "A", tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_a_stopped_run_leaves_no_cohort_and_an_earlier_one_is_replaced_only_with_force(tiny_cohort, tmp_path):
    with pytest.raises(OsteoSegError, match="stopped"):
        propose_cohort(tiny_cohort, "B", tmp_path / "out", progress=Stop(after=1))
    assert not (tmp_path / "out").exists()
    propose_cohort(tiny_cohort, "B", tmp_path / "out")
    with pytest.raises(OsteoSegError, match="earlier proposed cohort"):
        propose_cohort(tiny_cohort, "B", tmp_path / "out")
    replaced = propose_cohort(tiny_cohort, "A", tmp_path / "out", force=True)
    assert load_cohort(tmp_path / "out").generator["rough_label"] == "A" == replaced.generator["rough_label"]


def test_a_failed_forced_run_keeps_the_earlier_cohort_and_empty_proposals_are_reported(tiny_cohort, tmp_path):
    propose_cohort(tiny_cohort, "B", tmp_path / "out")
    before = (tmp_path / "out" / "cohort.json").read_text()
    with pytest.raises(OsteoSegError, match="stopped"):
        propose_cohort(tiny_cohort, "A", tmp_path / "out", force=True, progress=Stop(after=2))
    assert (tmp_path / "out" / "cohort.json").read_text() == before      # the earlier cohort, whole
    assert all((tmp_path / "out" / case.case_id / "proposed_a.nii.gz").is_file() for case in tiny_cohort.cases)
    from dataclasses import replace

    from OsteoSegLib.labels.propose import ProposalSettings
    from OsteoSegLib.labels.refinement import RefinementSettings

    never = replace(ProposalSettings(), refinement=RefinementSettings(minimum_contrast=1e6))   # nothing is PET-high
    progress = Stop(after=10 ** 6)
    proposed = propose_cohort(tiny_cohort, "A", tmp_path / "none", settings=never, progress=progress)
    marked = [case.case_id for case in tiny_cohort.cases
              if sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort.path(case.labels["A"])))).any()]
    assert marked and proposed.generator["empty_proposals"] == marked
    assert any(m.startswith(f"warning: {len(marked)} case(s)") for m in progress.messages)
