"""Our own finding terminology (osteomyelitis, SNOMED CT 60168000, with a modifier per model), as
Slicer's segment terminology tags. The JSON ships in Resources/Terminology. Slicer loads only its own
terminologies at startup, so the module loads ours into the Terminologies logic (`load_into`) at
startup and again before adding segments; the tag strings below point into it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from ..errors import OsteoSegError

TERMINOLOGY_FILE = Path(__file__).resolve().parents[2] / "Resources" / "Terminology" / "OsteoSegFindings.json"
MODIFIER_OF_SOURCE = {"A": "extent-A", "B": "core-B", "disagreement": "disagreement"}


@cache
def load_terminology(path: Path = TERMINOLOGY_FILE) -> dict:
    return json.loads(Path(path).read_text())


def _code(entry: dict | None) -> str:
    """Slicer's serialised code: scheme^value^meaning (empty parts when absent)."""
    if not entry:
        return "^^"
    return f"{entry['CodingSchemeDesignator']}^{entry['CodeValue']}^{entry['CodeMeaning']}"


def finding_tag(source: str) -> str:
    """The terminology entry tag of a segment from model `source` ("A", "B" or "disagreement"):
    context~category~type~type modifier~anatomic context~region~region modifier."""
    terminology = load_terminology()
    category = terminology["SegmentationCodes"]["Category"][0]
    finding = category["Type"][0]
    modifier = next((m for m in finding.get("Modifier", []) if m["CodeValue"] == MODIFIER_OF_SOURCE.get(source)), None)
    return "~".join([terminology["SegmentationCategoryTypeContextName"], _code(category), _code(finding),
                     _code(modifier), "", "^^", "^^"])


def load_into(terminologies_logic, path: Path = TERMINOLOGY_FILE) -> str:
    """Load OsteoSeg's terminology into Slicer's Terminologies logic; returns its context name (Slicer
    returns an empty name for a file it could not read, which is an error here)."""
    expected = load_terminology(path)["SegmentationCategoryTypeContextName"]
    loaded = terminologies_logic.LoadTerminologyFromFile(str(path))
    if loaded != expected:
        raise OsteoSegError(f"Slicer could not load OsteoSeg's terminology (it returned {loaded!r})", path=path)
    return loaded
