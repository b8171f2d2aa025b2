"""From clusters to the two labels, in 3D, each after its own philosophy.

The clusters are split into pieces (connected parts of one cluster); each piece is kept or left
whole, by what the piece looks like as a whole (its mean uptake, where it lies), never voxel by voxel:
- Proposed A (high sensitivity): pieces touching the rough input whose uptake stands out from the
  surrounding tissue (PET-active), plus the soft-tissue pieces next to them with raised uptake
  (involvement), within reach of the rough input.
- Proposed B (high specificity): the hottest of those pieces where they lie inside the bone outline
  on CT (uptake meeting bone destruction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["RefinementSettings", "Refined", "refine"]

SIX_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)


@dataclass(frozen=True)
class RefinementSettings:
    """Uptake is measured from the surroundings (0) to the hottest piece at the rough input (1)."""

    active_uptake: float = 0.35       # A: a piece this hot is PET-active
    involvement_uptake: float = 0.2   # A: soft tissue next to the active region this warm is involved
    core_uptake: float = 0.5          # B: a piece this hot, inside bone, is the core
    reach_mm: float = 10.0            # how far beyond the rough input a proposal may grow
    dense_bone_hu: float = 400.0      # cortex on CT, whose outline is the bone
    soft_tissue_hu: float = 250.0     # below this, a piece is soft tissue (or destroyed bone)
    minimum_contrast: float = 1.5     # the hottest piece must be this many times the surroundings


@dataclass
class Refined:
    """The two proposals on the crop and the reference levels they were measured with."""

    label_a: np.ndarray
    label_b: np.ndarray
    background_suv: float
    peak_suv: float
    whole_a: np.ndarray     # A's pieces whole, before the reach cut them (where A's edge is not a cluster's)


def cluster_pieces(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Each cluster's connected parts (6-connected), numbered 1..n over the whole crop."""
    pieces = np.zeros(labels.shape, np.int32)
    count = 0
    for cluster in np.unique(labels):
        parts, found = ndimage.label(labels == cluster, structure=SIX_NEIGHBOURS)
        pieces[parts > 0] = parts[parts > 0] + count
        count += found
    return pieces, count


def piece_means(pieces: np.ndarray, count: int, values: np.ndarray) -> np.ndarray:
    """The mean of `values` over each piece (index 0 unused)."""
    sums = np.bincount(pieces.ravel(), weights=values.ravel().astype(np.float64), minlength=count + 1)
    sizes = np.bincount(pieces.ravel(), minlength=count + 1)
    return sums / np.maximum(sizes, 1)


def pieces_where(pieces: np.ndarray, count: int, region: np.ndarray) -> np.ndarray:
    """Per piece: the fraction of its voxels inside `region` (index 0 unused)."""
    inside = np.bincount(pieces[region].ravel(), minlength=count + 1)
    return inside / np.maximum(np.bincount(pieces.ravel(), minlength=count + 1), 1)


def within_mm(region: np.ndarray, distance_mm: float, spacing_zyx) -> np.ndarray:
    """Voxels at most `distance_mm` from the region."""
    if not region.any():
        return region.copy()
    return ndimage.distance_transform_edt(~region, sampling=spacing_zyx) <= distance_mm


def convex_fill(plane: np.ndarray) -> np.ndarray:
    """Each connected part of a 2D mask replaced by its convex hull (a cortex ring broken by
    destruction still outlines the whole bone)."""
    from scipy.spatial import ConvexHull, Delaunay, QhullError

    filled = plane.copy()
    parts, count = ndimage.label(plane, structure=np.ones((3, 3), bool))
    rows, columns = np.indices(plane.shape)
    for part in range(1, count + 1):
        points = np.argwhere(parts == part)
        if len(points) < 4:
            continue
        try:
            hull = Delaunay(points[ConvexHull(points).vertices])
        except QhullError:   # collinear pixels: a line has no inside
            continue
        low, high = points.min(axis=0), points.max(axis=0) + 1
        box = (slice(low[0], high[0]), slice(low[1], high[1]))
        candidates = np.stack([rows[box].ravel(), columns[box].ravel()], axis=1)
        filled[box] |= (hull.find_simplex(candidates) >= 0).reshape(high - low)
    return filled


def bone_outline(ct_hu: np.ndarray, dense_hu: float) -> np.ndarray:
    """Per axial slice, the inside of each bone: the convex hull of its dense cortex."""
    return np.stack([convex_fill(plane) for plane in ct_hu >= dense_hu])


def fill_slices(mask: np.ndarray) -> np.ndarray:
    """Holes closed slice by slice, as an annotator's outline would."""
    return np.stack([ndimage.binary_fill_holes(plane) for plane in mask])


def keep_touching(mask: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The 3D connected parts of `mask` that touch `region`."""
    parts, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    touching = np.unique(parts[region & mask])
    return np.isin(parts, touching[touching > 0])


def uptake_levels(suv: np.ndarray, means: np.ndarray, touching: np.ndarray, rough: np.ndarray,
                  reach: np.ndarray, body: np.ndarray) -> tuple[float, float]:
    """The surroundings' SUV (median of body voxels beyond reach of the rough input, or the crop's
    colder body voxels when there are none) and the hottest piece's mean SUV at the rough input."""
    surroundings = suv[body & ~reach]
    if surroundings.size < 10:
        surroundings = suv[body & ~rough] if (body & ~rough).sum() >= 10 else suv[body]
        background = float(np.percentile(surroundings, 25)) if surroundings.size else 0.0
    else:
        background = float(np.median(surroundings))
    peak = float(means[touching].max()) if touching.any() else background
    return background, peak


def refine(clusters: np.ndarray, ct_hu: np.ndarray, suv: np.ndarray, rough: np.ndarray, body: np.ndarray,
           spacing_zyx, settings: RefinementSettings = RefinementSettings()) -> Refined:
    """Proposed A and B (boolean, on the crop) from the crop's clusters and the rough input."""
    pieces, count = cluster_pieces(clusters)
    suv_means, hu_means = piece_means(pieces, count, suv), piece_means(pieces, count, ct_hu)
    reach = within_mm(rough, settings.reach_mm, spacing_zyx) & body
    touching = pieces_where(pieces, count, rough & body) > 0
    touching[0] = False
    background, peak = uptake_levels(suv, suv_means, touching, rough, reach, body)
    empty = np.zeros(rough.shape, bool)
    if peak < settings.minimum_contrast * max(background, 1e-3):
        return Refined(empty, empty.copy(), background, peak, empty.copy())
    uptake = (suv_means - background) / (peak - background)
    active_pieces = touching & (uptake >= settings.active_uptake)
    active = np.isin(pieces, np.flatnonzero(active_pieces))
    neighbours = pieces_where(pieces, count, ndimage.binary_dilation(active, SIX_NEIGHBOURS) & ~active) > 0
    involved_pieces = (neighbours & (uptake >= settings.involvement_uptake) & (hu_means < settings.soft_tissue_hu)
                       & (pieces_where(pieces, count, reach) >= 0.5))
    involved_pieces[0] = False
    whole_a = active | np.isin(pieces, np.flatnonzero(involved_pieces))
    label_a = fill_slices(keep_touching(whole_a & reach, rough)) & body
    core = np.isin(pieces, np.flatnonzero(active_pieces & (uptake >= settings.core_uptake)))
    label_b = fill_slices(core & reach & bone_outline(ct_hu, settings.dense_bone_hu))
    return Refined(label_a, label_b, background, peak, whole_a)
