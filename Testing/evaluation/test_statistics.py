"""Summaries and paired tests."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from OsteoSegLib.evaluation.statistics import (
    bootstrap_ci,
    by_case,
    cross_matrix,
    diagonal_tests,
    difference_ci,
    modality_table,
    modality_tests,
    paired_dice,
    paired_wilcoxon,
    select,
    semi_supervised_comparison,
    summarise,
)
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


def exact_wilcoxon_p(differences) -> float:
    """Two-sided exact p of the signed-rank test, by enumerating every sign pattern (no ties, no zeros)."""
    import itertools

    ranks = np.argsort(np.argsort(np.abs(differences))) + 1
    observed = ranks[np.asarray(differences) > 0].sum()
    totals = [sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in
              itertools.product((0, 1), repeat=len(ranks))]
    low, high = np.mean(np.array(totals) <= observed), np.mean(np.array(totals) >= observed)
    return min(1.0, 2 * min(low, high))


def test_wilcoxon_pairs_patients_by_id_whatever_the_order_and_matches_the_exact_test():
    first = {"P1": 0.80, "P2": 0.62, "P3": 0.91, "P4": 0.55, "P5": 0.70, "P6": 0.66, "P7": 0.40}
    second = {"P7": 0.45, "P3": 0.70, "P1": 0.71, "P6": 0.69, "P2": 0.50, "P5": 0.64, "P4": 0.57}   # other order
    differences = [first[c] - second[c] for c in sorted(first)]
    test = paired_wilcoxon(first, second)
    assert test["n"] == 7 and test["median_difference"] == pytest.approx(np.median(differences))
    assert test["p_value"] == pytest.approx(exact_wilcoxon_p(differences))
    assert test["statistic"] == pytest.approx(min(sum(r for r, d in zip(np.argsort(np.argsort(np.abs(differences)))
                                                                        + 1, differences, strict=True) if d > 0),
                                                  sum(r for r, d in zip(np.argsort(np.argsort(np.abs(differences)))
                                                                        + 1, differences, strict=True) if d < 0)))
    only_shared = paired_wilcoxon({**first, "P9": 0.1, "P8": float("nan")}, {**second, "P8": 0.3})
    assert only_shared["n"] == 7 and only_shared["p_value"] == pytest.approx(test["p_value"])
    same = paired_wilcoxon(first, first)
    assert same["n"] == 7 and same["median_difference"] == 0 and math.isnan(same["p_value"])
    assert math.isnan(paired_wilcoxon({}, {})["median_difference"])


def test_summaries_of_nothing_of_one_value_and_of_two():
    nothing = summarise([float("nan"), float("nan")])
    assert nothing["n"] == 0 and nothing["undefined"] == 2
    assert all(math.isnan(nothing[key]) for key in ("mean", "sd", "median", "q1", "q3"))
    assert len(nothing["ci95"]) == 2 and all(math.isnan(v) for v in nothing["ci95"])
    one = summarise([0.3])
    assert (one["n"], one["mean"], one["sd"], one["median"], one["ci95"]) == (1, 0.3, 0.0, 0.3, [0.3, 0.3])
    two = summarise([True, False])                         # numbers, whatever their type
    assert two["mean"] == 0.5 and two["sd"] == pytest.approx(math.sqrt(0.5)) and two["ci95"] == [0.0, 1.0]
    quartiles = summarise([1.0, 2.0, 3.0, 4.0, 10.0])
    assert (quartiles["q1"], quartiles["median"], quartiles["q3"]) == (2.0, 3.0, 4.0)


def test_the_bootstrap_interval_is_the_percentile_interval_and_repeatable():
    """Resampled means of [0, 0, 0, 1] are k/4 with binomial(4, 1/4) odds: P(<= 1/2) = 0.949 and
    P(<= 3/4) = 0.996, so the 2.5th and 97.5th percentiles are 0 and 3/4 (a BCa interval differs)."""
    assert bootstrap_ci(np.array([0.0, 0.0, 0.0, 1.0])) == [0.0, 0.75]
    spread = np.array([0.2, 0.9, 0.4, 0.75, 0.1, 0.6])
    low, high = bootstrap_ci(spread)
    assert low < spread.mean() < high and bootstrap_ci(spread) == [low, high]        # the same every run
    assert bootstrap_ci(np.array([0.5, 0.5, 0.5])) == [0.5, 0.5]
    assert bootstrap_ci(np.array([0.0, 1.0]))[1] == 1.0


def rows_of(values: dict) -> list[dict]:
    """Metric rows from {(case, model_label, inputs, reference): dice}."""
    return [{"case": c, "model_label": m, "inputs": i, "reference": r, "dice": d, "iou": d / 2, "sensitivity": d,
             "specificity": 1 - d / 10, "hd95_mm": 10 * d, "assd_mm": d} for (c, m, i, r), d in values.items()]


TABLE = {("P1", "A", "ct+pet", "A"): 0.9, ("P2", "A", "ct+pet", "A"): 0.7, ("P3", "A", "ct+pet", "A"): 0.5,
         ("P1", "A", "ct", "A"): 0.6, ("P2", "A", "ct", "A"): 0.2, ("P3", "A", "ct", "A"): 0.4,
         ("P1", "A", "ct+pet", "B"): 0.3, ("P2", "A", "ct+pet", "B"): 0.35, ("P3", "A", "ct+pet", "B"): 0.1,
         ("P1", "B", "ct+pet", "B"): 0.8, ("P2", "B", "ct+pet", "B"): 0.75, ("P3", "B", "ct+pet", "B"): 0.95,
         ("P1", "B", "ct+pet", "A"): 0.45, ("P2", "B", "ct+pet", "A"): 0.5, ("P3", "B", "ct+pet", "A"): 0.2,
         ("P1", "B", "ct", "B"): 0.7, ("P2", "B", "ct", "B"): 0.6, ("P3", "B", "ct", "B"): 0.9}


def test_the_tables_take_each_cell_from_its_own_rows():
    rows = rows_of(TABLE)
    modality = modality_table(rows, ("A", "B"), ("ct", "ct+pet"))
    assert modality["A"]["ct+pet"]["dice"]["mean"] == pytest.approx(0.7)
    assert modality["A"]["ct"]["dice"]["mean"] == pytest.approx(0.4) and modality["B"]["ct"]["dice"]["n"] == 3
    assert modality["B"]["ct+pet"]["hd95_mm"]["mean"] == pytest.approx(10 * (0.8 + 0.75 + 0.95) / 3)
    matrix = cross_matrix(rows, ("A", "B"), ("A", "B"), "ct+pet")
    assert matrix["A"]["B"]["mean"] == pytest.approx(0.25) and matrix["B"]["A"]["mean"] == pytest.approx(1.15 / 3)
    assert matrix["B"]["B"]["median"] == pytest.approx(0.8)
    assert by_case(select(rows, model_label="B", inputs="ct", reference="B"), "dice") == {"P1": 0.7, "P2": 0.6,
                                                                                          "P3": 0.9}
    modality_pairs = modality_tests(rows, ("A", "B"), ("ct", "ct+pet"))
    assert set(modality_pairs) == {"A: ct+pet vs ct", "B: ct+pet vs ct"}
    assert modality_pairs["A: ct+pet vs ct"]["median_difference"] == pytest.approx(0.3)      # 0.3, 0.5, 0.1
    assert modality_pairs["B: ct+pet vs ct"]["median_difference"] == pytest.approx(0.1)      # 0.1, 0.15, 0.05
    assert modality_tests(rows, ("A",), ("ct",)) == {}                                       # no dual-channel
    diagonal = diagonal_tests(rows, ("A", "B"), "ct+pet")
    assert set(diagonal) == {"Model A: Label A vs Label B", "Model B: Label B vs Label A"}
    assert diagonal["Model A: Label A vs Label B"]["median_difference"] == pytest.approx(0.4)  # 0.6, 0.35, 0.4
    assert diagonal["Model B: Label B vs Label A"]["n"] == 3
    dual = paired_dice(rows, dict(model_label="A", reference="A", inputs="ct+pet"),
                       dict(model_label="A", reference="A", inputs="ct"))
    assert dual == modality_pairs["A: ct+pet vs ct"]


def test_semi_supervised_comparison_pairs_each_student_with_the_dual_channel_model_of_its_fold():
    rows = rows_of(TABLE)
    semi = [{**row, "method": "semi-supervised", "dice": row["dice"] + gain, "sensitivity": row["dice"] + gain}
            for row, gain in zip(select(rows, inputs="ct+pet"), [0.05, 0.1, -0.02] * 4, strict=True)]
    table = semi_supervised_comparison(rows, semi, ("A", "B"), ("A", "B"))
    a_on_a = table["A"]["A"]
    assert a_on_a["supervised"]["dice"]["mean"] == pytest.approx(0.7)                 # 0.9, 0.7, 0.5
    assert a_on_a["semi_supervised"]["dice"]["mean"] == pytest.approx(0.7 + 0.13 / 3)  # + 0.05, 0.1, -0.02
    assert a_on_a["test"]["n"] == 3 and a_on_a["test"]["median_difference"] == pytest.approx(0.05)
    assert table["B"]["A"]["supervised"]["dice"]["mean"] == pytest.approx(1.15 / 3)   # Model B on Label A
    assert semi_supervised_comparison(rows, [], ("A",), ("A",)) == {}


def test_a_skewed_sample_gets_the_percentile_interval_not_bca():
    """Means of 10 draws from [0]*9 + [1] are binomial(10, 0.1) / 10: P(X = 0) = 0.35 and P(X <= 2) =
    0.930, P(X <= 3) = 0.987, so the percentile interval is [0, 0.3]; BCa stretches it to 0.4-0.5."""
    sample = np.array([0.0] * 9 + [1.0])
    assert bootstrap_ci(sample) == [0.0, pytest.approx(0.3)]
    assert difference_ci(sample, [0.25, 0.25]) == [pytest.approx(-0.25), pytest.approx(0.05)]   # second is constant


def test_the_difference_interval_resamples_each_sample_alone_and_repeats():
    assert len(difference_ci([0.5], [0.1, 0.2])) == 2
    assert all(np.isfinite(difference_ci([0.6, 0.9, 0.7], [0.1, 0.3])))        # two patients are enough
    first, second = [0.2, 0.9, 0.4, 0.75, 0.1, 0.6], [0.3, 0.35, 0.5, 0.2]
    low, high = difference_ci(first, second)
    assert low < np.mean(first) - np.mean(second) < high and high - low < 0.6
    assert difference_ci(first, second) == [low, high]                        # a fixed seed: the same every run
    alone_low, alone_high = difference_ci(first, [np.mean(second)] * 4)
    assert high - low > 1.03 * (alone_high - alone_low)                      # the second sample's spread counts


def test_wilcoxon_of_two_patients_of_none_and_its_keys():
    two = paired_wilcoxon({"P1": 0.9, "P2": 0.7}, {"P2": 0.6, "P1": 0.5})
    assert two["n"] == 2 and two["p_value"] == pytest.approx(0.5)      # exact: both signs positive, 2 of 4 patterns
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                # no median of an empty list
        nothing = paired_wilcoxon({}, {"P1": 0.3})
    assert set(nothing) == {"n", "median_difference", "statistic", "p_value"} and math.isnan(nothing["statistic"])


EXTRA = {("P1", "B", "ct", "A"): 0.05, ("P2", "B", "ct", "A"): 0.15, ("P3", "B", "ct", "A"): 0.25,
         ("P1", "A", "ct", "B"): 0.12, ("P2", "A", "ct", "B"): 0.22, ("P3", "A", "ct", "B"): 0.02}


@pytest.mark.parametrize("order", [1, -1])
def test_the_tests_pick_their_own_rows_whatever_else_the_rows_hold_and_in_any_order(order):
    rows = (rows_of(TABLE) + rows_of(EXTRA))[::order]
    alone = rows_of(TABLE)
    assert modality_tests(rows, ("A", "B"), ("ct", "ct+pet")) == modality_tests(alone, ("A", "B"), ("ct", "ct+pet"))
    assert diagonal_tests(rows, ("A", "B"), "ct+pet") == diagonal_tests(alone, ("A", "B"), "ct+pet")
    assert diagonal_tests(rows, ("A", "B"), "ct+pet")["Model A: Label A vs Label B"]["median_difference"] == \
        pytest.approx(0.4)


def test_a_label_without_students_does_not_end_the_comparison():
    rows = rows_of(TABLE)
    semi = [{**row, "method": "semi-supervised"} for row in select(rows, inputs="ct+pet", reference="B")]
    table = semi_supervised_comparison(rows, semi, ("A", "B"), ("A", "B"))
    assert set(table) == {"A", "B"} and set(table["A"]) == {"B"} and set(table["B"]) == {"B"}
