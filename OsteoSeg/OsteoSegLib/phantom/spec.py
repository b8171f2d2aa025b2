"""What a phantom case is: grid sizes, physical settings, and the random draw of one case's anatomy.

Every random choice of a case is made here, from the case's own seed, so a case is fully described
by its `CaseSpec` (recorded in cohort.json) and the generators downstream are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import OsteoSegError


@dataclass(frozen=True)
class GridSpec:
    """A CT grid: voxels along x, y, z (I, J, K) and spacing in mm."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        return tuple(n * s for n, s in zip(self.shape, self.spacing, strict=True))


# `small` is for tests and the demo; `full` is a clinical CT grid (two thighs in the field of view).
SIZES = {
    "small": GridSpec(shape=(96, 96, 40), spacing=(2.0, 2.0, 3.0)),
    "full": GridSpec(shape=(512, 512, 160), spacing=(0.8, 0.8, 2.5)),
}
MINIMUM_SHAPE = (32, 32, 8)


@dataclass(frozen=True)
class PhantomSettings:
    """Physical settings shared by every case of a cohort (recorded in cohort.json)."""

    grid: GridSpec = SIZES["small"]
    pet_spacing_mm: tuple[float, float, float] = (4.0, 4.0, 4.0)
    pet_fwhm_mm: float = 6.5              # scanner point-spread function
    pet_noise_cov: float = 0.12           # coefficient of variation at SUV 1; scales with sqrt(counts)
    ct_noise_hu: float = 18.0             # standard deviation of CT noise
    max_misalignment_mm: float = 4.0      # largest PET translation (0 = perfectly aligned PET)
    max_misalignment_deg: float = 2.0     # largest PET rotation about each axis
    no_lesion_probability: float = 0.1
    implant_probability: float = 0.2
    healed_fracture_probability: float = 0.3
    noninfectious_uptake_probability: float = 0.35


def validate_grid(shape, spacing) -> GridSpec:
    """Refuse grids that are negative, too small or of the wrong rank, before anything is written."""
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(s) for s in spacing)
    if len(shape) != 3 or len(spacing) != 3:
        raise OsteoSegError(f"a grid needs 3 sizes and 3 spacings, got {shape} and {spacing}")
    if any(n < m for n, m in zip(shape, MINIMUM_SHAPE, strict=True)):
        raise OsteoSegError(f"grid {shape} is too small: at least {MINIMUM_SHAPE} voxels (x, y, z)")
    if any(not s > 0 for s in spacing):
        raise OsteoSegError(f"voxel spacing must be positive, got {spacing}")
    return GridSpec(shape, spacing)


@dataclass
class Limb:
    """A thigh-like limb: elliptical cross-section with a layer of fat, muscle, and one long bone."""

    center_mm: tuple[float, float]        # limb axis in the axial plane
    semi_axes_mm: tuple[float, float]     # body ellipse
    fat_mm: float                         # subcutaneous fat thickness
    bone_offset_mm: tuple[float, float]   # bone axis relative to the limb axis
    bone_tilt: tuple[float, float]        # bone axis drift in mm per mm of z
    bone_radius_mm: float                 # outer cortical radius
    cortex_mm: float                      # cortical thickness
    cortex_hu: float
    marrow_hu: float


@dataclass
class Lesion:
    """Osteomyelitis on the cortex of one limb's bone at height z, angle phi."""

    limb: int
    z_mm: float
    phi: float
    radius_mm: float                      # in-plane radius of the osteolytic zone
    length_mm: float                      # half-length along the bone
    suv_peak: float                       # infection core uptake, 4-12
    rim_suv: float                        # inflamed rim (edema) uptake, 2-3
    abscess: bool
    abscess_radius_mm: float
    sequestrum: bool
    marrow_spread_mm: float               # extra marrow involvement beyond the osteolytic zone
    edema_mm: float                       # soft-tissue edema margin around the lesion


@dataclass
class Confounder:
    """Something that mimics infection in one modality only."""

    kind: str                             # "healed_fracture" (CT only) or "noninfectious_uptake" (PET only)
    limb: int
    z_mm: float
    phi: float
    size_mm: float
    suv: float = 0.0


@dataclass
class CaseSpec:
    """Everything random about one case."""

    case_id: str
    seed: int
    limbs: list[Limb]
    lesion: Lesion | None
    confounders: list[Confounder] = field(default_factory=list)
    implant: bool = False
    pet_origin_shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    misalignment_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    misalignment_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    annotator_seed: int = 0


def draw_case(case_id: str, seed: int, settings: PhantomSettings) -> CaseSpec:
    """Draw one case's anatomy, lesion, confounders and PET geometry from its own seed."""
    rng = np.random.default_rng(seed)
    grid = settings.grid
    extent = np.array(grid.extent_mm)
    # One limb when the field of view is narrow, both thighs when it is wide (a clinical grid).
    two_limbs = extent[0] >= 300
    scale = 1.0 if not two_limbs else 1.1
    half_width = extent[0] / 2
    centers = [(-0.5 * half_width + rng.uniform(-8, 8), rng.uniform(-8, 8)),
               (0.5 * half_width + rng.uniform(-8, 8), rng.uniform(-8, 8))] if two_limbs else \
              [(rng.uniform(-6, 6), rng.uniform(-6, 6))]
    limb_size = min(extent[0] / (4.4 if two_limbs else 2.6), extent[1] / 2.6)
    limbs = []
    for center in centers:
        a = limb_size * rng.uniform(0.9, 1.0) * scale
        limbs.append(Limb(
            center_mm=tuple(float(c) for c in center),
            semi_axes_mm=(float(a), float(a * rng.uniform(0.8, 0.95))),
            fat_mm=float(rng.uniform(0.1, 0.2) * a),
            bone_offset_mm=(float(rng.uniform(-0.15, 0.15) * a), float(rng.uniform(-0.1, 0.2) * a)),
            bone_tilt=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
            bone_radius_mm=float(rng.uniform(0.2, 0.25) * a),
            cortex_mm=float(rng.uniform(0.3, 0.4) * rng.uniform(0.2, 0.25) * a),
            cortex_hu=float(rng.uniform(1100, 1700)),
            marrow_hu=float(rng.uniform(250, 350)),
        ))

    z_half = extent[2] / 2
    lesion = None
    if rng.uniform() >= settings.no_lesion_probability:
        bone_radius = limbs[0].bone_radius_mm
        lesion = Lesion(
            limb=int(rng.integers(len(limbs))),
            z_mm=float(rng.uniform(-0.35, 0.35) * z_half),
            phi=float(rng.uniform(0, 2 * np.pi)),
            radius_mm=float(rng.uniform(0.8, 1.1) * bone_radius),
            length_mm=float(rng.uniform(0.25, 0.4) * z_half),
            suv_peak=float(rng.uniform(4, 12)),
            rim_suv=float(rng.uniform(2, 3)),
            abscess=bool(rng.uniform() < 0.6),
            abscess_radius_mm=float(rng.uniform(0.4, 0.7) * bone_radius),
            sequestrum=bool(rng.uniform() < 0.5),
            marrow_spread_mm=float(rng.uniform(0.03, 0.12) * z_half),
            edema_mm=float(rng.uniform(0.15, 0.3) * bone_radius),
        )

    confounders = []
    for kind, probability in (("healed_fracture", settings.healed_fracture_probability),
                              ("noninfectious_uptake", settings.noninfectious_uptake_probability)):
        if rng.uniform() < probability:
            z = _away_from(lesion, rng, z_half)
            confounders.append(Confounder(
                kind=kind, limb=int(rng.integers(len(limbs))), z_mm=z, phi=float(rng.uniform(0, 2 * np.pi)),
                size_mm=float(rng.uniform(0.4, 0.7) * limbs[0].bone_radius_mm),
                suv=float(rng.uniform(3, 5)) if kind == "noninfectious_uptake" else 0.0))

    def uniform3(limit):
        return tuple(float(v) for v in rng.uniform(-limit, limit, 3))

    return CaseSpec(
        case_id=case_id, seed=int(seed), limbs=limbs, lesion=lesion, confounders=confounders,
        implant=bool(rng.uniform() < settings.implant_probability),
        pet_origin_shift_mm=tuple(float(v) for v in rng.uniform(0, 1, 3) * np.array(settings.pet_spacing_mm)),
        misalignment_deg=uniform3(settings.max_misalignment_deg),
        misalignment_mm=uniform3(settings.max_misalignment_mm),
        annotator_seed=int(rng.integers(2**31)),
    )


def _away_from(lesion: Lesion | None, rng: np.random.Generator, z_half: float) -> float:
    """A height for a confounder that does not overlap the lesion's height range."""
    for _ in range(50):
        z = float(rng.uniform(-0.7, 0.7) * z_half)
        if lesion is None or abs(z - lesion.z_mm) > lesion.length_mm + lesion.marrow_spread_mm + 0.15 * z_half:
            return z
    return float(np.sign(-(lesion.z_mm or 1.0)) * 0.75 * z_half)
