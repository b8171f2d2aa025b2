"""The phantom's anatomy on the CT grid: tissue fractions, CT numbers (HU) and FDG uptake (SUV).

Shapes are smooth signed distances turned into fractions over one voxel, so edges carry
partial-volume values as on a real scanner. Arrays are float32 in (z, y, x) = (K, J, I) order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .spec import CaseSpec, Confounder, GridSpec, Lesion, Limb, PhantomSettings

AIR_HU, FAT_HU, MUSCLE_HU, PUS_HU, LYTIC_HU = -1000.0, -100.0, 40.0, 20.0, 80.0
PERIOSTEAL_HU, SEQUESTRUM_HU, CALLUS_HU, METAL_HU = 600.0, 1600.0, 900.0, 3000.0
CT_RANGE_HU = (-1024, 3071)
FAT_SUV, MUSCLE_SUV, CORTEX_SUV, MARROW_SUV = 0.35, 0.75, 0.4, 1.75


@dataclass
class Anatomy:
    """Everything the PET simulator and the annotators need about one case, on the CT grid."""

    ct_hu: np.ndarray            # int16, with noise, metal streaks and clipping
    activity_suv: np.ndarray     # float32 true uptake before the scanner blurs it
    truth: np.ndarray            # bool: true extent of infection
    destruction: np.ndarray      # float32 fraction: CT-visible bone destruction
    edema: np.ndarray            # float32 fraction: reactive soft-tissue edema
    body: np.ndarray             # bool: inside the body


class Coordinates:
    """Physical coordinates (mm, grid centred on 0) broadcastable to the (z, y, x) volume."""

    def __init__(self, grid: GridSpec):
        nx, ny, nz = grid.shape
        sx, sy, sz = grid.spacing
        self.x = ((np.arange(nx, dtype=np.float32) - (nx - 1) / 2) * sx)[None, None, :]
        self.y = ((np.arange(ny, dtype=np.float32) - (ny - 1) / 2) * sy)[None, :, None]
        self.z = ((np.arange(nz, dtype=np.float32) - (nz - 1) / 2) * sz)[:, None, None]
        self.shape = (nz, ny, nx)
        self.edge_mm = float(min(grid.spacing))
        self.spacing_zyx = (sz, sy, sx)

    def crop(self, center_mm, half_extent_mm) -> tuple[tuple[slice, slice, slice], Coordinates]:
        """The index box around a physical point (x, y, z) and the coordinates restricted to it, so
        that a shape is painted only where it can be."""
        box = []
        axes = (self.z, self.y, self.x)
        for axis, centre, half in zip(axes, reversed(center_mm), reversed(half_extent_mm), strict=True):
            values = axis.ravel()
            inside_box = np.flatnonzero(np.abs(values - centre) <= half)
            box.append(slice(int(inside_box[0]), int(inside_box[-1]) + 1) if inside_box.size else slice(0, 0))
        cropped = Coordinates.__new__(Coordinates)
        cropped.z, cropped.y, cropped.x = self.z[box[0]], self.y[:, box[1]], self.x[:, :, box[2]]
        cropped.shape = (cropped.z.shape[0], cropped.y.shape[1], cropped.x.shape[2])
        cropped.edge_mm, cropped.spacing_zyx = self.edge_mm, self.spacing_zyx
        return tuple(box), cropped


def origin_of(grid: GridSpec) -> tuple[float, float, float]:
    """The CT origin (LPS, mm) that centres the grid on the physical origin."""
    return tuple(-(n - 1) / 2 * s for n, s in zip(grid.shape, grid.spacing, strict=True))


def inside(signed_mm, edge_mm: float) -> np.ndarray:
    """Fraction inside a shape from its signed distance (negative inside), ramped over one voxel."""
    return np.clip(0.5 - np.asarray(signed_mm, dtype=np.float32) / edge_mm, 0.0, 1.0).astype(np.float32)


def ellipsoid_distance(c: Coordinates, center, radii) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipsoid."""
    cx, cy, cz = center
    rx, ry, rz = radii
    q = np.sqrt(((c.x - cx) / rx) ** 2 + ((c.y - cy) / ry) ** 2 + ((c.z - cz) / rz) ** 2)
    return (q - 1.0) * min(rx, ry, rz)


def bone_axis(limb: Limb, z):
    """The bone's axis (x, y) at height z: the limb's centre, an offset, and a slight tilt."""
    bx = limb.center_mm[0] + limb.bone_offset_mm[0] + limb.bone_tilt[0] * z
    by = limb.center_mm[1] + limb.bone_offset_mm[1] + limb.bone_tilt[1] * z
    return bx, by


def smooth_noise(shape, sigma_voxels, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian noise correlated over `sigma_voxels`."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_voxels)
    return field / max(float(field.std()), 1e-6)


def lerp(value, target, fraction):
    """Blend `value` towards `target` by `fraction` in place-friendly float32."""
    return value + (np.float32(target) - value) * fraction


class _Builder:
    """Accumulates CT numbers and uptake tissue by tissue, in painting order."""

    def __init__(self, spec: CaseSpec, settings: PhantomSettings):
        self.spec = spec
        self.settings = settings
        self.c = Coordinates(settings.grid)
        self.rng = np.random.default_rng(spec.seed + 1)
        shape = self.c.shape
        self.hu = np.full(shape, AIR_HU, np.float32)
        self.suv = np.zeros(shape, np.float32)
        self.body = np.zeros(shape, np.float32)
        self.bone = np.zeros(shape, np.float32)
        self.marrow = np.zeros(shape, np.float32)
        self.truth = np.zeros(shape, np.float32)
        self.destruction = np.zeros(shape, np.float32)
        self.edema = np.zeros(shape, np.float32)

    # -- normal anatomy --------------------------------------------------------------------------
    def limb(self, limb: Limb) -> None:
        reach = 1.1 * max(limb.semi_axes_mm) + 3 * self.c.edge_mm
        box, c = self.c.crop((*limb.center_mm, 0.0), (reach, reach, np.inf))
        e = c.edge_mm
        taper = 1.0 + 0.08 * c.z / max(float(np.abs(c.z).max()), 1.0)
        a, b = limb.semi_axes_mm[0] * taper, limb.semi_axes_mm[1] * taper
        r = np.sqrt(((c.x - limb.center_mm[0]) / a) ** 2 + ((c.y - limb.center_mm[1]) / b) ** 2)
        body = inside((r - 1.0) * np.minimum(a, b), e)
        muscle = inside((r - 1.0) * np.minimum(a, b) + limb.fat_mm, e)
        bx, by = bone_axis(limb, c.z)
        rb = np.sqrt((c.x - bx) ** 2 + (c.y - by) ** 2)
        bone = inside(rb - limb.bone_radius_mm, e)
        marrow = inside(rb - (limb.bone_radius_mm - limb.cortex_mm), e)
        hu, suv = self.hu[box], self.suv[box]
        hu = lerp(lerp(hu, FAT_HU, body), MUSCLE_HU, muscle)
        self.hu[box] = lerp(lerp(hu, limb.cortex_hu, bone), limb.marrow_hu, marrow)
        suv = lerp(lerp(suv, FAT_SUV, body), MUSCLE_SUV, muscle)
        self.suv[box] = lerp(lerp(suv, CORTEX_SUV, bone), MARROW_SUV, marrow)
        for total, part in ((self.body, body), (self.bone, bone), (self.marrow, marrow)):
            total[box] = np.maximum(total[box], part)

    # -- infection -------------------------------------------------------------------------------
    def lesion(self, lesion: Lesion) -> None:
        limb = self.spec.limbs[lesion.limb]
        radius = limb.bone_radius_mm
        bx, by = bone_axis(limb, lesion.z_mm)
        ux, uy = np.cos(lesion.phi), np.sin(lesion.phi)
        z_reach = 1.3 * lesion.length_mm + lesion.marrow_spread_mm + lesion.edema_mm + lesion.abscess_radius_mm
        reach = (2 * radius + lesion.radius_mm + 2.5 * lesion.abscess_radius_mm + lesion.edema_mm
                 + 0.1 * z_reach + 5 * self.c.edge_mm)
        box, c = self.c.crop((bx, by, lesion.z_mm), (reach, reach, z_reach + 5 * self.c.edge_mm))
        e, rng = c.edge_mm, self.rng
        bone, marrow, body, hu, suv = (a[box] for a in (self.bone, self.marrow, self.body, self.hu, self.suv))
        texture = smooth_noise(c.shape, 3.0 / np.array(c.spacing_zyx), rng)
        # Osteolytic zone: an irregular ellipsoid centred just inside the cortex.
        centre = (bx + 0.4 * radius * ux, by + 0.4 * radius * uy, lesion.z_mm)
        distance = ellipsoid_distance(c, centre, (lesion.radius_mm, lesion.radius_mm, lesion.length_mm))
        osteolysis = inside(distance + 0.15 * lesion.radius_mm * texture, e)
        destruction = osteolysis * bone
        # Marrow involvement spreads along the canal beyond the destroyed zone.
        spread = inside(ellipsoid_distance(c, (bx, by, lesion.z_mm), (radius, radius,
                                               0.8 * lesion.length_mm + lesion.marrow_spread_mm)), e)
        marrow_infection = spread * marrow * (1 - destruction)
        abscess = np.zeros_like(destruction)
        if lesion.abscess:
            ar = lesion.abscess_radius_mm
            a_centre = (bx + (radius + 0.8 * ar) * ux, by + (radius + 0.8 * ar) * uy, lesion.z_mm)
            a_distance = ellipsoid_distance(c, a_centre, (ar, ar, 0.8 * lesion.length_mm))
            abscess = inside(a_distance, e) * body * (1 - bone)
        infected = np.maximum(np.maximum(destruction, marrow_infection), abscess)
        # Reactive edema in the soft tissue around it (not infection itself).
        margin = lesion.edema_mm + (0.5 * lesion.abscess_radius_mm if lesion.abscess else 0.0)
        e_centre = (bx + radius * ux, by + radius * uy, lesion.z_mm)
        halo = inside(ellipsoid_distance(c, e_centre, (0.5 * lesion.radius_mm + margin, 0.5 * lesion.radius_mm
                                                       + margin, 0.8 * lesion.length_mm + margin))
                      + 0.2 * margin * texture, e)
        edema = halo * body * (1 - bone) * (1 - abscess)
        # Periosteal reaction: a thin shell of new bone over the lesion's side of the cortex.
        rb = np.sqrt((c.x - bx) ** 2 + (c.y - by) ** 2)
        facing = np.cos(np.arctan2(c.y - by, c.x - bx) - lesion.phi) > 0.35
        shell = inside(np.abs(rb - radius - 1.5 * e) - 0.6 * e, e) * facing
        periosteal = shell * inside(np.abs(c.z - lesion.z_mm) - 1.3 * lesion.length_mm, e)

        moth_eaten = np.clip(0.75 + 0.25 * texture, 0, 1)
        hu = hu + np.float32(0.5) * edema * (np.float32(25.0) - hu) * (hu < 200)
        hu = lerp(hu, PERIOSTEAL_HU, periosteal * (1 - destruction))
        hu = lerp(hu, LYTIC_HU, destruction * moth_eaten)
        hu = hu - np.float32(60.0) * marrow_infection
        hu = lerp(hu, PUS_HU, abscess)
        peak = lesion.suv_peak
        suv = lerp(suv, lesion.rim_suv, edema)
        suv = lerp(suv, peak * np.clip(0.75 + 0.2 * texture, 0.4, 1.0), destruction)
        suv = lerp(suv, 0.55 * peak, marrow_infection)
        if lesion.abscess:
            # Hot wall, colder necrotic centre.
            wall = inside(-ndimage.distance_transform_edt(abscess > 0.5, sampling=c.spacing_zyx) + 2.5 * e, e)
            suv = lerp(suv, peak * (0.35 + 0.5 * wall), abscess)
        if lesion.sequestrum:
            s_centre = (bx + 0.55 * radius * ux, by + 0.55 * radius * uy, lesion.z_mm)
            s_radius = max(2.5, 1.5 * e)
            sequestrum = inside(ellipsoid_distance(c, s_centre, (s_radius, s_radius, 2 * s_radius)), e)
            hu = lerp(hu, SEQUESTRUM_HU, sequestrum)
            suv = lerp(suv, 0.8, sequestrum)   # dead bone takes up no FDG
        self.hu[box], self.suv[box] = hu, suv
        for total, part in ((self.truth, infected), (self.destruction, destruction), (self.edema, edema)):
            total[box] = np.maximum(total[box], part)

    # -- things that mimic infection in one modality ---------------------------------------------
    def confounder(self, confounder: Confounder) -> None:
        limb = self.spec.limbs[confounder.limb]
        bx, by = bone_axis(limb, confounder.z_mm)
        radius = limb.bone_radius_mm
        reach = 2 * radius + 3 * confounder.size_mm + 5 * self.c.edge_mm
        box, c = self.c.crop((bx, by, confounder.z_mm), (reach, reach, 2 * confounder.size_mm + reach))
        e = c.edge_mm
        if confounder.kind == "healed_fracture":
            # Fusiform callus around the bone and a sclerotic line across it: CT changes, no uptake.
            rb = np.sqrt((c.x - bx) ** 2 + (c.y - by) ** 2)
            dz = c.z - confounder.z_mm
            callus_radius = radius + 0.5 * confounder.size_mm * np.clip(1 - (dz / confounder.size_mm) ** 2, 0, 1)
            callus = inside(rb - callus_radius, e) * (1 - self.bone[box])
            line = inside(np.abs(dz) - 0.75 * e, e) * self.marrow[box]
            self.hu[box] = lerp(lerp(self.hu[box], CALLUS_HU, callus), 700.0, line)
        else:
            # Non-infectious uptake (degenerative joint, post-operative inflammation): PET only.
            ux, uy = np.cos(confounder.phi), np.sin(confounder.phi)
            centre = (bx + 1.1 * radius * ux, by + 1.1 * radius * uy, confounder.z_mm)
            hot = inside(ellipsoid_distance(c, centre, (confounder.size_mm,) * 2 + (1.5 * confounder.size_mm,)), e)
            self.suv[box] = lerp(self.suv[box], confounder.suv, hot * self.body[box])

    # -- metal -----------------------------------------------------------------------------------
    def implant(self) -> None:
        """An intramedullary nail with CT streak artefacts; infection rings it on PET when present."""
        c, e = self.c, self.c.edge_mm
        limb_index = self.spec.lesion.limb if self.spec.lesion else 0
        limb = self.spec.limbs[limb_index]
        bx, by = bone_axis(limb, c.z)
        rb = np.sqrt((c.x - bx) ** 2 + (c.y - by) ** 2)
        rod_radius = 0.45 * (limb.bone_radius_mm - limb.cortex_mm)
        rod = inside(rb - rod_radius, e)
        if self.spec.lesion is not None:
            lesion = self.spec.lesion
            ring = (inside(rb - rod_radius - 2.0 * e - 2.0, e) * (1 - rod) * self.marrow
                    * inside(np.abs(c.z - lesion.z_mm) - lesion.length_mm, e))
            self.suv = lerp(self.suv, 0.7 * lesion.suv_peak, ring)
            self.truth = np.maximum(self.truth, ring)
        self.hu = lerp(self.hu, METAL_HU, rod)
        self.suv = lerp(self.suv, 0.0, rod)
        angle = np.arctan2(c.y - by, c.x - bx)
        streaks = np.zeros(c.shape, np.float32)
        for theta, amplitude in zip(self.rng.uniform(0, np.pi, 8), self.rng.uniform(250, 700, 8), strict=True):
            across = rb * np.abs(np.sin(angle - theta))       # distance from the line through the rod
            sign = np.sign(np.cos(2 * theta))
            streaks += np.float32(sign * amplitude) * np.exp(-(across / (1.5 * e)) ** 2)
        halo = -400.0 * np.exp(-np.clip(rb - rod_radius, 0, None) / 4.0)
        self.hu = self.hu + (streaks + halo) / (1.0 + rb / 40.0) * (1 - rod)


def build_anatomy(spec: CaseSpec, settings: PhantomSettings) -> Anatomy:
    """Paint one case's tissues, lesion, confounders and implant; add CT noise; clip to CT's range."""
    builder = _Builder(spec, settings)
    for limb in spec.limbs:
        builder.limb(limb)
    if spec.lesion is not None:
        builder.lesion(spec.lesion)
    for confounder in spec.confounders:
        builder.confounder(confounder)
    if spec.implant:
        builder.implant()
    noise = smooth_noise(builder.c.shape, 0.6, builder.rng) * np.float32(settings.ct_noise_hu)
    ct = np.clip(np.rint(builder.hu + noise), *CT_RANGE_HU).astype(np.int16)
    return Anatomy(ct_hu=ct, activity_suv=builder.suv, truth=builder.truth >= 0.5,
                   destruction=builder.destruction, edema=builder.edema, body=builder.body >= 0.5)
