"""An external evaluation beside the cross-validation estimate of the same configuration: for each
model (label source x inputs) on its own label source, both means, the difference (external minus
cross-validation) and its 95% CI. The two are measured on different patients, so the CI is unpaired.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import OsteoSegError
from .report import REPORT_FORMAT
from .statistics import TABLE_METRICS, difference_ci, select, summarise

# Settings that say where or on which split a model was trained, not what it computes.
NOT_CONFIGURATION = ("fold", "folds", "split_seed", "device", "precision", "label", "inputs")


def read_report(location: str | Path) -> dict:
    """A report.json (or the report folder holding one), checked to be an OsteoSeg report."""
    path = Path(location)
    path = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OsteoSegError("no report.json there", path=path) from None
    except (UnicodeDecodeError, ValueError) as error:
        raise OsteoSegError(f"is not a readable report ({error})", path=path) from None
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT or "patients" not in report:
        raise OsteoSegError("is not an OsteoSeg report (report.json of crossval or evaluate)", path=path)
    return report


def model_pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """(label source, inputs) of every model in some metric rows."""
    return sorted({(row["model_label"], row["inputs"]) for row in rows})


def check_comparable(crossval: dict, models: list[tuple[str, str]], path) -> None:
    """Refuse, before any prediction, a report that holds none of the models to be compared."""
    available = model_pairs(crossval["patients"])
    if not set(models) & set(available):
        have = ", ".join(f"{label} {inputs}" for label, inputs in available) or "none"
        want = ", ".join(f"{label} {inputs}" for label, inputs in models)
        raise OsteoSegError(f"the cross-validation report has no model like the model set's ({want}); it has {have}",
                            path=path)


def configuration(settings: dict | None) -> dict:
    return {k: v for k, v in (settings or {}).items() if k not in NOT_CONFIGURATION}


def settings_differences(crossval: dict, model_cards: dict) -> list[str]:
    """Training settings in which the evaluated models and the cross-validation's models differ
    (one line each; 'not recorded' when the report predates recording them)."""
    recorded = [configuration(m.get("settings")) for m in crossval.get("models", {}).values() if m.get("settings")]
    if not recorded:
        return ["the cross-validation report does not record its training settings"]
    ours = [configuration(card.get("training", {}).get("settings")) for card in model_cards.values()]
    differences = set()
    for mine in ours:
        if not mine:
            differences.add("the model set's cards do not record their training settings")
            continue
        for key in sorted(set(mine) | set(recorded[0])):
            if mine.get(key) != recorded[0].get(key):
                differences.add(f"{key}: {mine.get(key)} here, {recorded[0].get(key)} in the cross-validation")
    return sorted(differences)


def defined(rows: list[dict], metric: str) -> np.ndarray:
    values = np.array([row[metric] if row[metric] is not None else math.nan for row in rows], dtype=float)
    return values[~np.isnan(values)]


def compare_with_crossval(rows: list[dict], model_cards: dict, crossval: dict) -> dict:
    """Per model on its own label source, per metric: external and cross-validation summaries, the
    difference of the means and its 95% bootstrap CI; and the settings that differ."""
    entries = []
    for label, inputs in model_pairs(rows):
        external = select(rows, model_label=label, inputs=inputs, reference=label)
        reference = select(crossval["patients"], model_label=label, inputs=inputs, reference=label)
        if not external or not reference:
            continue
        for metric in TABLE_METRICS:
            ours, theirs = defined(external, metric), defined(reference, metric)
            difference = float(ours.mean() - theirs.mean()) if ours.size and theirs.size else math.nan
            entries.append({"model": label, "inputs": inputs, "metric": metric,
                            "external": summarise(ours), "crossval": summarise(theirs),
                            "difference": difference, "ci95": difference_ci(ours, theirs)})
    return {"crossval_cohort": crossval.get("cohort"), "crossval_folds": crossval.get("folds"),
            "settings_differences": settings_differences(crossval, model_cards), "entries": entries}
