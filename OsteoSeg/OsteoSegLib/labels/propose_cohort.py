"""A cohort whose labels are proposals: every case of a cohort through `propose`, from one of its label
sources as the rough input, written as a new cohort (Label A and B = Proposed A and B) that
`osteoseg train` reads like any other. The images are referenced where they are, never copied."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import write_text
from ..data.cohort import COHORT_FILE, Case, Cohort, save_cohort, with_absolute_paths
from ..data.io import read_image, write_image
from ..errors import OsteoSegError
from ..model.slice_data import recorded_transform
from ..outputs import OutputFolder
from ..progress import Progress
from .propose import Proposal, ProposalSettings, propose
from .rough_input import rough_from_mask

__all__ = ["GENERATOR_NAME", "propose_cohort"]

GENERATOR_NAME = "OsteoSegLib.labels"
FILES = {"A": "proposed_a.nii.gz", "B": "proposed_b.nii.gz", "record": "proposal.json"}


def case_proposal(cohort: Cohort, case: Case, rough_source: str, settings: ProposalSettings) -> tuple[sitk.Image,
                                                                                                      Proposal | None]:
    """The case's CT and its proposal; None when its rough label is empty (no lesion marked: the
    proposals are empty too)."""
    ct = read_image(cohort.path(case.ct), case=case.case_id)
    rough_image = read_image(cohort.path(case.labels[rough_source]), case=case.case_id)
    rough = rough_from_mask(rough_image, ct, source=f"label {rough_source}", case=case.case_id)
    if not rough.region.any():
        return ct, None
    pet = read_image(cohort.path(case.pet), case=case.case_id)
    return ct, propose(ct, pet, rough, transform=recorded_transform(cohort, case), settings=settings,
                       case=case.case_id)


def write_case(folder: Path, ct: sitk.Image, proposal: Proposal | None, rough_source: str) -> dict:
    """Proposed A and B (NIfTI, on the CT grid) and the proposal's record into `folder`; returns the record."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = tuple(reversed(ct.GetSize()))
    for source in "AB":
        mask = getattr(proposal, f"label_{source.lower()}") if proposal else np.zeros(shape, np.uint8)
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.CopyInformation(ct)
        write_image(image, folder / FILES[source])
    record = {"rough_label": rough_source, **(proposal.summary() if proposal else {"empty_rough_label": True})}
    write_text(folder / FILES["record"], json.dumps(record, indent=1) + "\n")
    return record


def proposed_case(cohort: Cohort, case: Case, record: dict) -> Case:
    """The new cohort's entry: the same images (absolute paths), the proposals as Label A and B."""
    new = with_absolute_paths(cohort, case)
    new.metadata["proposal"] = record
    new.labels = {source: f"{case.case_id}/{FILES[source]}" for source in "AB"}
    return new


def propose_cohort(cohort: Cohort, rough_source: str, out: str | os.PathLike, *,
                   settings: ProposalSettings | None = None, force: bool = False,
                   progress: Progress | None = None) -> Cohort:
    """Propose labels for every case into a new cohort at `out`. The cohort is built in a temporary
    folder inside `out` and moved into place at the end (cohort.json last), so a stopped run leaves
    no half-written cohort; `force` replaces an earlier result OsteoSeg wrote there, nothing else,
    and only once the new cohort is complete. A case whose rough label marks a lesion but whose
    proposals are both empty is warned about and listed in the generator's "empty_proposals"."""
    progress, settings = progress or Progress(), settings or ProposalSettings()
    missing = [case.case_id for case in cohort.cases if rough_source not in case.labels]
    if missing:
        raise OsteoSegError(f"label source {rough_source!r} is missing from {len(missing)} case(s) "
                            f"({', '.join(missing[:5])}); the cohort has {', '.join(cohort.label_sources()) or 'none'}",
                            path=cohort.root / COHORT_FILE)
    with OutputFolder(out, inputs=[cohort.root], command="propose") as folder:
        folder.refuse_foreign()
        earlier = folder.contents()
        if earlier and not force:
            raise OsteoSegError("an earlier proposed cohort is here; choose another folder or pass --force to "
                                "replace it", path=folder.path)
        staging = Path(tempfile.mkdtemp(prefix=".cohort.partial-", dir=folder.path))
        try:
            cases, empty = [], []
            for number, case in enumerate(cohort.cases, start=1):
                if progress.cancelled():
                    raise OsteoSegError("stopped; nothing was written")
                ct, proposal = case_proposal(cohort, case, rough_source, settings)
                record = write_case(staging / case.case_id, ct, proposal, rough_source)
                cases.append(proposed_case(cohort, case, record))
                if proposal is not None and not (proposal.label_a.any() or proposal.label_b.any()):
                    empty.append(case.case_id)
                    progress.message(f"warning: {case.case_id}: label {rough_source} marks a lesion but both "
                                     "proposals are empty (no PET-high cluster there); check this case")
                progress.message(f"{case.case_id} ({number}/{len(cohort.cases)}): " + (
                    f"A {record['voxels']['A']} voxels, B {record['voxels']['B']} voxels, "
                    f"{record['seconds']} s" if proposal else f"label {rough_source} is empty: empty proposals"))
            if empty:
                progress.message(f"warning: {len(empty)} case(s) with a non-empty label {rough_source} got empty "
                                 f"proposals ({', '.join(empty[:10])}); listed in the cohort's generator")
            proposed = Cohort(root=staging, cases=cases, name=f"{cohort.name or cohort.root.name} (proposed labels)",
                              description=f"Label A and B proposed by OsteoSeg from label {rough_source} of "
                                          f"{cohort.root} as the rough input.",
                              generator={"name": GENERATOR_NAME, "from_cohort": str(cohort.root),
                                         "rough_label": rough_source, "settings": asdict(settings),
                                         "empty_proposals": empty})
            save_cohort(proposed)
            for entry in earlier:   # --force: the earlier result goes only now that the new one is complete
                folder.remove(entry)
            for entry in [case.case_id for case in cases] + [COHORT_FILE]:
                folder.record(entry)   # noted first: a kill after the rename leaves it OsteoSeg's
                os.replace(staging / entry, folder.path / entry)
            proposed.root = folder.path
            return proposed
        finally:
            shutil.rmtree(staging, ignore_errors=True)
