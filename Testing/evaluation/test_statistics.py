"""Summaries and paired tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from OsteoSegLib.evaluation.statistics import paired_wilcoxon, summarise
from scipy import stats


def test_summaries_and_paired_tests():
    summary = summarise([0.2, 0.4, 0.6, 0.8, float("nan")])
    assert summary["n"] == 4 and summary["undefined"] == 1
    assert summary["mean"] == pytest.approx(0.5) and summary["sd"] == pytest.approx(np.std([.2, .4, .6, .8], ddof=1))
    assert summary["median"] == pytest.approx(0.5) and summary["q1"] == pytest.approx(0.35)
    assert summary["ci95"][0] < 0.5 < summary["ci95"][1]
    first = {f"c{i}": v for i, v in enumerate([0.9, 0.8, 0.85, 0.7, 0.95, 0.6])}
    second = {f"c{i}": v for i, v in enumerate([0.7, 0.75, 0.6, 0.72, 0.8, 0.5])}
    test = paired_wilcoxon(first, second)
    expected = stats.wilcoxon(np.array(list(first.values())) - np.array(list(second.values())))
    assert test["n"] == 6 and test["p_value"] == pytest.approx(expected.pvalue)
    assert math.isnan(paired_wilcoxon({"a": 1.0}, {"a": 0.5})["p_value"])
