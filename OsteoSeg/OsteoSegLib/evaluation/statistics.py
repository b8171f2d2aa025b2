"""The tables of the evaluation, from per-patient metric rows: summaries (mean +- SD, median and IQR,
95% bootstrap CI), the modality table, the NxN cross-evaluation matrix, and paired Wilcoxon tests.
Undefined values (NaN, e.g. a surface distance to an empty mask) are left out and counted."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

TABLE_METRICS = ("dice", "iou", "sensitivity", "specificity", "hd95_mm", "assd_mm")
BOOTSTRAP_RESAMPLES = 2000
DUAL = "ct+pet"


def summarise(values) -> dict:
    """n, mean, SD (ddof 1), median, quartiles and a 95% percentile-bootstrap CI of the mean
    (scipy, fixed seed); NaN entries are counted as undefined, not averaged."""
    array = np.asarray(list(values), dtype=float)
    defined = array[~np.isnan(array)]
    summary = {"n": int(defined.size), "undefined": int(array.size - defined.size)}
    if defined.size == 0:
        return {**summary, **dict.fromkeys(("mean", "sd", "median", "q1", "q3"), math.nan), "ci95": [math.nan] * 2}
    summary.update(mean=float(defined.mean()), sd=float(defined.std(ddof=1)) if defined.size > 1 else 0.0,
                   median=float(np.median(defined)), q1=float(np.percentile(defined, 25)),
                   q3=float(np.percentile(defined, 75)), ci95=bootstrap_ci(defined))
    return summary


def bootstrap_ci(values: np.ndarray) -> list[float]:
    """95% CI of the mean by percentile bootstrap; a single value or identical values give it twice."""
    if values.size < 2 or np.ptp(values) == 0:
        return [float(values.mean())] * 2
    result = stats.bootstrap((values,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                             rng=np.random.default_rng(0))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def difference_ci(first, second) -> list[float]:
    """95% CI of mean(first) - mean(second) for two independent samples (different patients), by
    percentile bootstrap resampling each sample on its own (scipy, fixed seed)."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first.size < 2 or second.size < 2:
        return [math.nan] * 2
    result = stats.bootstrap((first, second), lambda a, b, axis=-1: a.mean(axis=axis) - b.mean(axis=axis),
                             n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", rng=np.random.default_rng(0),
                             vectorized=True)
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def paired_wilcoxon(first: dict[str, float], second: dict[str, float]) -> dict:
    """Two-sided Wilcoxon signed-rank test on the patients both have (NaN dropped)."""
    cases = sorted(c for c in set(first) & set(second) if not (math.isnan(first[c]) or math.isnan(second[c])))
    differences = np.array([first[c] - second[c] for c in cases])
    test = {"n": len(cases), "median_difference": float(np.median(differences)) if cases else math.nan}
    if len(cases) < 2 or not np.any(differences):
        return {**test, "statistic": math.nan, "p_value": math.nan}
    result = stats.wilcoxon(differences)
    return {**test, "statistic": float(result.statistic), "p_value": float(result.pvalue)}


def select(rows: list[dict], **criteria) -> list[dict]:
    return [row for row in rows if all(row[key] == value for key, value in criteria.items())]


def by_case(rows: list[dict], metric: str) -> dict[str, float]:
    return {row["case"]: float(row[metric]) for row in rows}


def modality_table(rows: list[dict], labels, inputs) -> dict:
    """Per label source, per inputs: each metric of the model trained on that source, tested on it."""
    return {label: {name: {metric: summarise(r[metric] for r in select(rows, model_label=label, reference=label,
                                                                        inputs=name))
                           for metric in TABLE_METRICS}
                    for name in inputs}
            for label in labels}


def cross_matrix(rows: list[dict], labels, references, inputs: str, metric: str = "dice") -> dict:
    """Model (trained on source M) x reference (tested on source R): summaries of the metric."""
    return {model: {reference: summarise(r[metric] for r in select(rows, model_label=model, reference=reference,
                                                                    inputs=inputs))
                    for reference in references}
            for model in labels}


def paired_dice(rows: list[dict], first: dict, second: dict) -> dict:
    """Wilcoxon on the Dice of two selections of rows, paired by patient."""
    return paired_wilcoxon(by_case(select(rows, **first), "dice"), by_case(select(rows, **second), "dice"))


def modality_tests(rows: list[dict], labels, inputs) -> dict:
    """Dual-channel against each single modality, paired by patient, on Dice (per label source)."""
    if DUAL not in inputs:
        return {}
    return {f"{label}: {DUAL} vs {single}": paired_dice(rows, dict(model_label=label, reference=label, inputs=DUAL),
                                                        dict(model_label=label, reference=label, inputs=single))
            for label in labels for single in inputs if single != DUAL}


def diagonal_tests(rows: list[dict], labels, inputs: str) -> dict:
    """Each model on its own source against the same model on each other source (paired by patient)."""
    return {f"Model {model}: Label {model} vs Label {other}": paired_dice(
                rows, dict(model_label=model, reference=model, inputs=inputs),
                dict(model_label=model, reference=other, inputs=inputs))
            for model in labels for other in labels if other != model}


def semi_supervised_comparison(rows: list[dict], semi_rows: list[dict], labels, references) -> dict:
    """Per label source and reference: the dual-channel supervised model and the semi-supervised
    student on the same test patients (summaries of every metric, paired Wilcoxon on Dice)."""
    table = {}
    for label in labels:
        for reference in references:
            supervised = select(rows, model_label=label, inputs=DUAL, reference=reference)
            semi = select(semi_rows, model_label=label, reference=reference)
            if not semi:
                continue
            table.setdefault(label, {})[reference] = {
                "supervised": {m: summarise(r[m] for r in supervised) for m in TABLE_METRICS},
                "semi_supervised": {m: summarise(r[m] for r in semi) for m in TABLE_METRICS},
                "test": paired_wilcoxon(by_case(semi, "dice"), by_case(supervised, "dice"))}
    return table
