"""The cross-validation report: report.json (the source of truth, every per-patient value),
patients.csv, report.md with the tables, and PNG figures (box plots, the matrix heatmap, overlays of
the best and worst patients). Built in a staging folder and renamed into place: never half-written."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import current_umask
from ..data.io import csv_text
from ..errors import OsteoSegError
from .cross_validation import TRUTH, CrossValidation
from .report_figures import write_boxplots, write_matrix_heatmap, write_patient_overlay
from .statistics import (
    DUAL,
    TABLE_METRICS,
    cross_matrix,
    diagonal_tests,
    modality_table,
    modality_tests,
    select,
    semi_supervised_comparison,
    summarise,
)

REPORT_FORMAT = "osteoseg-report"


def main_inputs(result: CrossValidation) -> str:
    """The inputs whose models fill the cross-evaluation matrix: dual-channel when it was trained."""
    return DUAL if DUAL in result.inputs else result.inputs[0]


def references_of(result: CrossValidation) -> list[str]:
    references = list(result.labels)
    if any(row["reference"] == TRUTH for row in result.rows):
        references.append(TRUTH)
    return references


def agreement_summary(result: CrossValidation) -> dict:
    """Mean over patients of the pairwise Dice / kappa and STAPLE estimates between label sources."""
    pairs = sorted({pair for a in result.agreement for pair in a["pairs"]})
    sources = sorted({s for a in result.agreement for s in a["staple"]})
    return {"pairs": {pair: {m: summarise(a["pairs"][pair][m] for a in result.agreement if pair in a["pairs"])
                             for m in ("dice", "kappa")} for pair in pairs},
            "staple": {s: {m: summarise(a["staple"][s][m] for a in result.agreement if s in a["staple"])
                           for m in ("sensitivity", "specificity")} for s in sources}}


def build_report(result: CrossValidation, command: str = "", comparison: dict | None = None) -> dict:
    """Every table and every per-patient value, as one JSON-ready dictionary (with the comparison
    to a cross-validation estimate when an external evaluation was given one)."""
    inputs = main_inputs(result)
    references = references_of(result)
    return {
        "format": REPORT_FORMAT, "format_version": 1, "osteoseg": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
        "cohort": result.cohort_name, "folds": result.folds, "labels": list(result.labels),
        "inputs": list(result.inputs), "references": references, "matrix_inputs": inputs,
        "patients_tested": len({row["case"] for row in result.rows}),
        "specificity_region": "body: CT voxels above -500 HU",
        "modality_table": modality_table(result.rows, result.labels, result.inputs),
        "cross_matrix": cross_matrix(result.rows, result.labels, references, inputs),
        "tests": {"modality": modality_tests(result.rows, result.labels, result.inputs),
                  "diagonal": diagonal_tests(result.rows, result.labels, inputs)},
        "agreement": {"summary": agreement_summary(result), "per_patient": result.agreement},
        "skipped": result.skipped,
        "models": {name: {"name": card["name"], "best_epoch": card.get("training", {}).get("best_epoch"),
                          "epochs_run": card.get("training", {}).get("epochs_run"),
                          "weights_sha256": card["weights_sha256"],
                          "settings": card.get("training", {}).get("settings")}   # absent if trained elsewhere
                   for name, card in result.model_cards.items()},
        **({"crossval_comparison": comparison} if comparison is not None else {}),
        **({"semi_supervised": semi_supervised_comparison(result.rows, result.semi_rows, result.labels, references)}
           if result.semi_rows else {}),
        "patients": result.rows,
        **({"semi_supervised_patients": result.semi_rows} if result.semi_rows else {}),
    }


def json_safe(value):
    """NaN and infinities become null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def cell(summary: dict, scale: float = 100.0, digits: int = 1) -> str:
    """'mean +- SD' for a table cell ('n/a' when nothing is defined)."""
    if summary["n"] == 0:
        return "n/a"
    text = f"{summary['mean'] * scale:.{digits}f} +- {summary['sd'] * scale:.{digits}f}"
    return text + (f" (n={summary['n']})" if summary["undefined"] else "")


def median_cell(summary: dict, scale: float = 100.0) -> str:
    if summary["n"] == 0:
        return "n/a"
    return (f"{summary['median'] * scale:.1f} [{summary['q1'] * scale:.1f}, {summary['q3'] * scale:.1f}]; "
            f"CI {summary['ci95'][0] * scale:.1f}-{summary['ci95'][1] * scale:.1f}")


def markdown(report: dict) -> str:
    """The report a clinician reads: both tables, the tests, agreement, figures."""
    percent = ("dice", "iou", "sensitivity", "specificity")
    lines = [f"# Cross-validation report: {report['cohort'] or 'cohort'}", "",
             (f"{report['folds']}-fold patient-wise cross-validation" if report["folds"]
              else "Evaluation of a fixed model set") + f"; {report['patients_tested']} patients, each "
             f"tested once per model; patient-level 3D metrics (mean +- SD across patients; Dice, IoU, "
             f"sensitivity and specificity in %, distances in mm). Specificity is counted inside the "
             f"{report['specificity_region']}.", ""]
    lines += ["## Modality comparison", ""]
    for label, by_inputs in report["modality_table"].items():
        lines += [f"Models trained and tested on Label {label}:", "",
                  "| inputs | " + " | ".join(TABLE_METRICS) + " |", "|---" * (len(TABLE_METRICS) + 1) + "|"]
        for inputs, metrics in by_inputs.items():
            lines.append(f"| {inputs} | " + " | ".join(
                cell(metrics[m], 100.0 if m in percent else 1.0) for m in TABLE_METRICS) + " |")
        lines.append("")
    references = report["references"]
    lines += [f"## Cross-evaluation matrix (3D Dice %, {report['matrix_inputs']} models)", "",
              "| | " + " | ".join(f"tested on {'true extent' if r == TRUTH else 'Label ' + r}" for r in references)
              + " |", "|---" * (len(references) + 1) + "|"]
    for model, row in report["cross_matrix"].items():
        lines.append(f"| Model {model} | " + " | ".join(cell(row[r]) for r in references) + " |")
    lines += ["", "Median [IQR] and 95% bootstrap CI of the mean:", ""]
    for model, row in report["cross_matrix"].items():
        lines += [f"- Model {model} on {'true extent' if r == TRUTH else 'Label ' + r}: {median_cell(row[r])}"
                  for r in references]
    lines += ["", "## Paired Wilcoxon signed-rank tests (Dice)", "", "| comparison | n | median difference | p |",
              "|---|---|---|---|"]
    for group in ("modality", "diagonal"):
        for name, test in report["tests"][group].items():
            p = "n/a" if test["p_value"] is None else f"{test['p_value']:.3g}"   # NaN is None after json_safe
            difference = "n/a" if test["median_difference"] is None else f"{test['median_difference'] * 100:.1f}"
            lines.append(f"| {name} | {test['n']} | {difference} | {p} |")
    if "crossval_comparison" in report:
        lines += comparison_markdown(report["crossval_comparison"])
    if "semi_supervised" in report:
        lines += semi_supervised_markdown(report["semi_supervised"])
    summary = report["agreement"]["summary"]
    if summary["pairs"]:
        lines += ["", "## Agreement between the label sources", ""]
        for pair, values in summary["pairs"].items():
            lines.append(f"- {pair}: Dice {cell(values['dice'], 1.0, 2)}, "
                         f"Cohen's kappa {cell(values['kappa'], 1.0, 2)}")
        for source, values in summary["staple"].items():
            lines.append(f"- STAPLE estimate for Label {source}: sensitivity {cell(values['sensitivity'], 1.0, 2)}, "
                         f"specificity {cell(values['specificity'], 1.0, 3)}")
    if report["skipped"]:
        lines += ["", f"{len(report['skipped'])} patient/source pair(s) were not scored (label source missing): "
                  + ", ".join(f"{s['case']} ({s['reference']})" for s in report["skipped"])]
    lines += ["", "## Figures", "", "![Dice per model](figures/dice_boxplot.png)", "",
              "![Cross-evaluation matrix](figures/matrix_heatmap.png)", ""]
    for figure in report.get("figures", {}).get("overlays", []):
        lines += [f"![{figure['title']}]({figure['file']})", ""]
    lines += ["Per-patient values: `patients.csv`; everything: `report.json`.", ""]
    return "\n".join(lines)


def semi_supervised_markdown(table: dict) -> list[str]:
    """Supervised-only against semi-supervised dual-channel models, fold by fold on the same patients."""
    lines = ["", "## Semi-supervised against supervised only (ct+pet, same test patients)", "",
             "| model | tested on | supervised Dice | semi-supervised Dice | supervised sensitivity | "
             "semi-supervised sensitivity | median Dice gain | p (Wilcoxon) |", "|---|---|---|---|---|---|---|---|"]
    for label, by_reference in table.items():
        for reference, entry in by_reference.items():
            test = entry["test"]
            gain = "n/a" if test["median_difference"] is None else f"{test['median_difference'] * 100:+.1f}"
            p = "n/a" if test["p_value"] is None else f"{test['p_value']:.3g}"
            where = "true extent" if reference == TRUTH else f"Label {reference}"
            lines.append(f"| Model {label} | {where} | {cell(entry['supervised']['dice'])} | "
                         f"{cell(entry['semi_supervised']['dice'])} | {cell(entry['supervised']['sensitivity'])} | "
                         f"{cell(entry['semi_supervised']['sensitivity'])} | {gain} | {p} |")
    return lines


def comparison_markdown(comparison: dict) -> list[str]:
    """The external figures beside the cross-validation estimate (different patients: unpaired CI)."""
    lines = ["", f"## Beside the cross-validation estimate ({comparison['crossval_folds']}-fold, cohort "
             f"{comparison['crossval_cohort']})", "",
             "Each model on its own label source; difference = this evaluation minus the cross-validation, with "
             "a 95% bootstrap CI (unpaired: different patients).", "",
             "| model | metric | this evaluation | cross-validation | difference [95% CI] |", "|---|---|---|---|---|"]
    for entry in comparison["entries"]:
        scale = 1.0 if entry["metric"].endswith("_mm") else 100.0
        difference, (low, high) = entry["difference"], entry["ci95"]
        text = "n/a" if difference is None else f"{difference * scale:+.1f}"
        if low is not None and high is not None:
            text += f" [{low * scale:+.1f}, {high * scale:+.1f}]"
        lines.append(f"| {entry['model']} {entry['inputs']} | {entry['metric']} | {cell(entry['external'], scale)} | "
                     f"{cell(entry['crossval'], scale)} | {text} |")
    if comparison["settings_differences"]:
        lines += ["", "Not the same configuration, so the difference mixes both effects:", ""]
        lines += [f"- {line}" for line in comparison["settings_differences"]]
    return lines


def overlay_cases(result: CrossValidation) -> list[tuple[str, str]]:
    """The best and the worst patient by the matrix inputs' first model on its own label."""
    label = result.labels[0]
    scores = {row["case"]: row["dice"] for row in select(result.rows, model_label=label, reference=label,
                                                         inputs=main_inputs(result))}
    if not scores:
        return []
    ranked = sorted(scores, key=scores.get)
    chosen = [("best", ranked[-1])] + ([("worst", ranked[0])] if len(ranked) > 1 else [])
    return chosen


REPORT_ENTRIES = {"report.json", "report.md", "patients.csv", "figures"}


def is_report_folder(folder: Path) -> bool:
    """Whether a folder holds an OsteoSeg report and nothing else."""
    try:
        document = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return document.get("format") == REPORT_FORMAT and {p.name for p in folder.iterdir()} <= REPORT_ENTRIES


def write_report(result: CrossValidation, out: str | os.PathLike, *, command: str = "", force: bool = False,
                 comparison: dict | None = None) -> Path:
    """Write the whole report folder atomically; an existing report is replaced only with `force`."""
    out = Path(out)
    if not result.rows:
        raise OsteoSegError("nothing to report: no test patient was scored", path=out)
    if out.exists() and any(out.iterdir()) and not force:
        raise OsteoSegError("report folder is not empty; pass --force to replace it", path=out)
    if out.exists() and any(out.iterdir()) and not is_report_folder(out):
        raise OsteoSegError("this folder is not an OsteoSeg report, so it is not replaced; choose another "
                            "folder", path=out)
    report = build_report(result, command, comparison)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))   # cleared if killed
    try:
        figures = staging / "figures"
        figures.mkdir()
        write_boxplots(result.rows, result.labels, result.inputs, figures / "dice_boxplot.png")
        write_matrix_heatmap(report["cross_matrix"], report["references"], report["matrix_inputs"],
                             figures / "matrix_heatmap.png")
        overlays = []
        for kind, case_id in overlay_cases(result):
            file = f"figures/overlay_{kind}_{case_id}.png"
            title = f"{kind} patient {case_id}"
            write_patient_overlay(result.volumes[case_id], main_inputs(result), staging / file, title=title)
            overlays.append({"case": case_id, "kind": kind, "file": file, "title": title})
        report["figures"] = {"boxplot": "figures/dice_boxplot.png", "matrix": "figures/matrix_heatmap.png",
                             "overlays": overlays}
        (staging / "report.json").write_text(json.dumps(json_safe(report), indent=1) + "\n")
        (staging / "patients.csv").write_text(csv_text(
            result.rows if not result.semi_rows else [{"method": "supervised", **row}
                                                      for row in result.rows + result.semi_rows]))
        (staging / "report.md").write_text(markdown(json_safe(report)))
        staging.chmod(0o777 & ~current_umask())   # mkdtemp makes it 0700
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
