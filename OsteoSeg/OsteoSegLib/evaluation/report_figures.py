"""The report's figures: Dice box plots per model, the cross-evaluation heatmap, and patient overlays
as in the paper (CT bone window, PET, ground truth, Model A red and Model B blue on one slice)."""

from __future__ import annotations

import os

import numpy as np

from ..atomic import atomic_path
from ..data.overview import MASK_COLORS, busiest_slice
from ..imaging import BONE_WINDOW_HU
from .statistics import select


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path) -> None:
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    _pyplot().close(figure)


def write_boxplots(rows: list[dict], labels, inputs, path: str | os.PathLike) -> None:
    """Per-patient Dice of every model (label source x inputs) on its own label source."""
    plt = _pyplot()
    groups, names, colors = [], [], []
    for label in labels:
        for name in inputs:
            groups.append([r["dice"] for r in select(rows, model_label=label, reference=label, inputs=name)])
            names.append(f"{label}\n{name}")
            colors.append(MASK_COLORS.get(label, "#999999"))
    figure, axis = plt.subplots(figsize=(1.3 * len(groups) + 2, 3.8), dpi=110)
    boxes = axis.boxplot(groups, patch_artist=True, showmeans=True)
    axis.set_xticks(range(1, len(names) + 1), names)
    for patch, color in zip(boxes["boxes"], colors, strict=True):
        patch.set(facecolor=color, alpha=0.35)
    for i, values in enumerate(groups, start=1):
        axis.plot(np.random.default_rng(i).normal(i, 0.04, len(values)), values, ".", color="black", alpha=0.6)
    axis.set(ylabel="3D Dice per patient", ylim=(-0.02, 1.02), title="Each model on its own label source")
    _save(figure, path)


def write_matrix_heatmap(matrix: dict, references, inputs: str, path: str | os.PathLike) -> None:
    """Mean 3D Dice of Model M (rows) on source R (columns), annotated mean +- SD."""
    plt = _pyplot()
    models = list(matrix)
    values = np.array([[matrix[m][r]["mean"] if matrix[m][r]["n"] else np.nan for r in references] for m in models])
    figure, axis = plt.subplots(figsize=(1.9 * len(references) + 2, 1.2 * len(models) + 1.6), dpi=110)
    image = axis.imshow(values, cmap="viridis", vmin=0, vmax=1)
    for i, m in enumerate(models):
        for j, r in enumerate(references):
            s = matrix[m][r]
            text = "n/a" if not s["n"] else f"{100 * s['mean']:.1f}\n+- {100 * s['sd']:.1f}"
            axis.text(j, i, text, ha="center", va="center", color="white" if values[i, j] < 0.6 else "black")
    axis.set_xticks(range(len(references)), [f"Label {r}" if r != "truth" else "true extent" for r in references])
    axis.set_yticks(range(len(models)), [f"Model {m}" for m in models])
    axis.set_title(f"3D Dice (%), {inputs} models")
    figure.colorbar(image, ax=axis, fraction=0.046)
    _save(figure, path)


def _outline(axis, mask: np.ndarray, color: str, label: str) -> None:
    if mask.any():
        axis.contour(mask.astype(float), levels=[0.5], colors=[color], linewidths=1.2)
    axis.plot([], [], color=color, label=label)


def write_patient_overlay(volumes: dict, inputs: str, path: str | os.PathLike, *, title: str = "") -> int:
    """Four panels on the slice with the most lesion: CT (bone window), PET, ground truth (each
    label source), predictions of the `inputs` models (A red, B blue). Returns the slice index."""
    plt = _pyplot()
    labels = {k: v for k, v in volumes["labels"].items() if k != "truth"}
    predictions = {key.label: mask for key, mask in volumes["predictions"].items() if key.inputs_name == inputs}
    k = busiest_slice({**labels, **predictions})
    ct, pet = volumes["ct_hu"][k], volumes["pet_suv"][k]
    figure, axes = plt.subplots(1, 4, figsize=(12, 3.5), dpi=110)
    for axis in axes:
        axis.imshow(ct, cmap="gray", vmin=BONE_WINDOW_HU[0], vmax=BONE_WINDOW_HU[1])
        axis.set_axis_off()
    axes[0].set_title("CT (bone window)")
    axes[1].imshow(pet, cmap="hot", vmin=0, vmax=max(float(np.percentile(volumes["pet_suv"], 99.9)), 1e-3))
    axes[1].set_title("PET (SUV)")
    for source, mask in labels.items():
        _outline(axes[2], mask[k], MASK_COLORS.get(source, "#4daf4a"), f"Label {source}")
    axes[2].set_title("ground truth")
    for source, mask in predictions.items():
        _outline(axes[3], mask[k], MASK_COLORS.get(source, "#4daf4a"), f"Model {source}")
    axes[3].set_title(f"prediction ({inputs})")
    for axis in axes[2:]:
        axis.legend(loc="lower right", fontsize=7)
    figure.suptitle(f"{title}  axial slice {k}".strip(), fontsize=10)
    _save(figure, path)
    return k
