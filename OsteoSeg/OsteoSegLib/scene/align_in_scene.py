"""The Align step in a scene: a new PET volume on the CT grid (and, for rigid registration, the
transform node), the original volumes untouched, and the quality figure.

Everything that can fail (registration, the figure) happens before the first node is added, so a
failure leaves the scene as it was. The figure needs matplotlib, which Slicer does not ship: without
it Align still aligns, and says that the figure was skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..alignment.align import align, write_quality_figure
from ..dependencies import is_installed
from ..imaging import resample_onto
from . import mrml


@dataclass
class AlignedNodes:
    pet_on_ct: object
    transform: object | None
    figure: Path | None
    metric_before: float | None
    metric_after: float | None
    note: str = ""


def align_in_scene(context: mrml.MrmlContext, ct_node, pet_node, method: str = "resample",
                   figure_folder: str | Path | None = None) -> AlignedNodes:
    """Align the PET to the CT with `method`; the quality figure is written into `figure_folder`
    (when matplotlib is installed). The PET is taken where its parent transform puts it."""
    ct, pet = mrml.image_from_volume_node(ct_node), mrml.image_from_volume_node(pet_node)
    aligned, transform, registration = align(ct, pet, method, case=ct_node.GetName())
    name = mrml.unique_node_name(context, f"{pet_node.GetName()} on {ct_node.GetName()} ({method})")
    figure, note = None, ""
    if figure_folder is not None and is_installed("matplotlib"):
        figure = Path(figure_folder) / f"{name.replace(' ', '_')}.png"
        write_quality_figure(ct, resample_onto(pet, ct), aligned, figure, f"{method}: {pet_node.GetName()} onto CT")
    elif figure_folder is not None:
        note = "the before/after figure needs matplotlib (not installed), so it was skipped"
    node = mrml.volume_node_from_image(context, aligned, name)
    mrml.place_beside(context, node, ct_node)
    transform_node = None
    if registration is not None:
        transform_node = mrml.transform_node_from_ct_to_pet(context, transform, f"{name} transform")
    return AlignedNodes(node, transform_node, figure,
                        registration.metric_before if registration else None,
                        registration.metric_after if registration else None, note)
