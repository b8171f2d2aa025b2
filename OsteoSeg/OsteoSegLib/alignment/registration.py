"""Rigid PET-to-CT registration (CT fixed, PET moving) by Mattes mutual information, with the checks and
the helpers its benchmark and tests use (TRE, moving an image's geometry, saving a transform)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial, wraps

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..atomic import atomic_path
from ..errors import OsteoSegError
from ..imaging import body_mask, check_overlap, image_corners, resample_onto

METAL_HU = 2500.0
MAX_SHIFT_MM = 30.0        # beyond this a "correction" is a failed registration, not patient motion
MAX_ROTATION_DEG = 15.0
# SimpleITK reads a sampling seed of 0 as "use the wall clock": a fixed non-zero seed makes the
# metric's sample positions, and so the result, the same on every run.
SAMPLING_SEED = 1
SEARCH_STEP_MM, SEARCH_STEPS = 4.0, 3   # coarse translation search: +-12 mm in 4 mm steps
METAL_MARGIN_MM = 15.0   # chosen on phantom implant cases (30 mm lost the z anchor in one)
# The metric sees the PET clipped at this SUV: lesions saturate, so what steers the registration is
# what both modalities show (the body outline, fat against muscle), not uptake the CT has no trace of.
# Unclipped, one hot tumour filling a tight crop drew the optimum 50-110 mm off on real STS scans.
PET_CEILING_SUV = 3.0
# Rounds of re-placing the metric's region on the aligned PET's coverage, and the change (mm,
# anywhere in the CT) below which the answer counts as settled.
REMASK_ROUNDS, REMASK_TOLERANCE_MM = 4, 0.25
# The refinements polish an answer already found, so each step moves no point of the CT more than
# this (mm). With the first descent's fixed step they wandered up to 23 degrees about a limb's axis,
# where a near-cylinder barely changes the metric (the step is normalised, so a tiny gradient still
# takes a whole step), and a phantom case at the STS grids was refused as implausible on the way.
REFINE_STEP_MM = 0.5
AIR_MARGIN_MM = 20.0     # air around the body that the metric samples, so the skin outline counts
# At most this many metric samples per resolution level: PET's 4-5 mm voxels carry no more detail,
# and a full-size CT (512 x 512 x 160) otherwise took 2 minutes on one thread. The real STS crops and
# the phantoms stay below it at the registration's levels (their benchmark figures did not change).
MAX_SAMPLES = 200_000


@dataclass
class RigidResult:
    """The outcome of a rigid PET-to-CT registration."""

    transform: sitk.Euler3DTransform    # maps CT (fixed) points to PET (moving) points
    metric_before: float                # Mattes mutual information (lower is better)
    metric_after: float
    iterations: int
    stop_condition: str


def anatomy_mask(ct: sitk.Image, air_margin_mm: float = AIR_MARGIN_MM) -> np.ndarray:
    """(z, y, x) bool: the body and the air within `air_margin_mm` of it, without metal and its
    nearest streaks (they have no counterpart on PET)."""
    hounsfield = sitk.GetArrayViewFromImage(ct)
    near_body = body_mask(hounsfield)
    if air_margin_mm > 0 and near_body.any():
        body = sitk.GetImageFromArray(near_body.astype(np.uint8))
        body.CopyInformation(ct)
        distance = sitk.SignedMaurerDistanceMap(body, insideIsPositive=False, squaredDistance=False,
                                                useImageSpacing=True)
        near_body = sitk.GetArrayFromImage(distance) <= air_margin_mm
    metal = hounsfield > METAL_HU
    if metal.any():
        spacing = tuple(reversed(ct.GetSpacing()))
        metal = ndimage.distance_transform_edt(~metal, sampling=spacing) <= METAL_MARGIN_MM
    return near_body & ~metal


def pet_coverage(ct: sitk.Image, pet: sitk.Image, margin_mm: float = 0.0,
                 transform: sitk.Transform | None = None) -> np.ndarray:
    """(z, y, x) bool on the CT grid: voxels at least `margin_mm` inside the PET's field of view,
    with the PET placed by `transform`. Drawn by resampling, so oblique grids need no coordinate arrays."""
    field_of_view = sitk.Image(pet.GetSize(), sitk.sitkUInt8) + 1
    field_of_view.CopyInformation(pet)
    trim = [min(int(np.ceil(margin_mm / s)), (n - 1) // 2)
            for s, n in zip(pet.GetSpacing(), pet.GetSize(), strict=True)]
    if any(trim):
        field_of_view = sitk.Crop(field_of_view, trim, trim)
    # A copy, not a view: a view of the temporary resampled image reads freed memory once Python drops
    # the image (all False, or a crash, on a 512 x 512 CT; small grids happened to survive).
    return sitk.GetArrayFromImage(resample_onto(field_of_view, ct, interpolator="nearest", transform=transform)) > 0


def metric_mask(anatomy: np.ndarray, coverage: np.ndarray, ct: sitk.Image) -> sitk.Image:
    """The CT voxels the metric samples: anatomy (`anatomy_mask`) that the PET covers (`pet_coverage`),
    so cropped borders and far air do not steer the registration while the skin outline does."""
    mask = sitk.GetImageFromArray((anatomy & coverage).astype(np.uint8))
    mask.CopyInformation(ct)
    return mask


def _mattes(fixed, moving, transform, bins, sampling, seed, mask) -> float:
    method = _mutual_information_method(mask, bins, sampling, seed, (1,))
    method.SetInitialTransform(transform, inPlace=False)
    return float(method.MetricEvaluate(fixed, moving))


def one_itk_thread(function):
    """Run `function` with ITK on one thread: Mattes MI adds up its histogram from several threads in
    whatever order they finish, so with more than one the same registration ended up to 0.3 degrees
    and 0.05 mm apart from run to run (the registration method's own thread setting does not reach
    the metric)."""
    @wraps(function)
    def on_one_thread(*args, **kwargs):
        threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        try:
            return function(*args, **kwargs)
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    return on_one_thread


@one_itk_thread
def register_rigid(ct: sitk.Image, pet: sitk.Image, *, case: str | None = None, bins: int = 50,
                   sampling: float = 0.5, seed: int = SAMPLING_SEED, margin_mm: float = 0.0,
                   ct_window: tuple[float, float] = (-200.0, 300.0), blur_mm: float = 2.5,
                   learning_rate: float = 2.0, refine_step_mm: float = REFINE_STEP_MM,
                   shrink: tuple[int, ...] = (4, 2),
                   pet_ceiling_suv: float | None = PET_CEILING_SUV,
                   air_margin_mm: float = AIR_MARGIN_MM) -> RigidResult:
    """Rigid PET-to-CT registration, CT fixed and PET moving: Mattes mutual information between the
    PET clipped at `pet_ceiling_suv` and the CT in a soft-tissue window blurred to PET resolution, on
    body voxels and the air next to them, away from metal; a coarse exhaustive translation search,
    then gradient descent at quarter and half CT resolution (finer adds nothing at PET's 4-5 mm
    voxels, and took 5x longer on the real STS crops), then half-resolution refinements with the
    metric's region re-placed on the aligned PET's coverage until the answer holds still. Defaults
    were chosen on phantom cases (seeds 11 and 21) and on the real STS patients
    (`benchmarks/registration.py`). The same inputs always give the same answer."""
    check_overlap(ct, pet, case=case)
    for name, image in (("CT", ct), ("PET", pet)):
        check_spacing(image, name, case)
    # CT seen as PET sees it: a soft-tissue window (fat / muscle / bone contrast) blurred to the
    # PET's resolution, so partial-volume differences do not pull the metric off.
    fixed = sitk.Cast(sitk.Clamp(ct, lowerBound=ct_window[0], upperBound=ct_window[1]), sitk.sitkFloat32)
    if blur_mm > 0:
        fixed = sitk.SmoothingRecursiveGaussian(fixed, blur_mm)
    # Pad the PET with background beyond its field of view: otherwise samples that leave it are
    # dropped, and mutual information rewards shrinking the overlap (the optimiser runs away along
    # the limb, where anatomy barely changes).
    padding = [int(np.ceil(MAX_SHIFT_MM / s)) + 1 for s in pet.GetSpacing()]
    moving = sitk.Cast(pet, sitk.sitkFloat32)
    if pet_ceiling_suv is not None:
        moving = sitk.Clamp(moving, lowerBound=0.0, upperBound=pet_ceiling_suv)
    moving = sitk.ConstantPad(moving, padding, padding, 0.0)
    # A combined PET/CT shares one frame of reference: start from identity about the CT's centre,
    # not from the (different) centres of the two fields of view.
    identity = sitk.Euler3DTransform(ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in ct.GetSize()]))
    anatomy = anatomy_mask(ct, air_margin_mm)
    given_coverage = pet_coverage(ct, pet, margin_mm)
    mask = metric_mask(anatomy, given_coverage, ct)
    descend = partial(_gradient_descent, fixed, moving, bins=bins, sampling=sampling, seed=seed,
                      learning_rate=learning_rate)
    try:
        initial = _coarse_translation_search(fixed, moving, mask, identity, bins, sampling, seed)
        transform, iterations, stop = descend(mask, initial, shrink)
        # The metric must sample the CT that the *aligned* PET covers, not what the PET covered where
        # it started: otherwise the start decides which anatomy is compared at the crop's edges, and
        # a moved PET comes back to a different answer (up to 2.4 mm on real STS crops). So: place
        # the coverage with the result, refine at the finest level, repeat until it holds still.
        for _ in range(REMASK_ROUNDS):
            _check_plausible(transform, case)
            coverage = pet_coverage(ct, pet, margin_mm, transform)
            refined, more, stop = descend(metric_mask(anatomy, coverage, ct), transform, shrink[-1:],
                                          max_step_mm=refine_step_mm)
            iterations += more
            change = largest_displacement(refined, transform, ct)
            transform = refined
            if change < REMASK_TOLERANCE_MM:
                break
    except RuntimeError as error:
        raise OsteoSegError(f"rigid registration failed ({str(error).strip().splitlines()[-1]})", case=case) from None
    _check_plausible(transform, case)
    # Before and after are compared on the same samples: CT the PET covers both as given and as aligned.
    common = metric_mask(anatomy, given_coverage & pet_coverage(ct, pet, margin_mm, transform), ct)
    before = _mattes(fixed, moving, identity, bins, sampling, seed, common)
    after = _mattes(fixed, moving, transform, bins, sampling, seed, common)
    return RigidResult(transform, before, after, iterations, stop)


SPACING_RANGE_MM = (0.01, 50.0)   # beyond this, a header is wrong, not a scanner unusual


def check_spacing(image: sitk.Image, name: str, case: str | None) -> None:
    """Refuse a voxel spacing no CT or PET has: the registration's scales and search steps are in mm."""
    low, high = SPACING_RANGE_MM
    spacing = image.GetSpacing()
    if not all(low <= s <= high for s in spacing):
        raise OsteoSegError(f"the {name}'s voxel spacing {tuple(round(s, 6) for s in spacing)} mm is implausible "
                            f"(expected {low} to {high} mm); check the file's header", case=case)


def _gradient_descent(fixed, moving, mask, start, shrink, *, bins, sampling, seed, learning_rate,
                      max_step_mm: float | None = None) -> tuple[sitk.Euler3DTransform, int, str]:
    """Regular-step gradient descent on Mattes MI from `start`, one level per shrink factor; with
    `max_step_mm`, each step is sized anew so that no point moves further than that (and
    `learning_rate` is not used)."""
    method = _mutual_information_method(mask, bins, sampling, seed, shrink)
    bounded = {} if max_step_mm is None else {"estimateLearningRate": method.EachIteration,
                                              "maximumStepSizeInPhysicalUnits": max_step_mm}
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=learning_rate, minStep=1e-4, numberOfIterations=300,
                                                    gradientMagnitudeTolerance=1e-8, **bounded)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(shrink))
    method.SetSmoothingSigmasPerLevel([float(f - 1) for f in shrink])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(start, inPlace=False)
    found = method.Execute(fixed, moving)
    return (sitk.Euler3DTransform(sitk.CompositeTransform(found).GetNthTransform(0)),
            method.GetOptimizerIteration(), method.GetOptimizerStopConditionDescription())


def largest_displacement(first: sitk.Transform, second: sitk.Transform, image: sitk.Image) -> float:
    """Largest distance (mm) between where two transforms send the corners of an image's box:
    for rigid transforms, the most they disagree anywhere in it."""
    return max(target_registration_error(first, second, corner) for corner in image_corners(image))


def _mutual_information_method(mask, bins: int, sampling: float, seed: int,
                                shrink: tuple[int, ...]) -> sitk.ImageRegistrationMethod:
    """Mattes mutual information on the masked CT voxels, regularly sampled (`sampling` of them, at
    most MAX_SAMPLES per level of `shrink`), linear interpolation."""
    method = sitk.ImageRegistrationMethod()   # one thread: `register_rigid` runs under one_itk_thread
    method.SetMetricFixedMask(mask)
    method.SetMetricAsMattesMutualInformation(bins)
    method.SetMetricSamplingStrategy(method.REGULAR)
    method.SetMetricSamplingPercentagePerLevel(sampling_per_level(mask, shrink, sampling), seed)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def sampling_per_level(mask: sitk.Image, shrink: tuple[int, ...], sampling: float) -> list[float]:
    """The fraction of the masked voxels the metric samples at each level (shrink factor), `sampling`
    or less, so that no level samples more than MAX_SAMPLES."""
    voxels = max(int(np.count_nonzero(sitk.GetArrayViewFromImage(mask))), 1)
    return [min(sampling, MAX_SAMPLES * factor**3 / voxels) for factor in shrink]


def _coarse_translation_search(fixed, moving, mask, initial, bins, sampling, seed) -> sitk.Euler3DTransform:
    """Best translation on a grid within +-SEARCH_STEPS * SEARCH_STEP_MM, on quarter-resolution images:
    a start for the gradient descent that a local optimum near identity cannot trap."""
    method = _mutual_information_method(mask, bins, sampling, seed, (4,))
    method.SetOptimizerAsExhaustive([0, 0, 0] + [SEARCH_STEPS] * 3, stepLength=SEARCH_STEP_MM)
    method.SetOptimizerScales([1.0] * 6)
    method.SetShrinkFactorsPerLevel([4])
    method.SetSmoothingSigmasPerLevel([3.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=False)
    best = method.Execute(fixed, moving)
    return sitk.Euler3DTransform(sitk.CompositeTransform(best).GetNthTransform(0))


def _check_plausible(transform: sitk.Euler3DTransform, case: str | None) -> None:
    """Refuse a correction far beyond patient motion between a CT and its PET: such a result means
    the metric found a wrong optimum, and applying it silently would misplace every lesion."""
    shift = float(np.linalg.norm(transform.GetTranslation()))
    angles = (transform.GetAngleX(), transform.GetAngleY(), transform.GetAngleZ())
    angle = float(np.degrees(max(abs(a) for a in angles)))
    if shift > MAX_SHIFT_MM or angle > MAX_ROTATION_DEG:
        raise OsteoSegError(f"rigid registration ended at an implausible alignment ({shift:.0f} mm, "
                            f"{angle:.0f} degrees; limits {MAX_SHIFT_MM:.0f} mm, {MAX_ROTATION_DEG:.0f} degrees); "
                            "nothing was written. "
                            "Check that CT and PET are of the same patient, or align by resampling", case=case)


def save_transform(transform: sitk.Transform, path) -> None:
    """Write a transform file (.tfm / .h5) atomically, read back before it takes its final name (ITK
    reports a failed write only on its console)."""
    def same_transform(written):
        try:
            again = sitk.ReadTransform(str(written))
            same = np.allclose(again.GetParameters(), transform.GetParameters()) \
                and np.allclose(again.GetFixedParameters(), transform.GetFixedParameters())
        except RuntimeError:
            same = False
        if not same:
            raise OsteoSegError("writing failed: the transform file on disk is incomplete (is the disk full?)",
                                path=path)

    with atomic_path(path, verify=same_transform) as temporary:
        try:
            sitk.WriteTransform(transform, str(temporary))
        except RuntimeError as error:
            raise OsteoSegError(f"cannot write the transform ({str(error).strip().splitlines()[-1]})",
                                path=path) from None


def target_registration_error(found: sitk.Transform, truth: sitk.Transform, point) -> float:
    """Distance (mm) between where two transforms send a point: the TRE at that point."""
    return float(np.linalg.norm(np.subtract(found.TransformPoint(tuple(point)), truth.TransformPoint(tuple(point)))))


def mask_centroid(mask: sitk.Image) -> tuple[float, float, float] | None:
    """Physical centroid (mm) of a mask's non-zero voxels, the usual TRE target; None when empty."""
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
    return statistics.GetCentroid(1) if statistics.HasLabel(1) else None


def move_geometry(image: sitk.Image, transform: sitk.Euler3DTransform) -> sitk.Image:
    """The same voxels with the geometry moved rigidly: what was at physical point x is now at
    transform(x). This is how a patient's motion between CT and PET looks, with no resampling."""
    rotation = np.array(transform.GetMatrix()).reshape(3, 3)
    centre = np.array(transform.GetCenter())
    moved = sitk.Image(image)
    moved.SetOrigin((rotation @ (np.array(image.GetOrigin()) - centre) + centre
                     + np.array(transform.GetTranslation())).tolist())
    moved.SetDirection((rotation @ np.array(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    return moved
