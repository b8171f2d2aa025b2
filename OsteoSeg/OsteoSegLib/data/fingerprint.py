"""Content hashes: of a file (model weights) and of the part of a cohort a model was trained on."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .cohort import Cohort


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cohort_fingerprint(cohort: Cohort, case_ids, label_source: str | None) -> str:
    """sha256 over the case ids and the bytes of their CT, PET and label files (no label for
    unlabelled cases): two runs with the same fingerprint saw the same data, whatever the folder is called."""
    digest = hashlib.sha256()
    for case_id in sorted(case_ids):
        case = cohort.case(case_id)
        digest.update(case_id.encode())
        for relative in (case.ct, case.pet, *([case.labels[label_source]] if label_source else [])):
            digest.update(bytes.fromhex(sha256_file(cohort.path(relative))))
    return digest.hexdigest()
