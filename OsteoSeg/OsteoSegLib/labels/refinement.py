"""From clusters to the two labels, in 3D: the rough input seeds a flood fill over the clusters, and
each philosophy chooses only which clusters may seed it.

The core (after Curto-Vilalta et al., in 3D): the rough input is split into its connected components;
within each, the clusters present seed a flood fill over the connected voxels of the same cluster in
the crop (a "piece": a connected part of one cluster); a fill larger than `max_growth` times the
components it touches is dropped (it ran off into normal tissue). An outline drawn on every second or
third axial slice counts as the volume it spans (gaps of up to `gap_slices` slices are bridged). A
proposal is the union of the kept fills, whole: no voxel is kept or dropped on its own value.

Which clusters may seed, decided per cluster from its mean inside the rough input, against the case's
own surroundings (the body voxels of the crop at least `background_mm` from the rough input):
- PET-high: a cluster hotter than `hot_percentile` of the surroundings' SUV, and at least
  `minimum_contrast` times their median (none: no proposal).
- Proposed A (high sensitivity): the PET-high clusters, plus the clusters beside them inside the rough
  input that are warmer than `warm_percentile` of the surroundings (the involved tissue around).
- Proposed B (high specificity): the PET-high clusters that lie in bone and have lost its density: most
  of the cluster's rough-input voxels inside the outline of the case's bone clusters (clusters of mean
  density >= `bone_hu`; per slice, the convex hull of each of their parts, so a cortex broken by
  destruction still outlines its bone), with a mean density below the bone clusters' own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["RefinementSettings", "Refined", "refine"]

SIX_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)
ALL_NEIGHBOURS = np.ones((3, 3, 3), bool)


@dataclass(frozen=True)
class RefinementSettings:
    """Which clusters seed each proposal (compared with the case's own surroundings) and how far a fill may grow."""

    background_mm: float = 10.0       # the surroundings: body voxels at least this far from the rough input
    hot_percentile: float = 95.0      # PET-high: a cluster's mean SUV above this percentile of the surroundings
    warm_percentile: float = 75.0     # A: a cluster beside the PET-high ones, warmer than this percentile
    minimum_contrast: float = 1.5     # and PET-high only when this many times the surroundings' median SUV
    max_growth: float = 2.0           # a fill larger than this times the components it touches is dropped
    gap_slices: int = 2               # missing axial slices bridged between the parts of a rough outline
    bone_hu: float = 400.0            # B: a cluster this dense on average is bone (whose outline B must lie in)

    def __post_init__(self):
        if not (0 <= self.warm_percentile <= 100 and 0 <= self.hot_percentile <= 100):
            raise ValueError("the percentiles of the refinement must lie in 0..100")
        if self.max_growth <= 0 or self.background_mm < 0 or self.gap_slices < 0:
            raise ValueError("max_growth must be positive, background_mm and gap_slices not negative")


@dataclass
class Refined:
    """The two proposals on the crop, the levels they were chosen with, and the seeding clusters."""

    label_a: np.ndarray
    label_b: np.ndarray
    background_suv: float     # the surroundings' median SUV
    peak_suv: float           # the hottest seeding cluster's mean SUV inside the rough input
    seeds_a: np.ndarray       # cluster numbers that seeded A
    seeds_b: np.ndarray       # cluster numbers that seeded B


def cluster_pieces(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Each cluster's connected parts (6-connected), numbered 1..n over the whole crop."""
    clusters = np.unique(labels)
    if clusters.size == labels.size:   # one cluster per voxel: each voxel is its own piece
        return (np.searchsorted(clusters, labels) + 1).astype(np.int64), int(labels.size)
    pieces = np.zeros(labels.shape, np.int64)
    count = 0
    for cluster in clusters:
        parts, found = ndimage.label(labels == cluster, structure=SIX_NEIGHBOURS)
        pieces[parts > 0] = parts[parts > 0] + count
        count += found
    return pieces, count


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


def cluster_means(clusters: np.ndarray, where: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """Each cluster's mean of `values` over its voxels in `where` (NaN for a cluster absent there)."""
    sums = np.bincount(clusters[where], weights=values[where].astype(np.float64), minlength=count)
    sizes = np.bincount(clusters[where], minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / sizes


def surroundings(suv: np.ndarray, rough: np.ndarray, body: np.ndarray, distance_mm: float,
                 spacing_zyx) -> np.ndarray:
    """The SUV of the case's surroundings: body voxels at least `distance_mm` from the rough input (all
    body voxels outside it when the crop has too few of those, all body voxels as a last resort)."""
    far = ndimage.distance_transform_edt(~rough, sampling=spacing_zyx) >= distance_mm
    for region in (far & body, ~rough & body, body):
        if region.sum() >= 10:
            return suv[region]
    return suv.ravel()


def pet_high(clusters, suv, rough, body, count, background, settings: RefinementSettings) -> np.ndarray:
    """Per cluster: hotter inside the rough input than the surroundings (both tests, see the module)."""
    means = cluster_means(clusters, rough & body, suv, count)
    level = max(float(np.percentile(background, settings.hot_percentile)),
                settings.minimum_contrast * max(float(np.median(background)), 1e-3))
    return np.nan_to_num(means, nan=-np.inf) > level


def beside(clusters, chosen: np.ndarray, rough: np.ndarray, count: int) -> np.ndarray:
    """Per cluster: has voxels in the rough input touching (6-connected) those of the chosen clusters there."""
    inside = chosen[clusters] & rough
    ring = ndimage.binary_dilation(inside, SIX_NEIGHBOURS) & rough & ~inside
    return np.bincount(clusters[ring], minlength=count) > 0


def lost_bone(clusters, ct_hu, rough, body, count, settings: RefinementSettings) -> np.ndarray:
    """Per cluster: most of its rough-input voxels inside the bone clusters' outline, with a mean
    density below theirs."""
    density = cluster_means(clusters, body, ct_hu, count)
    bone = np.nan_to_num(density, nan=-np.inf) >= settings.bone_hu
    if not bone.any():
        return np.zeros(count, bool)
    bone_voxels = bone[clusters] & body
    outline = np.stack([convex_fill(plane) for plane in bone_voxels])
    in_outline = cluster_means(clusters, rough & body, outline.astype(np.float64), count)
    bone_density = float(ct_hu[bone_voxels].mean())
    return (np.nan_to_num(in_outline) > 0.5) & (np.nan_to_num(density, nan=np.inf) < bone_density)


def bridged(rough: np.ndarray, gap_slices: int) -> np.ndarray:
    """The rough input with gaps of up to `gap_slices` missing axial slices filled where the slices on
    both sides overlap (an outline drawn on every second or third slice stands for the volume it spans)."""
    if gap_slices < 1:
        return rough
    line = np.ones((2 * ((gap_slices + 1) // 2) + 1, 1, 1), bool)
    padded = np.pad(rough, ((len(line), len(line)), (0, 0), (0, 0)))
    return ndimage.binary_closing(padded, line)[len(line):-len(line)] | rough


def flood_fill(pieces: np.ndarray, piece_cluster: np.ndarray, seeds: np.ndarray, components: np.ndarray,
               max_growth: float) -> np.ndarray:
    """The union of the pieces of seeding clusters that touch the rough input's components, each
    dropped when larger than `max_growth` times the components it touches together."""
    marked, stride = components > 0, int(components.max()) + 1
    codes = np.unique(pieces[marked] * stride + components[marked])                    # sorted by piece
    pairs = np.stack([codes // stride, codes % stride], axis=1)
    pairs = pairs[seeds[piece_cluster[pairs[:, 0]]]]
    if not len(pairs):
        return np.zeros(pieces.shape, bool)
    component_sizes = np.bincount(components.ravel())
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    touched = np.add.reduceat(component_sizes[pairs[:, 1]], starts)
    sizes = np.bincount(pieces.ravel(), minlength=int(pieces.max()) + 1)
    filled = pairs[starts, 0]
    keep = np.zeros(sizes.size, bool)
    keep[filled[sizes[filled] <= max_growth * touched]] = True
    return keep[pieces]


def refine(clusters: np.ndarray, ct_hu: np.ndarray, suv: np.ndarray, rough: np.ndarray, body: np.ndarray,
           spacing_zyx, settings: RefinementSettings = RefinementSettings()) -> Refined:
    """Proposed A and B (boolean, on the crop) from the crop's clusters (0..n-1) and the rough input."""
    clusters = np.asarray(clusters, np.int64)
    count = int(clusters.max()) + 1
    background = surroundings(suv, rough, body, settings.background_mm, spacing_zyx)
    hot = pet_high(clusters, suv, rough, body, count, background, settings)
    median = float(np.median(background))
    empty = np.zeros(rough.shape, bool)
    if not hot.any():
        return Refined(empty, empty.copy(), median, median, np.flatnonzero(hot), np.flatnonzero(hot))
    warm = cluster_means(clusters, rough & body, suv, count) > np.percentile(background, settings.warm_percentile)
    seeds_a = hot | (beside(clusters, hot, rough, count) & warm)
    seeds_b = hot & lost_bone(clusters, ct_hu, rough, body, count, settings)
    pieces, _ = cluster_pieces(clusters)
    piece_cluster = np.zeros(int(pieces.max()) + 1, np.int64)
    piece_cluster[pieces.ravel()] = clusters.ravel()
    components, _ = ndimage.label(bridged(rough, settings.gap_slices), structure=ALL_NEIGHBOURS)
    label_a = flood_fill(pieces, piece_cluster, seeds_a, components, settings.max_growth)
    label_b = flood_fill(pieces, piece_cluster, seeds_b, components, settings.max_growth)
    peak = float(np.nanmax(cluster_means(clusters, rough & body, suv, count)[hot]))
    return Refined(label_a, label_b, median, peak, np.flatnonzero(seeds_a), np.flatnonzero(seeds_b))
