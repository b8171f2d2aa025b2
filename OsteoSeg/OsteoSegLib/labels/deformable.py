"""Deformable registration for label transfer: a cubic B-spline on top of a rigid start, Mattes mutual
information (so it works across modalities), limited to the region around the label, with the
figures that say whether to trust it (folding of the deformation, displacement at the label)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..alignment.registration import one_itk_thread
from ..errors import OsteoSegError

# Control points this far apart (mm): smooth enough that a lesion is moved, not reshaped out of
# existence, and few enough parameters for a laptop CPU. Chosen on phantom cases (seed 7), as were the
# metrics: for CT to CT, correlation found a known deformation to 0.4-0.8 mm where Mattes MI stalled
# after 4 iterations (4.2 mm left); Mattes MI is kept for other modalities.
GRID_SPACING_MM = 30.0
# The two resolution levels (mm per voxel, at least the image's own): a 2 mm CT is solved at quarter
# then half resolution; finer added time, not accuracy, on the phantom. One shrink factor serves all
# axes (from the finest spacing), so a thick-slice CT (0.98 x 0.98 x 3.27 mm) is solved at about 26
# then 13 mm along z.
LEVELS_MM = (8.0, 4.0)
REGION_MARGIN_MM = 30.0      # the deformation is solved in the label's box plus this margin
MAX_DISPLACEMENT_MM = 25.0   # beyond this at the label, the deformable step diverged
MAX_FOLDING_FRACTION = 0.001  # share of the region's voxels where the deformation folds (Jacobian <= 0)
RIGID_ONLY_ADVICE = 'transfer rigid only (--rigid-only; in Slicer: Registration "rigid only")'
SAMPLING_SEED = 1


@dataclass
class DeformableResult:
    """A B-spline deformation on top of a rigid start, and its quality figures."""

    transform: sitk.CompositeTransform   # target (fixed) points to source (moving) points
    metric: str                          # correlation or mattes
    metric_rigid: float                  # the metric at the rigid start (lower is better)
    metric_deformable: float
    folding_fraction: float              # share of the region's voxels with Jacobian determinant <= 0
    displacement_mean_mm: float          # the deformable part's displacement over the label
    displacement_max_mm: float
    iterations: int

    @property
    def improved(self) -> bool:
        """Whether the deformation matches the images better than the rigid start (at full resolution:
        a deformation fitted at coarser levels can match worse there, e.g. when nothing deformed)."""
        return self.metric_deformable < self.metric_rigid


def label_region(label_on_target: np.ndarray, spacing_xyz, margin_mm: float = REGION_MARGIN_MM,
                 ) -> tuple[slice, ...]:
    """(z, y, x) index slices of the label's bounding box plus `margin_mm`, within the target: where the
    deformation is solved (elsewhere the rigid answer stands)."""
    indices = np.argwhere(label_on_target)
    pad = np.ceil(margin_mm / np.array(tuple(reversed(spacing_xyz)))).astype(int)
    low = np.maximum(indices.min(axis=0) - pad, 0)
    high = np.minimum(indices.max(axis=0) + pad + 1, np.array(label_on_target.shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _bspline_start(region: sitk.Image, grid_spacing_mm: float) -> sitk.BSplineTransform:
    extent = np.array(region.GetSize()) * np.array(region.GetSpacing())
    mesh = [max(1, int(round(e / grid_spacing_mm))) for e in extent]
    return sitk.BSplineTransformInitializer(region, mesh, order=3)


def shrink_factors(image: sitk.Image) -> list[int]:
    """Shrink factors that bring the image's finest voxel size to each of LEVELS_MM (at least 1)."""
    finest = min(image.GetSpacing())
    return [max(1, int(round(level / finest))) for level in LEVELS_MM]


def _metric_method(mask: sitk.Image, metric: str, bins: int, sampling: float) -> sitk.ImageRegistrationMethod:
    """The registration method with its metric on the masked fixed voxels, regularly sampled."""
    method = sitk.ImageRegistrationMethod()
    if metric == "correlation":
        method.SetMetricAsCorrelation()
    else:
        method.SetMetricAsMattesMutualInformation(bins)
    method.SetMetricFixedMask(mask)
    method.SetMetricSamplingStrategy(method.REGULAR)
    method.SetMetricSamplingPercentage(sampling, SAMPLING_SEED)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def _metric(fixed, moving, mask, transform, metric, bins, sampling) -> float:
    method = _metric_method(mask, metric, bins, sampling)
    method.SetInitialTransform(transform, inPlace=False)
    return float(method.MetricEvaluate(fixed, moving))


@one_itk_thread
def register_deformable(fixed: sitk.Image, moving: sitk.Image, rigid: sitk.Transform, region_mask: sitk.Image,
                        label_in_region: np.ndarray, *, metric: str = "mattes", case: str | None = None,
                        grid_spacing_mm: float = GRID_SPACING_MM, bins: int = 16, sampling: float = 0.25,
                        iterations: int = 100) -> DeformableResult:
    """B-spline refinement of `rigid` (fixed = target, moving = source, both already windowed for the
    metric), solved on `region_mask` (uint8, on the part of the target grid that `label_region` gives,
    where `label_in_region` is the label) with `metric` (correlation for CT to CT, Mattes MI across
    modalities): L-BFGS-B at 8 then 4 mm voxels (`shrink_factors`). Refuses a deformation that folds or
    runs off (the message names `case`); the same inputs give the same answer (fixed sampling, one ITK
    thread)."""
    bspline = _bspline_start(region_mask, grid_spacing_mm)
    method = _metric_method(region_mask, metric, bins, sampling)
    # A tight cost tolerance: with L-BFGS-B's usual 1e7 the optimiser stopped after 4 iterations.
    method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-8, numberOfIterations=iterations,
                                maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=10 * iterations,
                                costFunctionConvergenceFactor=1e1)
    shrink = shrink_factors(fixed)
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel([float(f - 1) for f in shrink])
    method.SetMovingInitialTransform(rigid)
    method.SetInitialTransform(bspline, inPlace=True)
    before = _metric(fixed, moving, region_mask, rigid, metric, bins, sampling)
    try:
        method.Execute(fixed, moving)
    except RuntimeError as error:
        raise OsteoSegError(f"deformable registration failed ({str(error).strip().splitlines()[-1]}); "
                            + RIGID_ONLY_ADVICE, case=case) from None
    transform = sitk.CompositeTransform([rigid, bspline])   # applied last-added first: rigid(bspline(x))
    after = _metric(fixed, moving, region_mask, transform, metric, bins, sampling)
    field = displacement_field(bspline, region_mask)   # sampled once for both figures
    folding = folded_share(field, region_mask)
    mean_mm, max_mm = displacement_lengths(field, label_in_region)
    result = DeformableResult(transform, metric, before, after, folding, mean_mm, max_mm,
                              method.GetOptimizerIteration())
    check_deformation(result, case)
    return result


def displacement_field(deformation: sitk.Transform, region: sitk.Image) -> np.ndarray:
    """(z, y, x, 3) displacement (mm; x, y, z components) of `deformation` at the region's voxels."""
    field = sitk.TransformToDisplacementField(deformation, sitk.sitkVectorFloat64, region.GetSize(),
                                              region.GetOrigin(), region.GetSpacing(), region.GetDirection())
    return sitk.GetArrayFromImage(field)


def jacobian_determinant(displacement: np.ndarray, spacing_xyz, direction=None) -> np.ndarray:
    """det(I + grad u) at each voxel of a (z, y, x, 3) displacement field (mm, physical x, y, z
    components) on a grid with this spacing and direction: below 0 the mapping folds. (SimpleITK's
    DisplacementFieldJacobianDeterminant gave values near 0, not 1, for near-identity fields in this
    version, so the determinant is taken here.)"""
    spacing_zyx = tuple(reversed(spacing_xyz))
    along_axes = np.empty(displacement.shape[:3] + (3, 3))
    for component in range(3):   # d u_component / d (mm along the grid's x, y, z axes)
        d_z, d_y, d_x = np.gradient(displacement[..., component], *spacing_zyx)
        along_axes[..., component, :] = np.stack([d_x, d_y, d_z], axis=-1)
    # The grid's axes point along the direction matrix's columns: the physical gradient is G D^T.
    axes = np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)
    return np.linalg.det(along_axes @ axes.T + np.eye(3))


def folding_fraction(deformation: sitk.Transform, region: sitk.Image) -> float:
    """Share of the region's voxels where the deformation's Jacobian determinant is <= 0 (it folds:
    neighbouring points swap places, which no anatomy does)."""
    return folded_share(displacement_field(deformation, region), region)


def folded_share(field: np.ndarray, region: sitk.Image) -> float:
    """`folding_fraction` of a displacement field already sampled on the region's grid."""
    return float(np.mean(jacobian_determinant(field, region.GetSpacing(), region.GetDirection()) <= 0))


def displacement_at(deformation: sitk.Transform, region: sitk.Image, label_in_region: np.ndarray,
                    ) -> tuple[float, float]:
    """Mean and largest length (mm) of the deformation's displacement over the label's voxels
    (`label_in_region`: (z, y, x) bool on the region's grid)."""
    return displacement_lengths(displacement_field(deformation, region), label_in_region)


def displacement_lengths(field: np.ndarray, label_in_region: np.ndarray) -> tuple[float, float]:
    """`displacement_at` of a displacement field already sampled on the region's grid."""
    lengths = np.linalg.norm(field, axis=-1)
    values = lengths[label_in_region] if label_in_region.any() else lengths.ravel()
    return float(values.mean()), float(values.max())


def check_deformation(result: DeformableResult, case: str | None) -> None:
    """Refuse a deformation that folds or moves the label implausibly far: either means the metric
    was fooled, and the warped label would be wrong in a way nobody sees."""
    if result.folding_fraction > MAX_FOLDING_FRACTION:
        raise OsteoSegError(f"the deformable registration folds ({100 * result.folding_fraction:.2f}% of the voxels "
                            f"around the label, limit {100 * MAX_FOLDING_FRACTION:.1f}%); nothing was written; "
                            f"{RIGID_ONLY_ADVICE}, or check that source and target show the same anatomy", case=case)
    if result.displacement_max_mm > MAX_DISPLACEMENT_MM:
        raise OsteoSegError(f"the deformable registration diverged (it moves the label up to "
                            f"{result.displacement_max_mm:.0f} mm beyond the rigid answer, limit "
                            f"{MAX_DISPLACEMENT_MM:.0f} mm); nothing was written: {RIGID_ONLY_ADVICE}", case=case)
