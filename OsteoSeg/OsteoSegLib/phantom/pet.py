"""The phantom's PET scanner: blur by the point-spread function, sample on the PET's own coarser
grid (another origin, optionally a small known rigid misalignment), add count-dependent noise."""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .spec import CaseSpec, PhantomSettings

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def effective_sigma_mm(fwhm_mm: float, voxel_mm) -> list[float]:
    """Gaussian sigma per axis of what a PET voxel sees: the scanner PSF combined with the voxel's
    own box (variance voxel^2 / 12)."""
    psf_sigma = fwhm_mm / FWHM_PER_SIGMA
    return [math.sqrt(psf_sigma**2 + v**2 / 12.0) for v in voxel_mm]


def ct_to_pet_transform(spec: CaseSpec) -> sitk.Euler3DTransform:
    """The rigid transform taking a CT point to where the same anatomy lies in the PET
    (what a PET-to-CT registration with CT fixed should recover), rotating about the grid centre."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter((0.0, 0.0, 0.0))
    transform.SetRotation(*[math.radians(a) for a in spec.misalignment_deg])
    transform.SetTranslation(spec.misalignment_mm)
    return transform


def pet_reference_grid(ct: sitk.Image, spec: CaseSpec, settings: PhantomSettings) -> sitk.Image:
    """An empty PET grid covering the CT's field of view (plus a voxel), with its own spacing and an
    origin that does not coincide with the CT's."""
    spacing = np.array(settings.pet_spacing_mm)
    ct_low = np.array(ct.GetOrigin())
    ct_high = ct_low + (np.array(ct.GetSize()) - 1) * np.array(ct.GetSpacing())
    origin = ct_low - spacing + np.array(spec.pet_origin_shift_mm)
    size = np.ceil((ct_high + spacing - origin) / spacing).astype(int) + 1
    reference = sitk.Image([int(n) for n in size], sitk.sitkFloat32)
    reference.SetSpacing(spacing.tolist())
    reference.SetOrigin(origin.tolist())
    return reference


def correlated_noise(shape, rng: np.random.Generator, sigma_voxels: float = 0.7) -> np.ndarray:
    """Unit-variance noise correlated over about one voxel, as after a reconstruction filter."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_voxels)
    return field / max(float(field.std()), 1e-6)


def simulate_pet(activity: sitk.Image, spec: CaseSpec, settings: PhantomSettings,
                 rng: np.random.Generator) -> tuple[sitk.Image, np.ndarray]:
    """Turn true uptake on the CT grid into a stored PET image (SUVbw, float32, PET grid).

    Also returns the noise-free, aligned PET as seen on the CT grid (what an annotator looks at
    after registration), as a (z, y, x) array.
    """
    sigma = effective_sigma_mm(settings.pet_fwhm_mm, settings.pet_spacing_mm)
    blurred = sitk.SmoothingRecursiveGaussian(activity, sigma)
    seen = sitk.GetArrayFromImage(blurred)
    reference = pet_reference_grid(activity, spec, settings)
    # Resample's transform maps output (PET) points to input (CT) points: the inverse of CT -> PET.
    pet_to_ct = ct_to_pet_transform(spec).GetInverse()
    pet = sitk.Resample(blurred, reference, pet_to_ct, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    clean = sitk.GetArrayFromImage(pet)
    noisy = clean + settings.pet_noise_cov * np.sqrt(np.clip(clean, 0, None)) * correlated_noise(clean.shape, rng)
    result = sitk.GetImageFromArray(np.clip(noisy, 0, None).astype(np.float32))
    result.CopyInformation(pet)
    return result, seen
