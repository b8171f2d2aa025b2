"""The cohort description: `cohort.json` names each case's files by role (ct, pet, labels, truth).

Paths are relative to the cohort folder (absolute paths are kept as they are), so a cohort can
describe any layout without moving files.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_text
from ..errors import OsteoSegError

COHORT_FILE = "cohort.json"
COHORT_FORMAT = "osteoseg-cohort"
COHORT_FORMAT_VERSION = 1
TRANSFORM_KEY = "ct_to_pet_transform"   # a case's recorded alignment (phantom truth, `osteoseg align`)


@dataclass
class Case:
    """One patient: CT (the reference grid), PET, label masks by source name, optional hidden truth."""

    case_id: str
    ct: str
    pet: str
    labels: dict[str, str] = field(default_factory=dict)
    truth: str | None = None
    pet_units: str = "SUVbw"
    metadata: dict = field(default_factory=dict)


@dataclass
class Cohort:
    """A set of cases rooted in a folder; `path(...)` resolves a case's relative file names."""

    root: Path
    cases: list[Case]
    name: str = ""
    description: str = ""
    generator: dict = field(default_factory=dict)

    def path(self, relative: str) -> Path:
        """The absolute path of a file named in cohort.json."""
        return (self.root / relative).resolve()

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise OsteoSegError(f"no case {case_id!r} in the cohort", path=self.root / COHORT_FILE)

    def label_sources(self) -> list[str]:
        """Label source names present in at least one case, sorted."""
        return sorted({source for case in self.cases for source in case.labels})


def with_absolute_paths(cohort: Cohort, case: Case) -> Case:
    """A copy of `case` naming every file (images, labels, truth, recorded transform) by absolute path,
    for a new cohort elsewhere that uses the same files where they are."""
    metadata = dict(case.metadata)
    if metadata.get(TRANSFORM_KEY):
        metadata[TRANSFORM_KEY] = str(cohort.path(metadata[TRANSFORM_KEY]))
    return Case(case.case_id, str(cohort.path(case.ct)), str(cohort.path(case.pet)),
                labels={source: str(cohort.path(path)) for source, path in case.labels.items()},
                truth=str(cohort.path(case.truth)) if case.truth else None, pet_units=case.pet_units,
                metadata=metadata)


def save_cohort(cohort: Cohort) -> Path:
    """Write `cohort.json` into the cohort's root folder, atomically."""
    document = {
        "format": COHORT_FORMAT,
        "format_version": COHORT_FORMAT_VERSION,
        "name": cohort.name,
        "description": cohort.description,
        "generator": cohort.generator,
        "cases": [asdict(case) for case in cohort.cases],
    }
    path = Path(cohort.root) / COHORT_FILE
    write_text(path, json.dumps(document, indent=2) + "\n")
    return path


def load_cohort(location: str | os.PathLike) -> Cohort:
    """Read a cohort from its folder (or its cohort.json); errors name the file and the problem."""
    location = Path(location)
    path = location / COHORT_FILE if location.is_dir() else location
    if not path.is_file():
        raise OsteoSegError(f"no {COHORT_FILE} here (create one with 'osteoseg phantom' or an importer)",
                            path=path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OsteoSegError(f"not valid JSON ({error})", path=path) from None
    if not isinstance(document, dict) or document.get("format") != COHORT_FORMAT:
        raise OsteoSegError(f"not an OsteoSeg cohort file (missing \"format\": \"{COHORT_FORMAT}\")", path=path)
    cases = []
    for index, entry in enumerate(document.get("cases", [])):
        try:
            cases.append(Case(**entry))
        except TypeError as error:
            raise OsteoSegError(f"case entry #{index} is malformed ({error})", path=path) from None
    return Cohort(root=path.parent.resolve(), cases=cases, name=document.get("name", ""),
                  description=document.get("description", ""), generator=document.get("generator", {}))
