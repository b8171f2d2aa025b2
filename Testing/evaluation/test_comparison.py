"""An external evaluation beside a cross-validation estimate: hand-computed differences, unpaired CI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.evaluation.comparison import (
    check_comparable,
    compare_with_crossval,
    read_report,
    settings_differences,
)
from OsteoSegLib.evaluation.report import REPORT_FORMAT, comparison_markdown
from OsteoSegLib.evaluation.statistics import difference_ci


def row(case, dice, model="A", inputs="ct+pet", reference="A", hd95=3.0):
    return {"case": case, "model_label": model, "inputs": inputs, "reference": reference, "dice": dice,
            "iou": dice / (2 - dice), "sensitivity": dice, "specificity": 0.99, "hd95_mm": hd95, "assd_mm": 1.0}


def crossval_report(rows, settings=None):
    models = {"fold0/A_ct+pet": {"name": "A_ct+pet_fold0", "settings": settings}} if settings else {}
    return {"format": REPORT_FORMAT, "cohort": "site", "folds": 5, "models": models, "patients": rows}


SETTINGS = {"base_width": 8, "epochs": 10, "fold": 0, "folds": 5, "device": "cpu", "label": "A"}


def test_each_model_is_compared_on_its_own_source_with_an_unpaired_interval():
    external = [row("n1", 0.9), row("n2", 0.7), row("n1", 0.0, reference="B"), row("n2", 0.1, reference="B")]
    crossval = crossval_report([row("c1", 0.5), row("c2", 0.6), row("c3", 0.7, hd95=None),
                                row("c1", 0.95, model="B", reference="B"), row("c4", 0.2, inputs="ct")],
                               SETTINGS)
    cards = {"A": {"training": {"settings": {**SETTINGS, "fold": "all", "folds": None}}}}
    result = compare_with_crossval(external, cards, crossval)
    assert result["settings_differences"] == []            # the fold is not the configuration
    entries = {(e["model"], e["inputs"], e["metric"]): e for e in result["entries"]}
    assert {key[:2] for key in entries} == {("A", "ct+pet")}   # B and ct exist on one side only
    dice = entries["A", "ct+pet", "dice"]
    assert dice["external"]["mean"] == pytest.approx(0.8) and dice["crossval"]["mean"] == pytest.approx(0.6)
    assert dice["crossval"]["n"] == 3 and dice["difference"] == pytest.approx(0.2)
    low, high = dice["ci95"]
    # Resampling 2 external and 3 cross-validation patients: means within [0.7, 0.9] and [0.5, 0.7].
    assert 0.0 <= low < 0.2 < high <= 0.4
    hd95 = entries["A", "ct+pet", "hd95_mm"]
    assert hd95["crossval"]["n"] == 2 and hd95["difference"] == 0.0   # the undefined value is left out
    text = "\n".join(comparison_markdown(json.loads(json.dumps(result))))
    assert "| A ct+pet | dice | 80.0 +- 14.1 | 60.0 +- 10.0 | +20.0 [" in text


def test_other_settings_are_named_and_a_report_without_them_said_so():
    crossval = crossval_report([row("c1", 0.5), row("c2", 0.6)], SETTINGS)
    cards = {"A": {"training": {"settings": {**SETTINGS, "base_width": 64}}}}
    assert settings_differences(crossval, cards) == ["base_width: 64 here, 8 in the cross-validation"]
    assert "does not record" in settings_differences(crossval_report(crossval["patients"]), cards)[0]
    assert "do not record" in settings_differences(crossval, {"A": {}})[0]


def test_difference_interval_needs_two_patients_a_side_and_follows_the_sign():
    assert all(math.isnan(v) for v in difference_ci([0.5], [0.1, 0.2]))
    rng = np.random.default_rng(3)
    first, second = rng.normal(0.8, 0.05, 30), rng.normal(0.6, 0.05, 25)
    low, high = difference_ci(first, second)
    observed = first.mean() - second.mean()
    assert low < observed < high and 0.15 < low and high < 0.25
    reverse = difference_ci(second, first)
    assert reverse[0] < -observed < reverse[1] and reverse[1] < 0


def test_reports_are_checked_before_any_prediction(tmp_path):
    with pytest.raises(OsteoSegError, match="no report.json"):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(OsteoSegError, match="not a readable report"):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"format": "something-else", "patients": []}))
    with pytest.raises(OsteoSegError, match="not an OsteoSeg report"):
        read_report(tmp_path / "report.json")
    report = crossval_report([row("c1", 0.5, inputs="pet")])
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert read_report(tmp_path)["cohort"] == "site"
    with pytest.raises(OsteoSegError, match=r"no model like the model set's \(A ct\+pet\); it has A pet"):
        check_comparable(report, [("A", "ct+pet")], tmp_path)
    check_comparable(report, [("A", "ct+pet"), ("A", "pet")], tmp_path)
